"""`lut classify` as a library call: stream a scene through the model and write a georeferenced map.

A reader thread reads each window row in column chunks and cuts the windows; a pool of threads prepares
batches from them (`feeder.py`); the main thread runs ONNX Runtime (which releases the GIL) and
accumulates class probabilities on the cell grid, so reading never waits for inference and memory stays
flat whatever the scene's size.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lut.toolkit.core.atomic import atomic_files
from lut.toolkit.core.space import check_free_space, raster_bytes
from lut.toolkit.core.errors import InputError, recorded_warnings, warn
from lut.toolkit.gis.legend import class_colours, is_lut_legend, sidecars, write_legend
from lut.toolkit.core.ownership import SUMMARY_FORMAT, check_output_file, is_lut_map, is_lut_preview, is_lut_summary
from lut.toolkit.core.raster import check_gsd, gdal_env, is_metric, pixel_area, written_as_cog
from lut.toolkit.core.store import DEFAULT_STORE
from lut.toolkit.gis.vectorize import VectorizeConfig, is_lut_vector, sieve_size, write_polygons

from lut.toolkit.core.chunks import ChunkReader
from lut.toolkit.core.masks import parse_rule
from lut.toolkit.core.paths import recorded
from lut.toolkit.core.ownership import confidence_path_of, is_lut_confidence, is_lut_probabilities, is_lut_stac_item
from lut.toolkit.gis.legend_image import write_legend_image
from lut.toolkit.gis.stac_items import class_item, item_path_of, mlm_metadata
from lut.toolkit.core.sources import HrefMap, SceneSource

from lut.export.runtime import SessionOptions

from .deployed import DeployedModel, load_deployed
from .feeder import BatchProducer, Preparer, default_readers
from .accumulate import CellAccumulator, softmax
from .scene_plan import ScenePlan, open_source, plan_scene
from .summary import area_summary, format_summary, write_preview
from .writer import ClassMapWriter, ProbabilityWriter, map_legend


#: a window with less than this fraction of valid pixels is written as nodata: with fewer, the filled
#: window is mostly the fill, and its class would be a guess.
MIN_VALID = 0.25
#: a scaling that clips more than this share of the valid pixels is refused (`max_clipped`)
MAX_CLIPPED = 0.2


@dataclass
class ClassifyConfig:
    scene: Path | str  # a raster file or URL, band files (red=a.tif,...) or a STAC item (see core/sources.py)
    output: Path
    model: Path | None = None
    precision: str = "auto"
    device: str = "auto"
    stride: int | None = None
    bands: tuple[int, ...] | None = None
    scale: str = "auto"
    nodata: float | None = None
    reflectance_offset: float | None = None
    min_valid: float = MIN_VALID
    gsd: float | None = None
    resample: bool = True
    batch_size: int = 32
    confidence: bool = False
    cog: bool = False
    preview: Path | None = None
    legend: Path | None = None  # a PNG legend (class colours, names and mapped km²) for reports
    vector: Path | None = None
    vector_min_area: float | None = None  # hectares
    overwrite: bool = False
    progress: bool = True
    prefetch: int = 4
    threads: int | None = None  # ONNX Runtime's intra-op threads (default: the physical cores)
    spinning: bool = True  # ONNX Runtime's threads busy-wait between operators (off: many sessions per host)
    readers: int | None = None  # threads reading strips and preparing batches (default: half the cores, at most
    # 4; 0: one thread reads and prepares, as lut did before the feeder had pools)
    uint8_graph: bool = True  # uint8 windows normalised inside the model's graph (False: by numpy, per window)
    store: Path = DEFAULT_STORE
    channels: tuple[str, ...] | None = None  # band names to pick from band files and STAC items (red,green,blue)
    href_map: tuple[str, ...] = ()  # OLD=NEW href prefix rewrites (mirrors, local copies)
    mask: Path | str | None = None  # a quality raster; default: the scene's own (a STAC SCL/qa_pixel asset)
    mask_rule: str | None = None  # scl, qa_pixel, bqa, values:..., bits:... (default: from the mask's name)
    mask_dilate: int = 0  # grow the masked area by this many pixels
    use_mask: bool = True  # False: ignore the scene's own mask asset
    max_clipped: float = MAX_CLIPPED
    probabilities: bool = False  # also write NAME.probabilities.tif: per-class probabilities (K uint8 bands, %)

    def check(self) -> None:
        if not 0.0 <= self.min_valid <= 1.0:
            raise InputError(f"`min_valid` must be a fraction between 0 and 1, got {self.min_valid}")
        if not 0.0 <= self.max_clipped <= 1.0:
            raise InputError(f"`max_clipped` must be a fraction between 0 and 1, got {self.max_clipped}")
        if self.mask_dilate < 0:
            raise InputError(f"`mask_dilate` must be 0 or more pixels, got {self.mask_dilate}")
        if self.mask_rule is not None:
            parse_rule(self.mask_rule)
        if self.mask is not None and not self.use_mask:
            raise InputError("`mask` and `use_mask=False` contradict each other: drop one")
        HrefMap.parse(self.href_map)
        self.session_options().check()
        check_gsd(self.gsd)
        if self.vector_min_area is not None and self.vector is None:
            raise InputError("`vector_min_area` applies to `vector` polygons: add `vector` FILE.gpkg")
        if self.vector is not None:
            self.vector_config().check()

    def session_options(self) -> SessionOptions:
        return SessionOptions(self.threads, self.spinning)

    def vector_config(self) -> VectorizeConfig:
        return VectorizeConfig(self.scene, Path(self.vector), self.vector_min_area)


@dataclass
class ClassifyResult:
    output: Path
    summary_path: Path
    summary: dict
    patches: int
    skipped: int
    seconds: float
    model: str
    precision: str
    device: str
    rule: dict
    warnings: list[str] = field(default_factory=list)
    low_valid: int = 0
    why: str = ""
    masked_pixels: int = 0

    @property
    def patches_per_second(self) -> float:
        return self.patches / self.seconds if self.seconds > 0 else 0.0


def classify_scene(cfg: ClassifyConfig, model: DeployedModel | None = None) -> ClassifyResult:
    """Classify one scene into a georeferenced land-use map with its summary and legend sidecars.

    Nothing appears at `cfg.output` unless the whole map is written. What the user should know about the
    map (bands read, scaling, resolution) is issued as `LutWarning`s and recorded in the summary.

    Args:
        cfg: the scene, the output and every option of the run.
        model: an already-loaded model (`load_deployed`), so many scenes share one session; by default the
            model `cfg.model` names is loaded.

    Returns:
        The map's paths, its area summary and the run's figures.

    Raises:
        InputError: a scene, model or option that cannot be used as given.
        OwnershipError: an output exists that lut may not replace.
    """
    with gdal_env():
        return _classify(cfg, model)


@dataclass
class MapOutputs:
    """A map and the sidecars that change with it: summary, GDAL/QGIS legend, and optional preview and
    polygons."""

    map: Path
    summary: Path
    aux: Path
    qml: Path
    stac: Path
    confidence: Path | None = None
    preview: Path | None = None
    vector: Path | None = None
    probabilities: Path | None = None
    legend: Path | None = None

    @classmethod
    def of(cls, cfg: ClassifyConfig) -> MapOutputs:
        output = Path(cfg.output)
        aux, qml = sidecars(output)
        probabilities = probabilities_path_of(output) if cfg.probabilities else None
        confidence = confidence_path_of(output) if cfg.confidence else None
        optional = [None if p is None else Path(p) for p in (cfg.preview, cfg.vector, probabilities, cfg.legend)]
        return cls(output, summary_path_of(output), aux, qml, item_path_of(output), confidence, *optional)

    def named(self) -> dict[str, Path]:
        return {k: v for k, v in vars(self).items() if v is not None}


_OWNED = {"map": is_lut_map, "summary": is_lut_summary, "aux": is_lut_legend, "qml": is_lut_legend,
          "preview": is_lut_preview, "vector": is_lut_vector, "probabilities": is_lut_probabilities,
          "confidence": is_lut_confidence, "stac": is_lut_stac_item, "legend": is_lut_preview}


def check_outputs(cfg: ClassifyConfig, outputs: MapOutputs, source: SceneSource | None = None) -> None:
    """Every output is new, or lut's own under --overwrite; none is an input or another output. Checked
    before any work."""
    inputs = [*(source.files if source else [cfg.scene]), cfg.mask, cfg.model]
    seen: dict[Path, str] = {}
    for name, path in outputs.named().items():
        check_output_file(path, cfg.overwrite, _OWNED[name], inputs, name)
        if path.resolve() in seen:
            raise InputError(f"`{name}` {path} would overwrite the {seen[path.resolve()]}")
        seen[path.resolve()] = name


def import_in_background(module: str) -> None:
    """Import `module` on a thread now, so that the first import where it is needed finds it loaded."""
    import importlib
    import sys
    import threading

    if module not in sys.modules:
        threading.Thread(target=importlib.import_module, args=(module,), daemon=True, name="lut-import").start()


def _check_space(cfg: ClassifyConfig, plan: ScenePlan, classes: int) -> None:
    """The map, its confidence and probabilities fit where they go (uncompressed, with overviews; twice with
    `cog`, which rewrites them), before any window is read."""
    bands = 1 + int(cfg.confidence) + (classes if cfg.probabilities else 0)
    w, h = plan.profile["width"], plan.profile["height"]
    check_free_space(cfg.output, raster_bytes(w, h, bands) * (2 if cfg.cog else 1),
                     f"{w:,} x {h:,} px x {bands} band(s)")


def summary_path_of(output: Path) -> Path:
    return Path(output).with_suffix(".summary.json")


def probabilities_path_of(output: Path) -> Path:
    return Path(output).with_suffix(".probabilities.tif")


def _classify(cfg: ClassifyConfig, model: DeployedModel | None) -> ClassifyResult:
    cfg.check()
    outputs = MapOutputs.of(cfg)
    with recorded_warnings() as notes:
        source = open_source(cfg)
        check_outputs(cfg, outputs, source)
        if model is None:
            model = load_deployed(cfg.model, cfg.precision, cfg.device, cfg.store, cfg.session_options())
        model.hash_in_background()  # the model's SHA-256 for the summary, while the scene is mapped
        import_in_background("pystac")  # for the STAC Item at the end (0.1 s of a small scene's start-up)
        plan = plan_scene(cfg, model, source)
    _check_space(cfg, plan, len(model.classes))
    if cfg.vector is not None:  # a --vector-min-area the scene's CRS cannot express fails before any work
        sieve_size(cfg.vector_config(), pixel_area(plan.profile["transform"]), is_metric(plan.profile["crs"]),
                   str(cfg.scene))
    named = outputs.named()
    with atomic_files(list(named.values()), cfg.overwrite) as temp_list:
        temps = dict(zip(named, temp_list))
        run = _run(cfg, model, plan, temps["map"], temps.get("probabilities"), temps.get("confidence"))
        if run.patches == 0:
            why = "every valid pixel is masked" if run.masked_pixels else "it holds no valid pixels"
            notes.append(f"{source.name}: {why}; the map is all nodata")
            warn(notes[-1])
        summary = _summary(cfg, model, plan, run, outputs, notes)
        write_legend(map_legend(model.classes, run.counts, run.area_m2),
                     temps["aux"], temps["qml"])
        if cfg.preview is not None:
            write_preview(temps["map"], temps["preview"], model.classes, class_colours(model.classes))
        if cfg.legend is not None:
            write_legend_image(temps["legend"], model.classes, [r["km2"] for r in summary["classes"].values()])
        if cfg.vector is not None:
            temps["vector"].unlink()  # OGR creates the GeoPackage itself
            polygons = write_polygons(temps["map"], temps["vector"], cfg.vector_config(), final=outputs.vector)
            summary["vector"] = {"path": recorded(outputs.vector, outputs.map.parent), "polygons": polygons.polygons,
                                 "sieve_pixels": polygons.sieve_pixels, "sieved_pixels": polygons.sieved_pixels}
        temps["summary"].write_text(json.dumps(summary, indent=2))
        _write_item(temps, outputs, model)
    return ClassifyResult(outputs.map, outputs.summary, summary, run.patches, run.skipped, run.seconds,
                          str(model.path), model.precision, model.device, plan.rule.to_dict(), notes, run.low_valid,
                          model.why, run.masked_pixels)


COMPANIONS = {"summary": (["metadata"], "area summary and run record"), "aux": (["metadata"], "GDAL categories"),
              "qml": (["metadata"], "QGIS style"), "confidence": (["data"], "confidence of the winning class, %"),
              "probabilities": (["data"], "probability of each class, %"), "preview": (["overview"], "quick-look"),
              "vector": (["data"], "polygons of the classes"), "legend": (["overview"], "legend")}


def _write_item(temps: dict[str, Path], outputs: MapOutputs, model: DeployedModel) -> None:
    """The map's STAC Item, its companions as assets, linked to the model's MLM metadata where it has one."""
    companions = {k: (temps[k], *COMPANIONS[k]) for k in COMPANIONS if k in temps}
    class_item(temps["map"], temps["stac"], outputs.map.stem, model.classes, class_colours(model.classes),
               companions, {"lut:kind": "map", "lut:model_sha256": model.sha256},
               mlm_metadata(Path(model.path).parent), outputs.map.parent)


def _summary(cfg: ClassifyConfig, model: DeployedModel, plan: ScenePlan, run: RunStats, outputs: MapOutputs,
             notes: list[str]) -> dict:
    summary = area_summary(run.counts, model.classes, plan.profile["transform"], plan.profile["crs"],
                           run.nodata_pixels, run.area_m2)
    here = outputs.map.parent  # every path in the summary is relative to it: no machine paths in outputs
    pixels = plan.profile["width"] * plan.profile["height"]
    summary.update(format=SUMMARY_FORMAT, scene=recorded(plan.source.spec, here), map=outputs.map.name,
                   model=recorded(model.path, here), model_sha256=model.sha256, precision=model.precision,
                   precision_reason=model.why,
                   device=model.device, window=plan.footprint.to_dict(), stride=plan.grid.stride,
                   bands=list(plan.bands), channels=list(plan.source.channels or []), scaling=plan.rule.to_dict(),
                   radiometry=plan.radiometry, min_valid=cfg.min_valid,
                   mask=None if plan.mask is None else {
                       **plan.mask.to_dict(), "path": recorded(plan.mask.path, here),
                       "masked_pixels": run.masked_pixels,
                       "masked_percent": round(100.0 * run.masked_pixels / max(pixels, 1), 3)},
                   probabilities=None if outputs.probabilities is None else outputs.probabilities.name,
                   confidence=None if outputs.confidence is None else outputs.confidence.name,
                   patches=run.patches, skipped_patches=run.skipped, low_valid_patches=run.low_valid,
                   seconds=run.seconds, warnings=[_relative(note, plan.source, here) for note in notes])
    return summary


def _relative(note: str, source: SceneSource, here: Path) -> str:
    """A warning as the summary records it: the scene named by its recorded path, not the machine's."""
    for name in {source.name, str(source.spec), *map(str, source.files)}:
        local = Path(name.split(" (")[0].split("#")[0])
        if name and local.is_absolute() and local.exists():
            note = note.replace(str(local), recorded(local, here) or "")
    return note


