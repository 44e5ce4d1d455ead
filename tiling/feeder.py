"""The feeder: scene windows -> model input, fast enough to keep a GPU busy.

One reader thread reads strips (GDAL), drops windows without enough valid pixels and copies the others,
still in the scene's pixel type, into a ring of raw batch buffers: a memcpy per window. Preparing a batch
(scaling, filling invalid pixels, resizing, normalising) runs on a pool of `readers` threads, several
batches at once, and the batches come out in order. For uint8 scenes at the model's input size, windows
whose pixels are all valid are not prepared at all: the model normalises them inside its graph
(`lut.export.uint8_input`), with the same float32 arithmetic, so the maps are identical.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from lut.toolkit.core.machine import cpu_cores
from lut.toolkit.core.radiometry import BandRule
from lut.toolkit.core.resample import resize_chw

from .grid import PatchGrid
from lut.toolkit.core.chunks import ChunkReader


def default_readers() -> int:
    """Half the cores, at most 4: the rest run ONNX Runtime and the writer (on 2 cores 1 beats 2, measured
    in bench/bench_many.py)."""
    return max(1, min(4, cpu_cores() // 2))


@dataclass
class Batch:
    pixels: Future  # -> float32 (n, 3, S, S), or (uint8 (a, 3, S, S), float32 (n - a, 3, S, S)) for the uint8 graph
    where: list[tuple[int, int]]  # window (row, col) of each item, in that order
    # (cell row, its valid pixels, how many of its pixels the cloud/quality mask removed)
    finished_rows: list[tuple[int, np.ndarray, int]] = field(default_factory=list)
    skipped: int = 0
    low_valid: int = 0


class Preparer:
    """Turns raw windows into model input with the band rule, the model's size and normalisation.

    `graph`: uint8 windows at the model's size are handed over as they are, for a model that normalises
    them inside its graph (`lut.export.uint8_input`); windows with invalid pixels, and every other case, are
    prepared here, one window at a time."""

    def __init__(self, rule: BandRule, mean: np.ndarray, std: np.ndarray, size: int, window: int,
                 graph: bool = False) -> None:
        self.rule, self.mean, self.std, self.size = rule, mean, std, size
        self.graph = graph and window == size

    def takes_raw(self, dtype) -> bool:
        return self.graph and np.dtype(dtype) == np.uint8

    def one(self, raw: np.ndarray, valid: np.ndarray | None, out: np.ndarray) -> None:
        if raw.shape[-1] == self.size:
            self.rule.apply(raw, self.mean, self.std, out=out, valid=valid)
            return
        out[:] = resize_chw(self.rule.apply(raw, valid=valid), self.size)
        out -= self.mean
        out *= 1.0 / self.std

    def batch(self, raw: np.ndarray, partial: list[tuple[np.ndarray, np.ndarray]], out: np.ndarray):
        """`raw`: windows with every pixel valid; `partial`: (raw, valid) of the others, after them."""
        if self.takes_raw(raw.dtype):
            for i, (window, valid) in enumerate(partial):
                self.one(window, valid, out[i])
            return raw, out[:len(partial)]
        n = len(raw)
        for i in range(n):
            self.one(raw[i], None, out[i])
        for i, (window, valid) in enumerate(partial):
            self.one(window, valid, out[n + i])
        return out[:n + len(partial)]


class BatchProducer(threading.Thread):
    """Reads strips, skips windows without enough valid pixels, and queues batches (in order) whose
    pixels are being prepared by a pool of `readers` threads."""

    def __init__(self, reader: ChunkReader, grid: PatchGrid, preparer: Preparer, batch_size: int, prefetch: int,
                 min_valid: float, readers: int = 1) -> None:
        super().__init__(daemon=True, name="lut-reader")
        self.reader, self.grid, self.preparer = reader, grid, preparer
        self.batch_size, self.min_valid = batch_size, min_valid
        self.out: queue.Queue = queue.Queue(maxsize=prefetch)
        # readers=0: prepare on the reader thread itself, as lut did before the pool (kept for the benchmark)
        self.pool = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="lut-prepare") if readers else None
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

    def close(self) -> None:
        self.stop_event.set()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self, fn, *args) -> Future:
        if self.pool is not None:
            return self.pool.submit(fn, *args)
        future: Future = Future()
        future.set_result(fn(*args))
        return future

    def _produce(self) -> None:
        p, size, bands = self.grid.patch, self.preparer.size, len(self.preparer.mean)
        # Fixed rings of raw and prepared buffers: at most `prefetch` batches wait in the queue, one is being
        # filled and one is being inferred, so prefetch + 3 buffers are never overwritten while in use;
        # allocating fresh buffers per batch instead lets the heap fragment and RSS creep up with scene size.
        slots = self.out.maxsize + 3
        raws: list[np.ndarray] = []  # in the scene's pixel type, known from the first strip
        outs: list[np.ndarray] = []
        filled = n = skipped = low = 0
        where: list[tuple[int, int]] = []
        partial: list[tuple[np.ndarray, np.ndarray]] = []
        partial_where: list[tuple[int, int]] = []
        finished: list[tuple[int, np.ndarray, int]] = []
        pending: dict[int, list] = {}  # [validity, masked count] of cell rows being assembled, chunk by chunk

        def submit() -> None:
            slot = filled % slots
            future = self._submit(self.preparer.batch, raws[slot][:n], partial, outs[slot])
            self._put(Batch(future, where + partial_where, finished, skipped, low))

        for chunk in self.reader.chunks(self.stop_event.is_set):
            if not raws:
                raws = [np.empty((self.batch_size, bands, p, p), chunk.data.dtype) for _ in range(slots)]
                outs = [np.empty((self.batch_size, bands, size, size), np.float32) for _ in range(slots)]
            for k, x0 in enumerate(chunk.offsets.tolist()):
                valid = chunk.valid[:, x0:x0 + p]
                fraction = valid.mean()
                if fraction == 0.0 or fraction < self.min_valid:
                    skipped += int(fraction == 0.0)
                    low += int(fraction > 0.0)
                    continue
                if fraction < 1.0:
                    partial.append((chunk.data[:, :, x0:x0 + p].copy(), valid.copy()))
                    partial_where.append((chunk.row, chunk.first_col + k))
                else:
                    raws[filled % slots][n] = chunk.data[:, :, x0:x0 + p]
                    where.append((chunk.row, chunk.first_col + k))
                    n += 1
                if n + len(partial) == self.batch_size:
                    submit()
                    filled += 1
                    n, where, partial, partial_where, finished, skipped, low = 0, [], [], [], [], 0, 0
            self._finish_rows(chunk, pending, finished)
        if raws:
            submit()
        else:  # stopped before the first strip
            self._put(Batch(self._submit(np.empty, (0, bands, size, size), np.float32), [], finished,
                            skipped, low))

    def _finish_rows(self, chunk, pending: dict[int, list], finished: list) -> None:
        g = self.grid
        y_row = int(g.y_origins[chunk.row])
        for cell_row in g.cells_final_after(chunk.row):
            top, bottom = int(g.y_edges[cell_row]), int(g.y_edges[cell_row + 1])
            entry = pending.setdefault(cell_row, [np.zeros((bottom - top, g.width), bool), 0])
            rows = slice(top - y_row, bottom - y_row)
            entry[0][:, chunk.x_start:chunk.x_start + chunk.width] = chunk.valid[rows, :chunk.width]
            if chunk.masked is not None:
                entry[1] += int(chunk.masked[rows, :chunk.width].sum())
            if chunk.last:
                valid, masked = pending.pop(cell_row)
                finished.append((cell_row, valid, masked))
