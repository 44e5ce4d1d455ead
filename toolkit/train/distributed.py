"""Many devices and nodes through Lightning Fabric: the options, the launch, and exact sharded metrics.

One node starts its own ranks (`spawn`, or `fork` where nothing has touched CUDA yet). Multi-node runs
are started by `torchrun` or `srun` around the `lut` entry point; Fabric reads their environment and
starts nothing itself. Every rank runs the same library function; only rank 0 writes.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, get_args

import numpy as np
import torch

from lut.toolkit.core.errors import EXIT_INTERRUPTED, EXIT_TERMINATED, InputError, Interrupted, LutError, RunFailed
from lut.toolkit.core.formats import TRAIN_PRECISIONS, TrainPrecision
from lut.toolkit.core.machine import cpu_cores

Accelerator = Literal["auto", "cpu", "gpu"]
ACCELERATORS: tuple[str, ...] = get_args(Accelerator)
StartMethod = Literal["spawn", "fork"]
START_METHODS: tuple[str, ...] = get_args(StartMethod)


@dataclass(frozen=True)
class DistConfig:
    """Where training runs: N devices on each of M nodes; `precision` is the training arithmetic."""

    devices: int = 1
    nodes: int = 1
    accelerator: Accelerator = "auto"
    precision: TrainPrecision = "fp32"
    start_method: StartMethod = "spawn"  # how one node starts its ranks when nothing else did

    @property
    def world_size(self) -> int:
        return self.devices * self.nodes

    def check(self, batch_size: int | None = None) -> None:
        if self.devices < 1 or self.nodes < 1:
            raise InputError(f"`devices` and `nodes` must be at least 1, got {self.devices} and {self.nodes}")
        if self.accelerator not in ACCELERATORS:
            raise InputError(f"`accelerator` must be one of {', '.join(ACCELERATORS)}, got {self.accelerator!r}")
        if self.precision not in TRAIN_PRECISIONS:
            raise InputError(f"`precision` must be one of {', '.join(TRAIN_PRECISIONS)}, got {self.precision!r}")
        if self.start_method not in START_METHODS:
            raise InputError(f"the start method must be one of {', '.join(START_METHODS)}, got {self.start_method!r}")
        if batch_size is not None and batch_size % self.world_size:
            raise InputError(f"`batch_size` {batch_size} is the global batch and must divide evenly over "
                           f"{self.world_size} ranks (`devices` x `nodes`); pass a multiple of {self.world_size}")
        if self.nodes > 1 and not launched_externally():
            raise InputError(f"`nodes` {self.nodes}: multi-node runs are started by torchrun or srun around `lut` "
                           "(see the README, 'Many GPUs'); run the same command on every node through one of them")


def from_device(device: str) -> str:
    """The accelerator that a single-device `--device` names (cuda -> gpu)."""
    return {"cuda": "gpu", "cpu": "cpu"}.get(device, "auto")


def launched_externally() -> bool:
    """torchrun (TorchElastic) or a SLURM job step started this process as one of several ranks."""
    from lightning_fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    return TorchElasticEnvironment.detect() or (SLURMEnvironment.detect() and
                                                int(os.environ.get("SLURM_NTASKS", "1")) > 1)


def _accelerator(dist: DistConfig) -> str:
    if dist.accelerator == "gpu" and not torch.cuda.is_available():
        raise InputError("`accelerator` gpu was asked for but no CUDA GPU is usable here; pass `accelerator` cpu")
    if dist.accelerator == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if dist.accelerator == "gpu" else "cpu"


def native_bfloat16(device_type: str) -> bool:
    """Whether the hardware has bf16 units (AVX512-BF16/AMX CPUs, Ampere+ GPUs); elsewhere bf16 is emulated."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def fabric_precision(dist: DistConfig, accelerator: str) -> str:
    """Fabric's precision name; auto picks bf16-mixed only where the hardware runs bf16 natively."""
    if dist.precision == "fp32":
        return "32-true"
    supported = native_bfloat16(accelerator)
    if dist.precision == "bf16-mixed" and not supported:
        raise InputError(f"`precision` bf16-mixed was asked for but this {accelerator.upper()} has no native "
                       "bfloat16; pass `precision` fp32")
    return "bf16-mixed" if supported else "32-true"


