"""Which scenes a many-scene run covers, where each map goes, and which slice a shard takes.

Scenes are given as files, globs (`tiles/**/*.tif`), directories (every .tif/.tiff below them) or
`@list.txt` (one entry per line, `#` comments). The list is de-duplicated and sorted by absolute path,
so every process that expands the same arguments sees the same list in the same order. That is what
makes `--shard I/N` a fixed slice: shard I (0-based, 0 <= I < N) takes scenes I, I+N, I+2N, ... of the
sorted list, so N shards cover every scene exactly once and get nearly equal counts.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

from lut.toolkit.core.errors import InputError

SCENE_SUFFIXES = (".tif", ".tiff")
MAP_SUFFIX = ".landuse.tif"


def _is_glob(item: str) -> bool:
    return any(ch in item for ch in "*?[")


def _expand_one(item: str, nested: bool = False) -> list[Path]:
    if item.startswith("@") and not nested:
        listing = Path(item[1:])
        if not listing.is_file():
            raise InputError(f"scene list {listing} does not exist")
        lines = [ln.strip() for ln in listing.read_text().splitlines()]
        base = listing.parent
        found: list[Path] = []
        for line in lines:
            if line and not line.startswith("#"):
                entry = line if os.path.isabs(line) else str(base / line)
                found += _expand_one(entry, nested=True)
        return found
    if _is_glob(item):
        matches = [Path(p) for p in sorted(glob.glob(item, recursive=True)) if Path(p).is_file()]
        if not matches:
            raise InputError(f"{item} matches no file")
        return matches
    path = Path(item)
    if path.is_dir():
        matches = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SCENE_SUFFIXES)
        if not matches:
            raise InputError(f"directory {path} holds no .tif/.tiff scene")
        return matches
    if not path.exists():
        raise InputError(f"scene {path} does not exist")
    return [path]


def expand_scenes(items: list[str]) -> list[Path]:
    """Every scene the arguments name, resolved, de-duplicated and sorted."""
    if not items:
        raise InputError("no scene given")
    unique = {p.resolve() for item in items for p in _expand_one(str(item))}
    return sorted(unique, key=str)


def common_root(scenes: list[Path]) -> Path:
    return Path(os.path.commonpath([str(p.parent) for p in scenes]))


def map_path(scene: Path, root: Path, out: Path) -> Path:
    """OUT/<scene path relative to the common root, without its suffix>.landuse.tif: tiles of the same name
    in different date folders stay apart."""
    relative = Path(scene).relative_to(root)
    return Path(out) / relative.parent / (relative.stem + MAP_SUFFIX)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError as exc:
        raise InputError(f"`shard` takes I/N, e.g. 0/4, got {text!r}") from exc
    check_shard((index, count))
    return index, count


def check_shard(shard: tuple[int, int] | None) -> None:
    """Shard I of N exists: 0 <= I < N."""
    if shard is not None and (shard[1] < 1 or not 0 <= shard[0] < shard[1]):
        raise InputError(f"`shard` {shard[0]}/{shard[1]}: I must be 0 <= I < N (0-based, like "
                         "SLURM_ARRAY_TASK_ID from 0)")


def shard_of(scenes: list[Path], shard: tuple[int, int] | None) -> list[Path]:
    if shard is None:
        return list(scenes)
    index, count = shard
    return scenes[index::count]
