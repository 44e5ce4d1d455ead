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

from lut.toolkit.atomic import atomic_file, refuse_existing
from lut.toolkit.radiometry import BandRule
from lut.toolkit.store import DEFAULT_STORE

from .deployed import DeployedModel, load_deployed
from .grid import PatchGrid
from .scene import ChunkReader, choose_rule, open_raster, scene_bands
from .summary import area_summary, format_summary, write_preview
from .writer import NODATA, ClassMapWriter, class_colours, to_cog


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
    batch_size: int = 32
    confidence: bool = False
    cog: bool = False
    preview: Path | None = None
    overwrite: bool = False
    progress: bool = True
    prefetch: int = 4
    threads: int | None = None
    store: Path = DEFAULT_STORE


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

    @property
    def patches_per_second(self) -> float:
        return self.patches / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Batch:
    pixels: np.ndarray  # (B, 3, P, P) float32, normalised
    where: list[tuple[int, int]]  # window (row, col) of each item
    finished_rows: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (cell row, valid mask rows)
    skipped: int = 0


class BatchProducer(threading.Thread):
    """Reads strips, skips all-nodata windows, scales and normalises patches, queues batches in order."""

    def __init__(self, reader: ChunkReader, grid: PatchGrid, rule: BandRule, model: DeployedModel,
                 batch_size: int, prefetch: int) -> None:
        super().__init__(daemon=True, name="lut-reader")
        self.reader, self.grid, self.rule, self.model = reader, grid, rule, model
        self.batch_size = batch_size
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

    def _produce(self) -> None:
        g, p, s = self.grid, self.grid.patch, self.grid.stride
        # A fixed ring of batch buffers: at most `prefetch` batches wait in the queue, one is being filled and
        # one is being inferred, so prefetch + 2 buffers are never overwritten while in use; allocating a
        # fresh 20 MB buffer per batch instead lets the heap fragment and RSS creep up with scene size.
        ring = [np.empty((self.batch_size, 3, p, p), np.float32) for _ in range(self.out.maxsize + 2)]
        filled = 0
        buffer = ring[0]
        n = 0
        where: list[tuple[int, int]] = []
        finished: list[tuple[int, np.ndarray]] = []
        pending: dict[int, np.ndarray] = {}  # validity of cell rows being assembled, chunk by chunk
        skipped = 0
        for chunk in self.reader.chunks(self.stop_event.is_set):
            for k in range(chunk.ncols):
                x0 = k * s
                if not chunk.valid[:, x0:x0 + p].any():
                    skipped += 1
                    continue
                # scale and normalise straight into the batch buffer: no per-patch or stacking copies
                self.rule.apply(chunk.data[:, :, x0:x0 + p], self.model.mean, self.model.std, out=buffer[n])
                where.append((chunk.row, chunk.first_col + k))
                n += 1
                if n == self.batch_size:
                    self._put(Batch(buffer, where, finished, skipped))
                    filled += 1
                    buffer = ring[filled % len(ring)]
                    n, where, finished, skipped = 0, [], [], 0
            x_start = chunk.first_col * s
            width = min(chunk.valid.shape[1], g.padded_width - x_start)
            for cell_row in g.cells_final_after(chunk.row):
                offset = (cell_row - chunk.row) * s
                mask = pending.setdefault(cell_row, np.zeros((s, g.padded_width), bool))
                mask[:, x_start:x_start + width] = chunk.valid[offset:offset + s, :width]
                if chunk.last:
                    finished.append((cell_row, pending.pop(cell_row)))
        self._put(Batch(buffer[:n], where, finished, skipped))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class CellAccumulator:
    """Summed class probabilities per stride x stride cell; overlapping windows average out."""

    def __init__(self, grid: PatchGrid, classes: int) -> None:
        self.grid = grid
        self.probs = np.zeros((grid.cell_rows, grid.cell_cols, classes), np.float32)
        self.hits = np.zeros((grid.cell_rows, grid.cell_cols), np.float32)

    def add(self, where: list[tuple[int, int]], probs: np.ndarray) -> None:
        m = self.grid.span
        for (r, c), p in zip(where, probs):
            self.probs[r:r + m, c:c + m] += p
            self.hits[r:r + m, c:c + m] += 1

    def row_pixels(self, cell_row: int, valid: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Class and confidence (0-100) pixels of one cell row; nodata where invalid or never seen."""
        s = self.grid.stride
        hits = self.hits[cell_row]
        mean = self.probs[cell_row] / np.maximum(hits, 1)[:, None]
        cls = np.where(hits > 0, mean.argmax(1), NODATA).astype(np.uint8)
        conf = np.where(hits > 0, np.round(mean.max(1) * 100), 0).astype(np.uint8)
        rows = min(s, self.grid.height - cell_row * s)
        cls_px = np.repeat(np.repeat(cls[None], rows, 0), s, 1)[:, :width]
        conf_px = np.repeat(np.repeat(conf[None], rows, 0), s, 1)[:, :width]
        invalid = ~valid[:rows, :width]
        cls_px[invalid] = NODATA
        conf_px[invalid] = 0
        return cls_px, conf_px


def _say(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


#: GDAL's block cache defaults to 5% of RAM and fills up on big scenes; strips need far less.
GDAL_CACHE_MB = 64


def classify_scene(cfg: ClassifyConfig, warn: Callable[[str], None] = _say) -> ClassifyResult:
    """Classify `cfg.scene` into `cfg.output`; nothing appears at `cfg.output` unless the whole map is written."""
    import rasterio

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 1024 * 1024):
        return _classify(cfg, warn)


def _classify(cfg: ClassifyConfig, warn: Callable[[str], None]) -> ClassifyResult:
    output = Path(cfg.output)
    refuse_existing(output, cfg.overwrite)
    if cfg.preview is not None:
        refuse_existing(Path(cfg.preview), cfg.overwrite)
    summary_path = output.with_suffix(".summary.json")
    model = load_deployed(cfg.model, cfg.precision, cfg.device, cfg.store, cfg.threads)
    notes: list[str] = []

    def note(message: str) -> None:
        notes.append(message)
        warn(message)

    with open_raster(cfg.scene) as src:
        bands = scene_bands(src, cfg.bands, model.rule.bands if model.rule else None)
        nodata = cfg.nodata
        rule = choose_rule(src, bands, cfg.scale, model.rule, nodata)
        profile = {"width": src.width, "height": src.height, "crs": src.crs, "transform": src.transform}
        if src.crs is None:
            note(f"{cfg.scene} has no CRS; the map is written without one")
    grid = PatchGrid(profile["height"], profile["width"], model.image_size, cfg.stride or model.image_size)
    reader = ChunkReader(Path(cfg.scene), bands, nodata, grid)
    producer = BatchProducer(reader, grid, rule, model, cfg.batch_size, cfg.prefetch)
    accumulator = CellAccumulator(grid, len(model.classes))
    patches = skipped = nodata_pixels = 0
    start = time.perf_counter()
    with atomic_file(output, cfg.overwrite, suffix=".tif") as tmp:
        writer_path = tmp.with_name(tmp.name + ".gtiff.tif") if cfg.cog else tmp
        writer = ClassMapWriter(writer_path, profile, model.classes, cfg.confidence)
        bar = tqdm(total=grid.windows, unit="patch", desc="classify", disable=not cfg.progress, smoothing=0.1)
        producer.start()
        try:
            try:
                while True:
                    batch = producer.out.get()
                    if batch is None:
                        break
                    if len(batch.where):
                        accumulator.add(batch.where, softmax(model.logits(batch.pixels)))
                    patches += len(batch.where)
                    skipped += batch.skipped
                    bar.update(len(batch.where) + batch.skipped)
                    for cell_row, valid in batch.finished_rows:
                        cls, conf = accumulator.row_pixels(cell_row, valid, grid.width)
                        nodata_pixels += int((cls == NODATA).sum())
                        writer.write_rows(cell_row * grid.stride, cls, conf)
                if producer.error is not None:
                    raise producer.error
            finally:
                producer.stop_event.set()
                bar.close()
                writer.close()
            if cfg.cog:
                to_cog(writer_path, tmp)
        finally:
            if cfg.cog:
                writer_path.unlink(missing_ok=True)
        seconds = time.perf_counter() - start
        if patches == 0:
            note(f"{cfg.scene} holds no valid pixels; the map is all nodata")
        summary = area_summary(writer.counts, model.classes, profile["transform"], profile["crs"], nodata_pixels)
        summary.update(scene=str(Path(cfg.scene).resolve()), model=str(model.path), precision=model.precision,
                       device=model.device, patch=grid.patch, stride=grid.stride, bands=list(bands),
                       scaling=rule.to_dict(), patches=patches, skipped_patches=skipped, seconds=seconds)
        with atomic_file(summary_path, overwrite=True) as tmp_summary:
            tmp_summary.write_text(json.dumps(summary, indent=2))
        if cfg.preview is not None:
            with atomic_file(Path(cfg.preview), overwrite=True) as tmp_png:
                write_preview(tmp, tmp_png, model.classes, class_colours(model.classes))
    return ClassifyResult(output, summary_path, summary, patches, skipped, seconds, str(model.path),
                          model.precision, model.device, rule.to_dict(), notes)


__all__ = ["ClassifyConfig", "ClassifyResult", "classify_scene", "format_summary"]
