"""Which scenes a many-scene run covers, where each map goes, and which slice a shard takes.

Scenes are given as files, globs (`tiles/**/*.tif`), directories (every .tif/.tiff below them),
`@list.txt` (one entry per line, `#` comments), URLs, band files (`red=B4.tif,green=B3.tif,blue=B2.tif`)
and STAC Items or ItemCollections (`items.json`: one scene per item, named `items.json#ITEM_ID`). Each
scene is a string from here on; the list is de-duplicated and sorted by absolute path,
so every process that expands the same arguments sees the same list in the same order. That is what
makes `--shard I/N` a fixed slice: shard I (0-based, 0 <= I < N) takes scenes I, I+N, I+2N, ... of the
sorted list, so N shards cover every scene exactly once and get nearly equal counts.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from lut.toolkit.core.errors import InputError
from lut.toolkit.core.sources import is_band_spec, is_remote, parse_band_spec
from lut.toolkit.core.stac import is_stac, item_specs

SCENE_SUFFIXES = (".tif", ".tiff")
MAP_SUFFIX = ".landuse.tif"


def _is_glob(item: str) -> bool:
    return any(ch in item for ch in "*?[")


def _expand_one(item: str, nested: bool = False, base: Path | None = None) -> list[str]:
    if item.startswith("@") and not nested:
        listing = Path(item[1:])
        if not listing.is_file():
            raise InputError(f"scene list {listing} does not exist")
        found: list[str] = []
        for line in (ln.strip() for ln in listing.read_text().splitlines()):
            if line and not line.startswith("#"):
                found += _expand_one(line, nested=True, base=listing.parent)
        return found
    if is_remote(item):
        return item_specs(item) if is_stac(item) else [item]
    if is_band_spec(item):
        files = parse_band_spec(item)
        return [",".join(f"{k}={v if is_remote(v) else _absolute(v, base)}" for k, v in files.items())]
    item = item if base is None or os.path.isabs(item) else str(base / item)
    if _is_glob(item):
        matches = [Path(p) for p in sorted(glob.glob(item, recursive=True)) if Path(p).is_file()]
        if not matches:
            raise InputError(f"{item} matches no file")
        return [s for p in matches for s in _local(p)]
    path = Path(item.split("#", 1)[0])
    if path.is_dir():
        matches = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in SCENE_SUFFIXES)
        if not matches:
            raise InputError(f"directory {path} holds no .tif/.tiff scene")
        return [str(p.resolve()) for p in matches]
    if not path.exists():
        raise InputError(f"scene {path} does not exist")
    return _local(item)


def _absolute(path: str, base: Path | None) -> str:
    p = Path(path) if base is None or os.path.isabs(path) else base / path
    return str(p.resolve())


def _local(item) -> list[str]:
    """A local file (resolved), or each item of a STAC file."""
    text = str(item)
    base, sep, item_id = text.partition("#")
    resolved = str(Path(base).resolve()) + sep + item_id
    return item_specs(resolved) if is_stac(resolved) else [resolved]


def expand_scenes(items: list[str]) -> list[str]:
    """Every scene the arguments name, resolved, de-duplicated and sorted."""
    if not items:
        raise InputError("no scene given")
    return sorted({s for item in items for s in _expand_one(str(item))})


def name_path(scene: str) -> Path:
    """A path that names a scene, for map names and the common root: the file itself; for band files their
    folder and the common start of their names without a band designator (LC08_..._B4, _B3 -> LC08_...);
    for an item of a collection the folder and the item's id; for a URL its host and path."""
    if is_band_spec(scene):
        files = [f for k, f in parse_band_spec(scene).items() if k != "mask"]
        prefix = os.path.commonprefix([Path(f).stem for f in files])
        stem = re.sub(r"[_\-. ]*(B\d*)?$", "", prefix, flags=re.IGNORECASE) or Path(files[0]).stem
        return name_path(files[0]).parent / (stem + ".tif")
    if is_remote(scene):
        from urllib.parse import urlparse

        url = urlparse(scene)
        return Path("/" + (url.hostname or "") + url.path) if "://" in scene else Path(scene)
    base, _, item_id = scene.partition("#")
    return Path(base).parent / (item_id + ".json") if item_id else Path(base)


def common_root(scenes: list[str]) -> Path:
    return Path(os.path.commonpath([str(name_path(s).parent) for s in scenes]))


def map_path(scene: str, root: Path, out: Path) -> Path:
    """OUT/<scene path relative to the common root, without its suffix>.landuse.tif: tiles of the same name
    in different date folders stay apart."""
    relative = name_path(str(scene)).relative_to(root)
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


def shard_of(scenes: list[str], shard: tuple[int, int] | None) -> list[str]:
    if shard is None:
        return list(scenes)
    index, count = shard
    return scenes[index::count]
