"""Free space checked before work, where an output's size is predictable, as GDAL does for uncompressed
rasters: a map is width x height x bands bytes at most (lut's rasters are uint8 and deflated, so usually
much less), plus a third for its internal overviews. A run that cannot fit is refused in one line before
the scene is read, instead of failing at its end."""

from __future__ import annotations

import shutil
from pathlib import Path

from .errors import InputError

#: internal overviews add at most a third of the full-resolution data (1/4 + 1/16 + ...)
OVERVIEWS = 4 / 3


def raster_bytes(width: int, height: int, bands: int, overviews: bool = True) -> int:
    """The uncompressed size of a uint8 raster: an upper bound of what it takes on disk."""
    return int(width * height * bands * (OVERVIEWS if overviews else 1.0))


def free_bytes(path: Path) -> int:
    where = Path(path).resolve()
    probe = next((p for p in (where, *where.parents) if p.exists()), Path.cwd())
    return shutil.disk_usage(probe).free


def check_free_space(output: Path, needed: int, what: str) -> None:
    """Refuse when the file system of `output` has less free space than `needed` bytes."""
    free = free_bytes(Path(output).parent)
    if free < needed:
        raise InputError(f"{output} needs up to {needed / 1e6:,.1f} MB ({what}, uncompressed) and its file system "
                         f"has {free / 1e6:,.1f} MB free: free some space or write the output elsewhere")
