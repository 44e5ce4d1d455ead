"""`lut classify SCENE... -o OUT`: many scenes in one resumable run, on this machine or a Ray cluster.

Each map goes to OUT/<path relative to the scenes' common root>.landuse.tif with its sidecars. OUT/run.json
records the configuration, OUT/run.jsonl one row per scene; a rerun skips the scenes already done under
the same configuration. At the end OUT gets a mosaic per CRS (a VRT a GIS opens in one step), its preview
and summary.json with per-class km² over all scenes.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, get_args

from lut.toolkit.core.atomic import check_writable_dir
from lut.toolkit.core.bundle import Bundle
from lut.toolkit.core.errors import EXIT_INTERRUPTED, EXIT_PARTIAL, EXIT_TERMINATED, InputError, Interrupted
from lut.toolkit.core.ownership import check_not_input
from lut.toolkit.core.paths import recorded
from lut.toolkit.core.store import sha256_file
from lut.toolkit.core.terminal import stderr_is_terminal

from .classify import ClassifyConfig
from .deployed import onnx_dir_of, pick_file
from .engines import Job, RayOptions, SceneWorker, WorkerSpec, clean_temps, require_ray, run_local, run_ray
from .mosaic import MOSAIC_KINDS, write_run_outputs
from .run_records import RunRecords, RunSpec, is_run_directory, run_lock, still_valid
from .scene_list import check_shard, common_root, expand_scenes, map_path, name_path, shard_of

Engine = Literal["local", "ray"]
ENGINES: tuple[str, ...] = get_args(Engine)
ProgressMode = Literal["lines", "json", "none"]

log = logging.getLogger(__name__)


@dataclass
class ManyConfig:
    scenes: list[str]
    output: Path
    template: ClassifyConfig  # model and every per-scene option; scene and output are set per scene
    engine: Engine = "local"
    ray: RayOptions = field(default_factory=RayOptions)
    shard: tuple[int, int] | None = None
    max_failures: int | None = None
    progress: ProgressMode = "lines"
    overwrite: bool = False
    mosaic: str = "vrt"  # vrt: a GDAL VRT over the maps; cog: one Cloud Optimized GeoTIFF
    worker_cls: type = SceneWorker  # tests swap in a worker that dies

    def check(self) -> None:
        """Refuse an unknown engine or progress mode, a bad shard or failure limit, before anything is written."""
        if self.engine not in ENGINES:
            raise InputError(f"`engine` must be one of {', '.join(ENGINES)}")
        if self.progress not in get_args(ProgressMode):
            raise InputError(f"`progress` must be one of {', '.join(get_args(ProgressMode))}, got {self.progress!r}")
        if self.max_failures is not None and self.max_failures < 1:
            raise InputError(f"`max_failures` must be at least 1, got {self.max_failures}")
        check_shard(self.shard)
        if self.mosaic not in MOSAIC_KINDS:
            raise InputError(f"`mosaic` must be one of {', '.join(MOSAIC_KINDS)}, got {self.mosaic!r}")


@dataclass
class ManyResult:
    output: Path
    rows: list[dict]
    skipped: int
    summary: dict
    aborted: bool = False

    @property
    def failed(self) -> int:
        return sum(r["status"] == "failed" for r in self.rows)

    @property
    def ok(self) -> int:
        return sum(r["status"] == "ok" for r in self.rows)

    @property
    def exit_code(self) -> int:
        return EXIT_PARTIAL if self.failed or self.aborted else 0


def resolve_spec(template: ClassifyConfig, engine: str, ray: RayOptions, out: Path) -> tuple[ClassifyConfig, RunSpec]:
    """Pick the ONNX variant once, in the driver, so every worker runs the same file: its hash is recorded."""
    from lut.export.runtime import gpu_usable

    onnx_dir = onnx_dir_of(template.model, template.store)
    bundle = Bundle.load(onnx_dir, ("onnx",))
    gpu = template.device != "cpu" and (ray.gpus_per_worker > 0 if engine == "ray" else gpu_usable())
    precision, path, _ = pick_file(onnx_dir, bundle, template.precision, gpu)
    t = replace(template, model=onnx_dir, precision=precision)
    if t.mask is not None:
        raise InputError("`mask` names one scene's quality raster; in a many-scene run each scene brings its own "
                         "(a STAC mask asset, or mask=FILE in its band files)")
    spec = RunSpec(recorded(onnx_dir, out), sha256_file(path), precision, t.stride, t.bands, t.scale, t.nodata,
                   t.reflectance_offset, t.min_valid, t.gsd, t.resample, t.batch_size, t.confidence, t.cog,
                   t.channels, t.href_map, t.mask_rule, t.mask_dilate, t.use_mask, t.max_clipped, t.probabilities)
    return t, spec


def check_run_directory(cfg: ManyConfig, scenes: list[str]) -> None:
    out = Path(cfg.output)
    check_not_input(out, [*scenes, *(s for s in cfg.scenes if Path(s).is_dir())], "output directory")
    if out.exists() and not out.is_dir():
        raise InputError(f"-o {out} is a file; with several scenes -o names a directory")
    entries = [p for p in out.iterdir() if not p.name.startswith(".lut-run")] if out.is_dir() else []  # not locks
    if entries and not is_run_directory(out):
        raise InputError(f"{out} is not empty and holds no lut run (run.json); choose a new or empty directory")
    check_writable_dir(out, create=True)


def check_unique_targets(jobs: list[Job]) -> None:
    """Two scenes must never write one map (x.tif and x.tiff, or names differing in case only, which a
    case-insensitive file system merges): refused before any work, naming both."""
    seen: dict[str, Job] = {}
    for job in jobs:
        key = str(job.target).lower()
        if key in seen:
            raise InputError(f"scenes {seen[key].scene} and {job.scene} would both be mapped to {job.target}: rename "
                             "one, or map them in separate runs")
        seen[key] = job


def plan_jobs(cfg: ManyConfig) -> tuple[list[Job], list[Job]]:
    """All jobs of the run (every shard) and this process's share."""
    scenes = expand_scenes(cfg.scenes)
    check_run_directory(cfg, scenes)
    root = common_root(scenes)
    every = [Job(s, map_path(s, root, Path(cfg.output).resolve())) for s in scenes]
    check_unique_targets(every)
    mine = set(shard_of(scenes, cfg.shard))
    return every, [j for j in every if j.scene in mine]


