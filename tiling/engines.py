"""Where the scenes of a many-scene run are classified: one after another here (`local`), or one scene per
Ray actor over a local or remote Ray cluster (`ray`).

Either way a worker loads the model once and classifies whole scenes: one process writes each GeoTIFF, a
scene's error is caught in the worker and recorded, and the other scenes go on. On Ray, a worker process
or node that dies has its scene retried on a fresh actor (`--retries`); the retry's writes remove the dead
process's temporary files first, as every lut write does, and the driver sweeps once more at the end
(`clean_temps`) for scenes that ran out of retries.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from lut.toolkit.core.atomic import remove_stale_temps_for
from lut.toolkit.core.space import full_disk_line
from lut.toolkit.core.errors import InputError, LutWarning
from lut.toolkit.core.machine import cpu_cores

from .classify import ClassifyConfig, MapOutputs, classify_scene
from .deployed import load_deployed
from .run_records import make_row


@dataclass(frozen=True)
class Job:
    scene: str  # a scene argument (scene_list.expand_scenes)
    target: Path


@dataclass
class WorkerSpec:
    template: ClassifyConfig  # model, resolved precision, device, threads and every scene option
    config_hash: str


class SceneWorker:
    """Loads the model once; classifies scenes one at a time and returns their run rows."""

    def __init__(self, spec: WorkerSpec, node: str | None = None) -> None:
        t = spec.template
        self.spec, self.node = spec, node
        self.model = load_deployed(t.model, t.precision, t.device, t.store, t.session_options())

    def run(self, job: Job, attempt: int = 1) -> dict:
        cfg = replace(self.spec.template, scene=job.scene, output=job.target, overwrite=True, progress=False)
        start = time.perf_counter()
        Path(job.target).parent.mkdir(parents=True, exist_ok=True)
        try:
            with warnings.catch_warnings():  # a scene's notes are in its summary, not on the run's console
                warnings.simplefilter("ignore", LutWarning)
                result = classify_scene(cfg, model=self.model)
        except Exception as exc:  # noqa: BLE001 - a scene's failure is recorded; the other scenes go on
            full = full_disk_line(exc, job.target)
            message = full or " ".join((str(exc) or type(exc).__name__).split())
            return make_row(job.scene, job.target, "failed", self.spec.config_hash, attempt,
                            time.perf_counter() - start, error=message, node=self.node)
        return make_row(job.scene, job.target, "ok", self.spec.config_hash, attempt, result.seconds,
                        result.patches, node=self.node)


def clean_temps(jobs: list[Job]) -> None:
    """Remove the temporary files that dead worker processes left for these jobs' outputs."""
    remove_stale_temps_for([path for job in jobs for path in
                            MapOutputs.of(ClassifyConfig(scene=job.scene, output=job.target,
                                                           probabilities=True)).named().values()])


def run_local(jobs: list[Job], spec: WorkerSpec, stop: Callable[[], bool]) -> Iterator[dict]:
    worker = SceneWorker(spec)
    for job in jobs:
        if stop():
            return
        yield worker.run(job)


@dataclass
class RayOptions:
    workers: int = 2
    cpus_per_worker: int = 1
    gpus_per_worker: float = 0.0
    address: str | None = None
    retries: int = 2


def require_ray():
    try:
        import ray
    except ImportError as exc:
        raise InputError("`engine` ray needs Ray, which is not installed: pip install 'lut[ray]' "
                       "(or use `engine` local, the default)") from exc
    return ray


@contextlib.contextmanager
def ray_session(options: RayOptions) -> Iterator[object]:
    """Joins a running Ray (`--address auto` under `ray job submit`, `ray://...` interactively, or one this
    process already joined), else starts an embedded local one and shuts it down afterwards."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    # Ray's notice that token authentication is on (its secure default) is nothing the user acts on
    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
    ours = _signal_handlers()
    if options.address:
        check_reachable(options.address)
        ray.init(address=options.address, **kwargs)
    else:
        ray.init(num_cpus=cpu_cores(), **kwargs)
    for signum, handler in ours.items():  # ray.init installs its own (SIGTERM: exit 15 with a crash dump)
        signal.signal(signum, handler)
    try:
        yield ray
    finally:
        ray.shutdown()


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A HOST:PORT (or ray://HOST:PORT) address answers on its port; otherwise ray.init would retry for
    minutes, printing a line every few seconds, before failing. `auto` is left to Ray."""
    import socket

    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if address == "auto" or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise InputError(f"no Ray cluster answers at {address} ({exc.strerror or exc}): start one there (ray start "
                         "--head), correct `address`, or drop it to run Ray on this machine") from exc


def _signal_handlers() -> dict:
    """lut's SIGTERM and SIGINT handlers (raising Interrupted and KeyboardInterrupt), where this is the main
    thread; none elsewhere."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)
            if signal.getsignal(signum) is not None}


def _pool_size(ray, options: RayOptions, jobs: int) -> int:
    """Never more actors than scenes, nor than the cluster can place: an actor that can never be placed
    would hold its scene forever."""
    cpus = ray.cluster_resources().get("CPU", 1)
    fit = max(1, int(cpus // max(options.cpus_per_worker, 1)))
    if options.gpus_per_worker:
        fit = min(fit, int(ray.cluster_resources().get("GPU", 0) // options.gpus_per_worker) or 1)
    return max(1, min(options.workers, jobs, fit))


def run_ray(jobs: list[Job], spec: WorkerSpec, options: RayOptions, stop: Callable[[], bool],
            worker_cls: type = SceneWorker) -> Iterator[dict]:
    """One scene per actor at a time; a dead actor is replaced and its scene retried."""
    with ray_session(options) as ray:
        spec = replace(spec, template=replace(spec.template, threads=max(1, options.cpus_per_worker)))
        remote = ray.remote(num_cpus=options.cpus_per_worker, num_gpus=options.gpus_per_worker,
                            max_restarts=0)(_RayWorker)

        def new_actor():
            return remote.remote(worker_cls, spec)

        pending = [(job, 1) for job in reversed(jobs)]
        idle = [new_actor() for _ in range(_pool_size(ray, options, len(jobs)))]
        running: dict = {}
        try:
            while pending or running:
                while idle and pending and not stop():
                    actor = idle.pop()
                    job, attempt = pending.pop()
                    running[actor.run.remote(job, attempt)] = (actor, job, attempt)
                if not running:
                    return
                done, _ = ray.wait(list(running), num_returns=1)
                actor, job, attempt = running.pop(done[0])
                try:
                    row = ray.get(done[0])
                except ray.exceptions.RayTaskError:
                    raise  # lut's own code failed outside the scene's try: not something a retry mends
                except ray.exceptions.RayError:  # the actor's process or node died, or ran out of memory
                    ray.kill(actor, no_restart=True)
                    idle.append(new_actor())
                    if attempt <= options.retries:
                        pending.append((job, attempt + 1))
                    else:
                        yield make_row(job.scene, job.target, "failed", spec.config_hash, attempt,
                                       error=f"the worker process died on each of {attempt} attempts")
                    continue
                idle.append(actor)
                yield row
        finally:
            for actor in idle + [a for a, _, _ in running.values()]:
                with contextlib.suppress(Exception):
                    ray.kill(actor, no_restart=True)


class _RayWorker:
    """The Ray actor: a SceneWorker (or a subclass, for tests) that knows its node."""

    def __init__(self, worker_cls: type, spec: WorkerSpec) -> None:
        import ray

        self.worker = worker_cls(spec, node=ray.get_runtime_context().get_node_id())

    def run(self, job: Job, attempt: int) -> dict:
        return self.worker.run(job, attempt)
