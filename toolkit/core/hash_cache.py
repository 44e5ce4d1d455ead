"""SHA-256 of model files, remembered between runs: hashing a ViT-B (330 MB) takes a core for about half a
second, which a 256² scene's whole run barely exceeds. Entries are keyed by the file's real path and
checked against its size, modification time and inode, so a changed or replaced file is hashed again.

The cache is a small JSON file in `$XDG_CACHE_HOME/lut` (else `~/.cache/lut`), written atomically; a cache
that cannot be read or written is ignored (the file is hashed, as without a cache). `LUT_NO_HASH_CACHE=1`
turns it off.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from .atomic import write_text_atomic
from .errors import LutError
from .store import sha256_file

MAX_ENTRIES = 256


def cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lut" / "sha256.json"


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def cached_sha256(path: Path) -> str:
    """The SHA-256 of `path`, from the cache when the file is unchanged, else computed and remembered."""
    real = Path(path).resolve()
    if os.environ.get("LUT_NO_HASH_CACHE"):
        return sha256_file(real)
    stamp = _stamp(real)
    entries: dict = {}
    with contextlib.suppress(OSError, ValueError):
        entries = json.loads(cache_file().read_text())
    entry = entries.get(str(real)) if isinstance(entries, dict) else None
    if isinstance(entry, list) and entry[:3] == stamp and len(entry) == 4:
        return str(entry[3])
    digest = sha256_file(real)
    if _stamp(real) == stamp:  # unchanged while it was read
        entries = {k: v for k, v in list(entries.items())[-(MAX_ENTRIES - 1):]} if isinstance(entries, dict) else {}
        entries[str(real)] = [*stamp, digest]
        _write(entries)
    return digest


def _write(entries: dict) -> None:
    with contextlib.suppress(OSError, LutError):  # no cache where it cannot be written: hashing still works
        write_text_atomic(cache_file(), json.dumps(entries))