def _quiet_fabric() -> None:
    """No Fabric banners between lut's own lines, in this process or a spawned rank (which imports this
    module to unpickle its job before Fabric connects the ranks and prints). Imported first: its own import
    sets the level to INFO."""
    import lightning_fabric  # noqa: F401

    logging.getLogger("lightning_fabric").setLevel(logging.WARNING)


_quiet_fabric()


def make_fabric(dist: DistConfig):
    from lightning_fabric import Fabric

    accelerator = _accelerator(dist)
    if dist.world_size == 1:
        strategy = "auto"
    elif launched_externally():
        strategy = "ddp"
    else:
        strategy = "ddp_fork" if dist.start_method == "fork" else "ddp_spawn"
    return Fabric(accelerator=accelerator, devices=dist.devices, num_nodes=dist.nodes, strategy=strategy,
                  precision=fabric_precision(dist, accelerator))


def launch(dist: DistConfig, fn: Callable[..., Any], *args: Any) -> Any:
    """Run `fn(fabric, *args)` on every rank and return rank 0's result (None on the other ranks of an
    externally launched run). A LutError on any rank ends the run with that message."""
    dist.check()
    fabric = make_fabric(dist)
    if dist.world_size == 1 or launched_externally():
        fabric.launch()
        result = fn(fabric, *args)
        return result if fabric.global_rank == 0 else None
    with tempfile.TemporaryDirectory(prefix="lut-ranks-") as errors:
        try:
            # one opaque callable in and one opaque box out: Fabric walks plain arguments and results as
            # collections, which frozen dataclasses (the configurations) do not allow
            return fabric.launch(functools.partial(_guarded, _Box((fn, errors, args, _log_level())))).value
        except KeyboardInterrupt as exc:  # Ctrl-C reached every rank too; SIGTERM only this process
            _stop_ranks()
            failure = _rank_failure(Path(errors), None)
            failure = failure if isinstance(failure, Interrupted) else Interrupted()
            if getattr(exc, "exit_code", EXIT_INTERRUPTED) == EXIT_TERMINATED:  # say what happened here
                failure = Interrupted(str(failure).replace("interrupted", "terminated", 1), EXIT_TERMINATED)
            raise failure from None
        except Exception as exc:  # noqa: BLE001 - a rank failed: report its own message, not multiprocessing's
            raise _rank_failure(Path(errors), exc) from exc


class _Box:
    def __init__(self, value: Any) -> None:
        self.value = value


def _log_level() -> int:
    """The level at which this process shows lut's log records (NOTSET: no handler, nothing shown)."""
    logger = logging.getLogger("lut")
    return logger.getEffectiveLevel() if logger.handlers else logging.NOTSET


def _speak_like_parent(level: int) -> None:
    """A spawned rank starts with no logging or warning set-up: show lut's records and warnings as the
    parent would (one plain line each)."""
    if level != logging.NOTSET:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logging.getLogger("lut").addHandler(handler)
        logging.getLogger("lut").setLevel(level)
        logging.getLogger("lut").propagate = False
    warnings.showwarning = lambda message, *_, **__: print(f"warning: {message}", file=sys.stderr)


