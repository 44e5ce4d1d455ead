"""Paths as lut records them inside its outputs: relative to the output that records them (or the URL as
given), never the absolute paths of the machine that made them, which leak its directory layout and break
when the files move."""

from __future__ import annotations

import os
from pathlib import Path

from .sources import is_band_spec, is_remote, parse_band_spec


def recorded(path, relative_to: Path) -> str | None:
    """`path` as written into a file in folder `relative_to`: relative to it for local paths (band files
    each), unchanged for URLs and GDAL virtual paths, None for None."""
    if path is None:
        return None
    text = str(path)
    if is_remote(text):
        return text
    if is_band_spec(text):
        return ",".join(f"{k}={recorded(v, relative_to)}" for k, v in parse_band_spec(text).items())
    base, sep, item = text.partition("#")
    return os.path.relpath(Path(base).resolve(), Path(relative_to).resolve()) + sep + item


def restored(text: str | None, relative_to: Path) -> str | None:
    """The inverse of `recorded`: an absolute local path again."""
    if text is None or is_remote(text):
        return text
    if is_band_spec(text):
        return ",".join(f"{k}={restored(v, relative_to)}" for k, v in parse_band_spec(text).items())
    base, sep, item = text.partition("#")
    return os.path.normpath(Path(relative_to).resolve() / base) + sep + item