def readable(target: Path) -> bool | None:
    """Whether a map opens and its pixels read to the end (its last row, and an overview-sized read of
    all of it); None when it opens but is not a lut map."""
    import rasterio

    from lut.toolkit.core.ownership import is_lut_map_tags

    try:
        with rasterio.open(target) as src:
            src.read(1, window=((src.height - 1, src.height), (0, src.width)))
            src.read(1, out_shape=(1, max(1, src.height // 64), max(1, src.width // 64)))
            return True if is_lut_map_tags(src.tags()) else None
    except Exception:  # noqa: BLE001 - a file GDAL cannot read to the end is damaged
        return False


def intact(target: Path) -> bool:
    """A finished map a rerun may keep: it opens, carries lut's marker and reads to the end (a truncated
    or damaged map is classified again)."""
    return target.is_file() and readable(target) is True


class Progress:
    """One line per finished scene; patches/s and ETA on a terminal; JSON rows for machines."""

    def __init__(self, mode: str, total: int, root: Path) -> None:
        self.mode, self.total, self.root = mode, total, root
        self.done = self.patches = 0
        self.start = time.perf_counter()

    def __call__(self, row: dict) -> None:
        self.done += 1
        self.patches += row["patches"]
        if self.mode == "json":
            log.info(json.dumps(row))
        elif self.mode == "lines":
            name = name_path(row["scene"]).relative_to(self.root)
            line = (f"[{self.done}/{self.total}] {row['status']} {name} {row['patches']} patches "
                    f"{row['seconds']:.1f} s" + (f": {row['error']}" if row["error"] else ""))
            if stderr_is_terminal():
                elapsed = time.perf_counter() - self.start
                eta = elapsed / self.done * (self.total - self.done)
                line += f"  ({self.patches / max(elapsed, 1e-9):.0f} patches/s, ETA {eta / 60:.1f} min)"
            log.info(line)


def classify_many(cfg: ManyConfig) -> ManyResult:
    """Classify many scenes into one resumable run folder: a map per scene, records, mosaics and a summary.

    Progress (a line or a JSON row per scene) is logged at INFO on the `lut.tiling.many` logger.

    Args:
        cfg: the scenes, the output folder, the per-scene template and the engine.

    Returns:
        Counts of ok, failed and skipped scenes, the run summary and the exit code (0, or 4 when some failed).

    Raises:
        InputError: scenes or options that cannot be used; nothing is written.
        OwnershipError: an output folder made with another configuration, without `overwrite=True`.
    """
    cfg.check()
    if cfg.engine == "ray":
        require_ray()  # before anything is written
    every, mine = plan_jobs(cfg)
    template, spec = resolve_spec(cfg.template, cfg.engine, cfg.ray, Path(cfg.output))
    with run_lock(Path(cfg.output), cfg.shard):
        records = RunRecords(Path(cfg.output), cfg.shard)
        resume = records.start(spec, cfg.overwrite)
        todo, skipped = select_todo(mine, records.last_rows() if resume else {}, spec, records)
        progress = Progress(cfg.progress, len(todo), common_root([j.scene for j in every]))
        if skipped and cfg.progress == "lines":
            log.info(f"{skipped} of {len(mine)} scenes already done under this configuration: skipped")
        rows, aborted = _run_jobs(cfg, todo, WorkerSpec(template, spec.hash), records, progress)
        clean_temps(todo)
        final = records.last_rows()
        ok_maps = [j.target for j in every if final.get(str(j.scene), {}).get("status") in ("ok", "skipped")]
        failed = sum(final.get(str(j.scene), {}).get("status") == "failed" for j in every)
        counts = {"total": len(every), "mapped": len(ok_maps), "failed": failed,
                  "not_run": len(every) - len(ok_maps) - failed}  # other shards', or after --max-failures
        summary = write_run_outputs(Path(cfg.output), ok_maps, counts, cfg.mosaic)
    return ManyResult(Path(cfg.output), rows, skipped, summary, aborted)


def select_todo(mine: list[Job], done: dict, spec: RunSpec, records: RunRecords) -> tuple[list[Job], int]:
    """The jobs to run: all but those whose map this configuration finished and that still hold (their
    scene unchanged, their map intact), which are recorded as skipped. A map lut wrote that no longer reads
    is removed and redone."""
    todo, skipped = [], 0
    for job in mine:
        row = done.get(str(job.scene))
        finished = row is not None and row["status"] in ("ok", "skipped") and row["config"] == spec.hash
        changed = still_valid(row, job.scene, job.target) if finished and row is not None else None
        if changed:
            log.info(f"{changed}: classifying it again")
        if finished and row is not None and not changed and intact(job.target):
            records.append({**row, "status": "skipped", "attempts": 0, "seconds": 0.0, "patches": 0,
                            "patches_per_s": 0.0})
            skipped += 1
            continue
        if finished and job.target.is_file() and readable(job.target) is False:  # lut's (its row says so), damaged
            log.info(f"{job.target} is damaged (it does not read to the end): classifying {job.scene} again")
            job.target.unlink()
        todo.append(job)
    return todo, skipped


def _run_jobs(cfg: ManyConfig, todo: list[Job], worker: WorkerSpec, records: RunRecords,
              progress: Progress) -> tuple[list[dict], bool]:
    """Run the jobs on the engine, recording each row; Ctrl-C or SIGTERM keep what finished."""
    rows: list[dict] = []

    def stop() -> bool:
        return cfg.max_failures is not None and sum(r["status"] == "failed" for r in rows) >= cfg.max_failures

    stream = (run_ray(todo, worker, cfg.ray, stop, cfg.worker_cls) if cfg.engine == "ray"
              else run_local(todo, worker, stop))
    try:
        for row in stream:
            rows.append(row)
            records.append(row)
            progress(row)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (Interrupted): the finished maps stay, recorded
        clean_temps(todo)  # the in-flight scenes' temporaries (their workers are stopped by now)
        code = getattr(exc, "exit_code", EXIT_INTERRUPTED)
        what = "terminated" if code == EXIT_TERMINATED else "interrupted"
        kept = sum(r["status"] == "ok" for r in rows)
        raise Interrupted(f"{what}: {kept} scene(s) finished and kept in {cfg.output}, the scenes in flight "
                          "removed; run the same command again to resume", code) from exc
    aborted = stop() and len(rows) < len(todo)
    if aborted:
        log.info(f"aborted after {cfg.max_failures} failed scenes (--max-failures); "
                 f"{len(todo) - len(rows)} not started")
    return rows, aborted
