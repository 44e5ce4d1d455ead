"""Free space: checked before work where an output's size is predictable, as GDAL does for uncompressed
rasters (a map is width x height x bands bytes at most; lut's rasters are uint8 and deflated, so usually
much less; plus a third for its internal overviews), so a run that cannot fit is refused in one line before
the scene is read; and a full disk met during work said in one line naming the output and the free space
left there, however the library that met it worded it."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from .atomic import target_name
from .errors import InputError

#: internal overviews add at most a third of the full-resolution data (1/4 + 1/16 + ...)
OVERVIEWS = 4 / 3


def raster_bytes(width: int, height: int, bands: int, overviews: bool = True) -> int:
    """The uncompressed size of a uint8 raster: an upper bound of what it takes on disk."""
    return int(width * height * bands * (OVERVIEWS if overviews else 1.0))


def free_bytes(path: str | Path) -> int:
    """Free bytes on the file system `path` is (or would be) on: its nearest existing folder's."""
    where = Path(path).resolve()
    probe = next((p for p in (where, *where.parents) if p.exists()), Path.cwd())
    return shutil.disk_usage(probe).free


def check_free_space(output: Path, needed: int, what: str) -> None:
    """Refuse when the file system of `output` has less free space than `needed` bytes."""
    free = free_bytes(Path(output).parent)
    if free < needed:
        raise InputError(f"{output} needs up to {needed / 1e6:,.1f} MB ({what}, uncompressed) and its file system "
                         f"has {free / 1e6:,.1f} MB free: free some space or write the output elsewhere")


def disk_full(exc: OSError, output: str | Path | None = None,
              kept: str = "nothing partial was kept: free some space or write the output elsewhere") -> str | None:
    """One line for a full disk or quota (ENOSPC, EDQUOT): the output (its real name, not the temporary's;
    `output` when the error names no file) and the free space left there, then what was `kept`; None for
    other errors."""
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    name = str(exc.filename or output or "")
    where = Path(name).parent / target_name(Path(name).name) if name else Path.cwd()
    free = free_bytes(where) / 1e6
    target = f" writing {where}" if name else ""
    return f"the disk is full{target} ({free:,.1f} MB free on its file system); {kept}"


#: what libraries say when a write fails for want of space (torch's zip writer, GDAL, libtiff, SQLite under
#: GeoPackages), or when GDAL cannot read back a block whose write failed; counted as a full disk only when
#: less than 1 MB is free where the output goes
FULL_DISK_SIGNS = ("No space left on device", "inline_container", "Write failed", "_tiffWriteProc",
                   "IReadBlock failed", "TIFFReadEncodedTile", "TIFFReadEncodedStrip", "database or disk is full",
                   "sqlite3_exec(")


def nearly_full(output: str | Path) -> bool:
    """Less than 1 MB free where `output` goes: a failed write there is the disk's doing."""
    return free_bytes(output) < 1 << 20


def full_disk_line(exc: BaseException, output: str | Path | None,
                   kept: str = "nothing partial was kept: free some space or write the output elsewhere") -> str | None:
    """`disk_full`'s line for ENOSPC/EDQUOT, and for a full disk that a library reported in words of its own
    (FULL_DISK_SIGNS) when less than 1 MB is free at `output`; None for any other failure."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return disk_full(exc, output, kept)
    if output is None or not any(sign in str(exc) for sign in FULL_DISK_SIGNS) or not nearly_full(output):
        return None
    return disk_full(OSError(errno.ENOSPC, "No space left on device", str(output)), kept=kept)
