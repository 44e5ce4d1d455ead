"""The records of a many-scene run: `OUT/run.json` (what every map was made with) and `OUT/run.jsonl`
(one row per scene and attempt outcome), which make runs resumable.

A scene is skipped on a rerun when its map exists and its last row is `ok` under the same configuration
hash. A run directory made with another configuration is refused unless `--overwrite`, which starts the
records afresh (maps are then replaced scene by scene). With `--shard I/N` each shard appends to its own
`run.shard-I-of-N.jsonl`, so shards on different machines never write one file; a rerun reads them all.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from lut.toolkit.core.atomic import write_text_atomic
from lut.toolkit.core.errors import InputError, OwnershipError
from lut.toolkit.core.formats import RUN_FORMAT
from lut.toolkit.core.paths import recorded, restored



_ADDED = ("channels", "href_map", "mask_rule", "mask_dilate", "use_mask", "max_clipped", "probabilities")


@dataclass(frozen=True)
class RunSpec:
    """Everything that changes a map's pixels."""

    model: str
    onnx_sha256: str
    precision: str
    stride: int | None
    bands: tuple[int, ...] | None
    scale: str
    nodata: float | None
    reflectance_offset: float | None
    min_valid: float
    gsd: float | None
    resample: bool
    batch_size: int  # dynamic INT8 maps depend on it
    confidence: bool
    cog: bool
    channels: tuple[str, ...] | None = None
    href_map: tuple[str, ...] = ()
    mask_rule: str | None = None
    mask_dilate: int = 0
    use_mask: bool = True
    max_clipped: float = 0.2
    probabilities: bool = False

    @property
    def hash(self) -> str:
        """Fields added since lut-run/1 count only when set, so runs made before them still resume."""
        later = {f.name: f.default for f in dataclasses.fields(self) if f.name in _ADDED}
        fields = {k: v for k, v in dataclasses.asdict(self).items() if not (k in later and v == later[k])}
        text = json.dumps(fields, sort_keys=True, default=list)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_json(self) -> dict:
        return {"format": RUN_FORMAT, "config_hash": self.hash, **dataclasses.asdict(self)}


def is_run_directory(path: Path) -> bool:
    try:
        return json.loads((Path(path) / "run.json").read_text()).get("format") == RUN_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


class RunRecords:
    def __init__(self, out: Path, shard: tuple[int, int] | None = None) -> None:
        self.out = Path(out)
        self.spec_path = self.out / "run.json"
        name = "run.jsonl" if shard is None else f"run.shard-{shard[0]}-of-{shard[1]}.jsonl"
        self.rows_path = self.out / name

    def start(self, spec: RunSpec, overwrite: bool) -> bool:
        """Write run.json; True when earlier rows still apply (resume), False for a fresh run."""
        if self.spec_path.exists():
            old = json.loads(self.spec_path.read_text())
            if old.get("config_hash") == spec.hash:
                return True
            if not overwrite:
                new = json.loads(json.dumps(spec.to_json()))
                changed = sorted(k for k, v in new.items() if old.get(k) != v and k != "config_hash")
                raise OwnershipError(f"{self.out} holds a run made with another configuration ({', '.join(changed)} "
                               "differ); pass `overwrite=True` to redo it with this one, or choose another -o")
            for rows in self.out.glob("run*.jsonl"):
                rows.unlink()
        self.out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.spec_path, json.dumps(spec.to_json(), indent=2, default=list) + "\n")
        return False

    def last_rows(self) -> dict[str, dict]:
        """The last row of every scene, over the records of all shards."""
        rows: dict[str, dict] = {}
        for path in sorted(self.out.glob("run*.jsonl")):
            for line in path.read_text().splitlines():
                with contextlib.suppress(ValueError):
                    row = json.loads(line)
                    row.update(scene=restored(row["scene"], self.out), map=restored(row["map"], self.out))
                    rows[row["scene"]] = row
        return rows

    def append(self, row: dict) -> None:
        """One write per row with O_APPEND: rows of concurrent writers never interleave on a local disk."""
        row = {**row, "scene": recorded(row["scene"], self.out), "map": recorded(row["map"], self.out)}
        data = (json.dumps(row) + "\n").encode()
        fd = os.open(self.rows_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)


def make_row(scene: Path, target: Path, status: str, config: str, attempts: int = 1, seconds: float = 0.0,
             patches: int = 0, error: str | None = None, node: str | None = None) -> dict:
    return {"scene": str(scene), "map": str(target), "status": status, "error": error, "attempts": attempts,
            "seconds": round(seconds, 3), "patches": patches,
            "patches_per_s": round(patches / seconds, 2) if seconds > 0 else 0.0,
            "host": socket.gethostname(), "node": node, "config": config,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **({"scene_stamp": scene_stamp(scene), "map_bytes": Path(target).stat().st_size}
               if status == "ok" and Path(target).is_file() else {})}


def scene_stamp(scene) -> list[int] | None:
    """Size and modification time of a local scene file (None for URLs, band files and STAC items): a scene
    replaced since its row was written is classified again."""
    path = Path(str(scene))
    try:
        stat = path.stat() if path.is_file() else None
    except OSError:
        return None
    return None if stat is None else [stat.st_size, stat.st_mtime_ns]


def still_valid(row: dict, scene, target: Path) -> str | None:
    """Why a finished row no longer holds (its scene changed, its map is not the size it was), else None.
    Rows written before these fields existed hold."""
    stamp = row.get("scene_stamp")
    if stamp is not None and scene_stamp(scene) not in (None, stamp):
        return f"{scene} changed since it was mapped"
    size = row.get("map_bytes")
    if size is not None and Path(target).is_file() and Path(target).stat().st_size != size:
        return f"{target} is not the map the run wrote (its size differs)"
    return None


@contextlib.contextmanager
def run_lock(out: Path, shard: tuple[int, int] | None = None):
    """One process at a time writes a run folder (or a shard of it): an exclusive lock on
    OUT/.lut-run[.shard-I-of-N].lock holding the owner's PID and host. A second run is refused in one line;
    the lock goes with the process, so a killed run never leaves it held."""
    import fcntl

    name = ".lut-run.lock" if shard is None else f".lut-run.shard-{shard[0]}-of-{shard[1]}.lock"
    path = Path(out) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            raise InputError(f"{out} is being written by another lut run ({owner}): wait for it to finish, or "
                             "write to another -o") from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        yield
    finally:
        handle.close()
