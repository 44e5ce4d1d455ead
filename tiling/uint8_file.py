"""Where the uint8-input variant of a model comes from: the file `lut export` wrote beside it, else one
built once and cached beside the model (where lut owns the folder), else a temporary file.

ONNX Runtime opens it from disk in every case (a model handed over as bytes stays in memory for the
session's life). A cached variant records the SHA-256 of the model it was built from and is rebuilt when
the model changed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lut.export.uint8_input import SOURCE_KEY, variant_name, write_uint8_variant
from lut.toolkit.core.atomic import atomic_file
from lut.toolkit.core.errors import InputError
from lut.toolkit.core.formats import BUNDLE_FILE


def _owned_and_writable(folder: Path) -> bool:
    return (folder / BUNDLE_FILE).is_file() and os.access(folder, os.W_OK | os.X_OK)


def build_cached(model: Path, mean: np.ndarray, std: np.ndarray, sha256: str) -> Path:
    """Build the variant into the model's folder under a temporary name and rename it into place (two
    processes building it at once each rename a whole file)."""
    target = model.parent / variant_name(model.name)
    with atomic_file(target, overwrite=True) as tmp:
        write_uint8_variant(model, tmp, mean, std, sha256)
    return target


def source_of(session) -> str:
    """The SHA-256 of the model a variant was built from, as its metadata records it ('' when it does not)."""
    return session.get_modelmeta().custom_metadata_map.get(SOURCE_KEY, "")


def open_uint8_session(model: Path, exported: Path | None, mean: np.ndarray, std: np.ndarray,
                       sha256: Callable[[], str], opener: Callable[[Path], object]):
    """One session of the uint8-input variant of `model`: `exported` (written and gated by lut export), else
    the cached variant when it was built from this model, else one built now (cached where lut owns the
    folder). `opener` opens a file as a session; `sha256` gives the model file's hash."""
    if exported is not None and exported.is_file():
        return opener(exported)
    cached = model.parent / variant_name(model.name)
    if cached.is_file():
        session = opener(cached)
        if source_of(session) == sha256():
            return session
        del session  # built from another model: build it again
    if _owned_and_writable(model.parent):
        try:
            return opener(build_cached(model, mean, std, sha256()))
        except (OSError, InputError):  # a full disk, a folder that became read-only: build it apart instead
            pass
    with tempfile.TemporaryDirectory(prefix="lut-uint8-") as work:
        return opener(write_uint8_variant(model, Path(work) / variant_name(model.name), mean, std, sha256()))