@dataclass
class RunStats:
    counts: np.ndarray
    patches: int = 0
    skipped: int = 0
    low_valid: int = 0
    nodata_pixels: int = 0
    masked_pixels: int = 0
    seconds: float = 0.0
    area_m2: np.ndarray | None = None  # per class


def _run(cfg: ClassifyConfig, model: DeployedModel, plan: ScenePlan, target: Path,
         probabilities: Path | None = None, confidence: Path | None = None) -> RunStats:
    """Stream the scene through the model into `target` (a temporary path), its confidence into
    `confidence` and the class probabilities into `probabilities` when given; with `cog`, both rasters are
    rewritten as COGs at the end."""
    grid = plan.grid
    readers = default_readers() if cfg.readers is None else cfg.readers
    reader = ChunkReader(plan.source.open, plan.bands, cfg.nodata, grid, threads=max(1, readers), mask=plan.mask)
    preparer = Preparer(plan.rule, model.mean, model.std, model.image_size, grid.patch, cfg.uint8_graph)
    producer = BatchProducer(reader, grid, preparer, cfg.batch_size, cfg.prefetch, cfg.min_valid, readers)
    accumulator = CellAccumulator(grid, len(model.classes))
    stats = RunStats(np.zeros(len(model.classes), np.int64))
    model.prepare(uint8=preparer.takes_raw(plan.dtype))  # the one session this scene needs, before any pixel
    start = time.perf_counter()
    with written_as_cog([p for p in (target, confidence) if p is not None], cfg.cog) as staged, \
            contextlib.ExitStack() as stack:
        writer_path, conf_path = staged[0], (staged[1] if confidence is not None else None)
        writer = ClassMapWriter(writer_path, plan.profile, model.classes, conf_path)
        stack.callback(writer.close)
        probs = None if probabilities is None else ProbabilityWriter(probabilities, plan.profile, model.classes)
        if probs is not None:
            stack.callback(probs.close)
        bar = progress_bar(grid.windows, cfg.progress)
        stack.callback(bar.close)
        producer.start()
        stack.callback(producer.close)
        while (batch := producer.out.get()) is not None:
            pixels = batch.pixels.result()
            if len(batch.where):
                logits = (model.logits_uint8(plan.rule, pixels) if isinstance(pixels, tuple)
                          else model.logits(pixels))
                accumulator.add(batch.where, softmax(logits))
            stats.patches += len(batch.where)
            stats.skipped += batch.skipped
            stats.low_valid += batch.low_valid
            bar.update(len(batch.where) + batch.skipped + batch.low_valid)
            _write_rows(batch, accumulator, writer, probs, stats)
        if producer.error is not None:
            raise producer.error
    stats.counts, stats.area_m2 = writer.counts, writer.area_m2
    stats.seconds = time.perf_counter() - start
    return stats


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, shown: bool):
    """tqdm's bar, imported only when shown (its import is 0.05 s of a small scene's start-up)."""
    if not shown:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="patch", desc="classify", smoothing=0.1)


def _write_rows(batch, accumulator: CellAccumulator, writer: ClassMapWriter, probs: ProbabilityWriter | None,
                stats: RunStats) -> None:
    """The cell rows this batch finished, into the map (and the probabilities)."""
    for cell_row, valid, masked in batch.finished_rows:
        y0 = int(accumulator.grid.y_edges[cell_row])
        cls, conf, counts = accumulator.row_pixels(cell_row, valid)
        stats.nodata_pixels += cls.size - int(counts.sum())
        stats.masked_pixels += masked
        writer.write_rows(y0, cls, conf, counts)
        if probs is not None:
            probs.write_rows(y0, accumulator.row_probabilities(cell_row, valid))


__all__ = ["ClassifyConfig", "ClassifyResult", "classify_scene", "format_summary"]
