"""`lut classify` as a library call: stream a scene through the model and write a georeferenced map.

A reader thread reads each window row in column chunks, cuts and scales the patches and queues full batches;
the main thread runs ONNX Runtime (which releases the GIL) and accumulates class probabilities on the
cell grid, so reading never waits for inference and memory stays flat whatever the scene's size.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from lut.toolkit.atomic import atomic_files
from lut.toolkit.errors import LutError
from lut.toolkit.legend import class_colours, is_lut_legend, sidecars, write_legend
from lut.toolkit.ownership import SUMMARY_FORMAT, check_output_file, is_lut_map, is_lut_preview, is_lut_summary
from lut.toolkit.radiometry import BandRule
from lut.toolkit.raster import GDAL_CACHE_MB, check_gsd, is_metric, pixel_area, raster_gsd
from lut.toolkit.resample import resize_chw
from lut.toolkit.store import DEFAULT_STORE
from lut.toolkit.vectorize import VectorizeConfig, is_lut_vector, sieve_size, write_polygons

from .deployed import DeployedModel, load_deployed
from .footprint import Footprint, plan_footprint
from .grid import PatchGrid
from .scene import ChunkReader, check_nodata, choose_rule, open_raster, scene_bands
from .summary import area_summary, format_summary, write_preview
from .writer import CONFIDENCE_NODATA, NODATA, ClassMapWriter, map_legend, to_cog


#: a window with less than this fraction of valid pixels is written as nodata: with fewer, the filled
#: window is mostly the fill, and its class would be a guess.
MIN_VALID = 0.25


@dataclass
class ClassifyConfig:
    scene: Path
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
    vector: Path | None = None
    vector_min_area: float | None = None  # hectares
    overwrite: bool = False
    progress: bool = True
    prefetch: int = 4
    threads: int | None = None
    store: Path = DEFAULT_STORE

    def check(self) -> None:
        if not 0.0 <= self.min_valid <= 1.0:
            raise LutError(f"--min-valid must be a fraction between 0 and 1, got {self.min_valid}")
        check_gsd(self.gsd)
        if self.vector_min_area is not None and self.vector is None:
            raise LutError("--vector-min-area applies to --vector polygons: add --vector FILE.gpkg")
        if self.vector is not None:
            VectorizeConfig(self.scene, self.vector, self.vector_min_area).check()


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

    @property
    def patches_per_second(self) -> float:
        return self.patches / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Batch:
    pixels: np.ndarray  # (B, 3, P, P) float32, normalised
    where: list[tuple[int, int]]  # window (row, col) of each item
    finished_rows: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (cell row, valid mask rows)
    skipped: int = 0
    low_valid: int = 0


class BatchProducer(threading.Thread):
    """Reads strips, skips windows without enough valid pixels, scales, fills, resizes and normalises
    patches, and queues batches in order."""

    def __init__(self, reader: ChunkReader, grid: PatchGrid, rule: BandRule, model: DeployedModel,
                 batch_size: int, prefetch: int, min_valid: float = MIN_VALID) -> None:
        super().__init__(daemon=True, name="lut-reader")
        self.reader, self.grid, self.rule, self.model = reader, grid, rule, model
        self.batch_size, self.min_valid = batch_size, min_valid
        self.out: queue.Queue = queue.Queue(maxsize=prefetch)
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def _put(self, item) -> None:
        while not self.stop_event.is_set():
            try:
                self.out.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def run(self) -> None:
        try:
            self._produce()
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc
        finally:
            self._put(None)

    def _scale_into(self, raw: np.ndarray, valid: np.ndarray, out: np.ndarray) -> None:
        """Scale and fill one window; resize it to the model's input when its footprint says so."""
        m = self.model
        if raw.shape[-1] == out.shape[-1]:
            self.rule.apply(raw, m.mean, m.std, out=out, valid=valid)  # straight into the batch buffer
            return
        scaled = self.rule.apply(raw, valid=valid)
        out[:] = resize_chw(scaled, out.shape[-1])
        out -= m.mean
        out *= 1.0 / m.std

    def _produce(self) -> None:
        g, p = self.grid, self.grid.patch
        size = self.model.image_size
        # A fixed ring of batch buffers: at most `prefetch` batches wait in the queue, one is being filled and
        # one is being inferred, so prefetch + 2 buffers are never overwritten while in use; allocating a
        # fresh 20 MB buffer per batch instead lets the heap fragment and RSS creep up with scene size.
        ring = [np.empty((self.batch_size, 3, size, size), np.float32) for _ in range(self.out.maxsize + 2)]
        filled = n = skipped = low = 0
        buffer = ring[0]
        where: list[tuple[int, int]] = []
        finished: list[tuple[int, np.ndarray]] = []
        pending: dict[int, np.ndarray] = {}  # validity of cell rows being assembled, chunk by chunk
        for chunk in self.reader.chunks(self.stop_event.is_set):
            for k, x0 in enumerate(chunk.offsets.tolist()):
                valid = chunk.valid[:, x0:x0 + p]
                fraction = valid.mean()
                if fraction == 0.0 or fraction < self.min_valid:
                    skipped += int(fraction == 0.0)
                    low += int(fraction > 0.0)
                    continue
                self._scale_into(chunk.data[:, :, x0:x0 + p], valid, buffer[n])
                where.append((chunk.row, chunk.first_col + k))
                n += 1
                if n == self.batch_size:
                    self._put(Batch(buffer, where, finished, skipped, low))
                    filled += 1
                    buffer = ring[filled % len(ring)]
                    n, where, finished, skipped, low = 0, [], [], 0, 0
            y_row = int(g.y_origins[chunk.row])
            for cell_row in g.cells_final_after(chunk.row):
                top, bottom = int(g.y_edges[cell_row]), int(g.y_edges[cell_row + 1])
                mask = pending.setdefault(cell_row, np.zeros((bottom - top, g.width), bool))
                mask[:, chunk.x_start:chunk.x_start + chunk.width] = \
                    chunk.valid[top - y_row:bottom - y_row, :chunk.width]
                if chunk.last:
                    finished.append((cell_row, pending.pop(cell_row)))
        self._put(Batch(buffer[:n], where, finished, skipped, low))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class CellAccumulator:
    """Summed class probabilities per cell (the pieces between window edges); overlaps average out."""

    def __init__(self, grid: PatchGrid, classes: int) -> None:
        self.grid = grid
        self.probs = np.zeros((grid.cell_rows, grid.cell_cols, classes), np.float32)
        self.hits = np.zeros((grid.cell_rows, grid.cell_cols), np.float32)
        self.widths = grid.cell_widths()
        self.heights = grid.cell_heights()

    def add(self, where: list[tuple[int, int]], probs: np.ndarray) -> None:
        rows, cols = self.grid.row_cells, self.grid.col_cells
        for (r, c), p in zip(where, probs):
            (y0, y1), (x0, x1) = rows[r], cols[c]
            self.probs[y0:y1, x0:x1] += p
            self.hits[y0:y1, x0:x1] += 1

    def row_pixels(self, cell_row: int, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class and confidence (0-100) pixels of one cell row; nodata where invalid or never classified."""
        hits = self.hits[cell_row]
        mean = self.probs[cell_row] / np.maximum(hits, 1)[:, None]
        cls = np.where(hits > 0, mean.argmax(1), NODATA).astype(np.uint8)
        conf = np.where(hits > 0, np.round(mean.max(1) * 100), CONFIDENCE_NODATA).astype(np.uint8)
        rows = int(self.heights[cell_row])
        cls_px = np.repeat(np.repeat(cls, self.widths)[None], rows, 0)
        conf_px = np.repeat(np.repeat(conf, self.widths)[None], rows, 0)
        invalid = ~valid
        cls_px[invalid] = NODATA
        conf_px[invalid] = CONFIDENCE_NODATA
        return cls_px, conf_px


def _say(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)




def classify_scene(cfg: ClassifyConfig, warn: Callable[[str], None] = _say,
                   model: DeployedModel | None = None) -> ClassifyResult:
    """Classify `cfg.scene` into `cfg.output`; nothing appears at `cfg.output` unless the whole map is written.

    `model`: an already-loaded model (`load_deployed`), so many scenes share one session; by default
    the model `cfg` names is loaded."""
    import rasterio

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 1024 * 1024):
        return _classify(cfg, warn, model)


@dataclass
class ScenePlan:
    """Everything decided about a scene before the first window is read."""

    bands: tuple[int, ...]
    rule: BandRule
    footprint: Footprint
    grid: PatchGrid
    profile: dict


def plan_scene(cfg: ClassifyConfig, model: DeployedModel, note: Callable[[str], None]) -> ScenePlan:
    with open_raster(cfg.scene) as src:
        bands = scene_bands(src, cfg.bands, model.rule.bands if model.rule else None, note)
        check_nodata(src, cfg.nodata, bands)
        rule = choose_rule(src, bands, cfg.scale, model.rule, cfg.nodata, cfg.reflectance_offset, note)
        gsd = cfg.gsd or raster_gsd(src)
        footprint = plan_footprint(model.image_size, model.chip, gsd, cfg.resample, note, str(cfg.scene))
        profile = {"width": src.width, "height": src.height, "crs": src.crs, "transform": src.transform}
        if src.crs is None:
            note(f"{cfg.scene} has no CRS; the map is written without one")
    window = footprint.window_px
    grid = PatchGrid(profile["height"], profile["width"], window, cfg.stride or window)
    factor = (window / grid.stride) ** 2
    if factor >= 16:
        note(f"--stride {grid.stride} makes {grid.windows:,} windows, about {factor:.0f}x the work of the "
             f"default stride {window}")
    return ScenePlan(bands, rule, footprint, grid, profile)


@dataclass
class MapOutputs:
    """A map and the sidecars that change with it: summary, GDAL/QGIS legend, and optional preview and
    polygons."""

    map: Path
    summary: Path
    aux: Path
    qml: Path
    preview: Path | None = None
    vector: Path | None = None

    @classmethod
    def of(cls, cfg: ClassifyConfig) -> MapOutputs:
        output = Path(cfg.output)
        aux, qml = sidecars(output)
        optional = [None if p is None else Path(p) for p in (cfg.preview, cfg.vector)]
        return cls(output, summary_path_of(output), aux, qml, *optional)

    def named(self) -> dict[str, Path]:
        return {k: v for k, v in vars(self).items() if v is not None}


_OWNED = {"map": is_lut_map, "summary": is_lut_summary, "aux": is_lut_legend, "qml": is_lut_legend,
          "preview": is_lut_preview, "vector": is_lut_vector}


def check_outputs(cfg: ClassifyConfig, outputs: MapOutputs) -> None:
    """Every output is new, or lut's own under --overwrite; none is an input or another output. Checked
    before any work."""
    inputs = [cfg.scene, cfg.model]
    seen: dict[Path, str] = {}
    for name, path in outputs.named().items():
        check_output_file(path, cfg.overwrite, _OWNED[name], inputs, name)
        if path.resolve() in seen:
            raise LutError(f"--{name} {path} would overwrite the {seen[path.resolve()]}")
        seen[path.resolve()] = name


def summary_path_of(output: Path) -> Path:
    return Path(output).with_suffix(".summary.json")


def _classify(cfg: ClassifyConfig, warn: Callable[[str], None], model: DeployedModel | None) -> ClassifyResult:
    cfg.check()
    outputs = MapOutputs.of(cfg)
    check_outputs(cfg, outputs)
    notes: list[str] = []

    def note(message: str) -> None:
        notes.append(message)
        warn(message)

    if model is None:
        model = load_deployed(cfg.model, cfg.precision, cfg.device, cfg.store, cfg.threads)
    plan = plan_scene(cfg, model, note)
    vector_cfg = VectorizeConfig(cfg.scene, outputs.vector, cfg.vector_min_area)
    if cfg.vector is not None:  # a --vector-min-area the scene's CRS cannot express fails before any work
        sieve_size(vector_cfg, pixel_area(plan.profile["transform"]), is_metric(plan.profile["crs"]), str(cfg.scene))
    named = outputs.named()
    with atomic_files(list(named.values()), cfg.overwrite) as temp_list:
        temps = dict(zip(named, temp_list))
        run = _run(cfg, model, plan, temps["map"])
        if run.patches == 0:
            note(f"{cfg.scene} holds no valid pixels; the map is all nodata")
        summary = area_summary(run.counts, model.classes, plan.profile["transform"], plan.profile["crs"],
                               run.nodata_pixels)
        summary.update(format=SUMMARY_FORMAT, scene=str(Path(cfg.scene).resolve()), map=str(outputs.map.resolve()),
                       model=str(model.path), precision=model.precision, precision_reason=model.why,
                       device=model.device, window=plan.footprint.to_dict(), stride=plan.grid.stride,
                       bands=list(plan.bands), scaling=plan.rule.to_dict(), min_valid=cfg.min_valid,
                       patches=run.patches, skipped_patches=run.skipped, low_valid_patches=run.low_valid,
                       seconds=run.seconds, warnings=notes)
        write_legend(map_legend(model.classes, run.counts, summary["pixel_area_m2"], cfg.confidence),
                     temps["aux"], temps["qml"])
        if cfg.preview is not None:
            write_preview(temps["map"], temps["preview"], model.classes, class_colours(model.classes))
        if cfg.vector is not None:
            temps["vector"].unlink()  # OGR creates the GeoPackage itself
            polygons = write_polygons(temps["map"], temps["vector"], vector_cfg, final=outputs.vector)
            summary["vector"] = {"path": str(outputs.vector.resolve()), "polygons": polygons.polygons,
                                 "sieve_pixels": polygons.sieve_pixels, "sieved_pixels": polygons.sieved_pixels}
        temps["summary"].write_text(json.dumps(summary, indent=2))
    return ClassifyResult(outputs.map, outputs.summary, summary, run.patches, run.skipped, run.seconds,
                          str(model.path), model.precision, model.device, plan.rule.to_dict(), notes, run.low_valid,
                          model.why)


@dataclass
class RunStats:
    counts: np.ndarray
    patches: int = 0
    skipped: int = 0
    low_valid: int = 0
    nodata_pixels: int = 0
    seconds: float = 0.0


def _run(cfg: ClassifyConfig, model: DeployedModel, plan: ScenePlan, target: Path) -> RunStats:
    """Stream the scene through the model into `target` (a temporary path)."""
    grid = plan.grid
    reader = ChunkReader(Path(cfg.scene), plan.bands, cfg.nodata, grid)
    producer = BatchProducer(reader, grid, plan.rule, model, cfg.batch_size, cfg.prefetch, cfg.min_valid)
    accumulator = CellAccumulator(grid, len(model.classes))
    writer_path = target.with_name(target.name + ".gtiff.tif") if cfg.cog else target
    stats = RunStats(np.zeros(len(model.classes), np.int64))
    start = time.perf_counter()
    try:
        writer = ClassMapWriter(writer_path, plan.profile, model.classes, cfg.confidence)
        bar = tqdm(total=grid.windows, unit="patch", desc="classify", disable=not cfg.progress, smoothing=0.1)
        producer.start()
        try:
            while (batch := producer.out.get()) is not None:
                if len(batch.where):
                    accumulator.add(batch.where, softmax(model.logits(batch.pixels)))
                stats.patches += len(batch.where)
                stats.skipped += batch.skipped
                stats.low_valid += batch.low_valid
                bar.update(len(batch.where) + batch.skipped + batch.low_valid)
                for cell_row, valid in batch.finished_rows:
                    cls, conf = accumulator.row_pixels(cell_row, valid)
                    stats.nodata_pixels += int((cls == NODATA).sum())
                    writer.write_rows(int(grid.y_edges[cell_row]), cls, conf)
            if producer.error is not None:
                raise producer.error
        finally:
            producer.stop_event.set()
            bar.close()
            writer.close()
        if cfg.cog:
            to_cog(writer_path, target)
    finally:
        if cfg.cog:
            writer_path.unlink(missing_ok=True)
    stats.counts = writer.counts
    stats.seconds = time.perf_counter() - start
    return stats


__all__ = ["ClassifyConfig", "ClassifyResult", "classify_scene", "format_summary"]