def _guarded(job: _Box, fabric) -> _Box:
    """A rank's body: a LutError or interrupt is written for the parent, then the rank exits non-zero so the
    launcher stops the others (which may wait in a collective)."""
    fn, errors, args, log_level = job.value
    _speak_like_parent(log_level)
    # the rank's own thread count, set here even where OMP_NUM_THREADS is (Fabric leaves it then): a forked
    # rank that kept its parent's count would enter the parent's OpenMP pool, which fork did not copy, and hang
    threads = os.environ.get("OMP_NUM_THREADS", "")
    torch.set_num_threads(int(threads) if threads.isdigit() and int(threads) > 0 else
                          max(1, cpu_cores() // fabric.world_size))
    try:
        return _Box(fn(fabric, *args))
    except (LutError, KeyboardInterrupt) as exc:
        code = getattr(exc, "exit_code", EXIT_INTERRUPTED if isinstance(exc, KeyboardInterrupt) else 1)
        record = {"rank": fabric.global_rank, "message": str(exc) or "interrupted; nothing was written",
                  "code": code}
        Path(errors, f"rank{fabric.global_rank}.json").write_text(json.dumps(record))
        raise SystemExit(1) from exc


def _stop_ranks(grace_s: float = 30.0) -> None:
    """Let the ranks finish their own interrupt handling (a checkpoint note): Ctrl-C reached them with this
    process; a SIGTERM sent to this process alone is passed on as an interrupt. Then end any still running."""
    import multiprocessing
    import signal

    children = multiprocessing.active_children()
    for child in children:
        child.join(5.0)
        if child.is_alive() and child.pid is not None:
            os.kill(child.pid, signal.SIGINT)
    for child in children:
        child.join(grace_s)
        if child.is_alive():
            child.terminate()


def _rank_failure(errors: Path, exc: Exception | None) -> LutError | Interrupted:
    records = sorted((json.loads(p.read_text()) for p in errors.glob("rank*.json")), key=lambda r: r["rank"])
    if records:
        first = records[0]
        if first["code"] in (EXIT_INTERRUPTED, EXIT_TERMINATED):
            return Interrupted(first["message"], first["code"])
        return LutError(first["message"], first["code"])
    if exc is None:
        return Interrupted()
    first = str(exc).strip().splitlines()
    detail = next((line for line in reversed(first) if line.strip()), type(exc).__name__)
    return RunFailed(f"a training rank failed: {detail[:200]}")


@dataclass(frozen=True)
class Shard:
    """One rank's share of n items: every rank gets ceil(n / world) (the tail wraps around), so every rank
    runs the same number of batches; `valid` marks the items that are not padding."""

    indices: np.ndarray
    valid: np.ndarray

    @classmethod
    def of(cls, n: int, world: int, rank: int) -> "Shard":
        size = -(-n // world) * world
        positions = np.arange(rank, size, world)
        return cls(positions % max(n, 1), positions < n)


def shard_for(fabric, n: int) -> Shard:
    return Shard.of(n, fabric.world_size, fabric.global_rank)


def gather_rows(fabric, values: torch.Tensor, shard: Shard, n: int) -> torch.Tensor:
    """Every rank's per-item `values` (one row per shard item), back in dataset order, padding removed."""
    if fabric.world_size == 1:
        return values[torch.from_numpy(shard.valid)]
    with warnings.catch_warnings():  # torch deprecates the function lightning calls; nothing a user can act on
        warnings.filterwarnings("ignore", message=r".*all_gather is deprecated")
        gathered = fabric.all_gather(values.to(fabric.device)).cpu()  # (world, per_rank, ...)
    out = torch.empty((n, *values.shape[1:]), dtype=values.dtype)
    for rank in range(fabric.world_size):
        other = Shard.of(n, fabric.world_size, rank)
        out[torch.from_numpy(other.indices[other.valid])] = gathered[rank][torch.from_numpy(other.valid)]
    return out


def all_sum(fabric, value: torch.Tensor) -> torch.Tensor:
    if fabric.world_size == 1:
        return value
    return fabric.all_reduce(value.to(fabric.device), reduce_op="sum").cpu()


def all_mean(fabric, value: float) -> float:
    if fabric.world_size == 1:
        return value
    return float(fabric.all_reduce(torch.tensor(value, device=fabric.device), reduce_op="mean"))


def broadcast_module(fabric, module: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers into every rank's copy, tensor by tensor (no pickling)."""
    if fabric.world_size == 1:
        return
    with torch.no_grad():
        for tensor in module.state_dict().values():
            torch.distributed.broadcast(tensor, src=0)
