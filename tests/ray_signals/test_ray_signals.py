"""SIGTERM and Ctrl-C under `--engine ray` end like the local engine: exit 143 (or 130), one line saying
what was kept, the actors stopped, no temporary file left. A real Ray on this machine, in a subprocess per
signal: about 40 s in all on 2 cores. Run apart with `pytest tests/ray_signals`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ..conftest import synthetic_scene, write_scene

pytest.importorskip("ray")


def default_signals() -> None:
    """The child starts as from a shell: SIGINT and SIGTERM at their defaults and unblocked, whatever this
    test process inherited or set (earlier tests can leave SIGINT ignored, and children inherit that)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


@pytest.mark.parametrize("sig,code,word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_a_signal_under_the_ray_engine_ends_in_one_line_and_leaves_no_temporaries(exported_bundle, tmp_path, sig,
                                                                                 code, word):
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    for i in range(12):
        write_scene(scenes / f"T{i:02d}.tif", synthetic_scene(320, 320, i % 6, seed=i))
    out = tmp_path / "out"
    env = {**os.environ, "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-c", "from lut.toolkit.cli import main; main()", "classify", str(scenes), "-o", str(out),
           "--model", str(exported_bundle), "--engine", "ray", "--workers", "1", "--batch-size", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True, preexec_fn=default_signals)
    deadline = time.time() + 120
    assert proc.stdout is not None
    seen = []
    while time.time() < deadline:  # after the first scene is done, while others are in flight
        line = proc.stdout.readline()
        seen.append(line)
        if line.startswith("[1/12]") or not line:
            break
    assert proc.poll() is None, f"the run ended before the signal: {seen}"
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert proc.returncode == code, err
    assert len(lines) == 1 and lines[0].startswith(f"error: {word}: ") and "scene(s) finished and kept" in lines[0]
    assert "SIGTERM received" not in err and "PC: @" not in err
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    maps = list(out.rglob("*.landuse.tif"))
    assert 1 <= len(maps) < 12
