"""Full disks through real ENOSPC: a small tmpfs per test (root with CAP_SYS_ADMIN; skipped elsewhere).

Every command: exit 1, one `error:` line naming the output and the free space, nothing partial left, and no
libtiff lines on stderr. Maps, change rasters and composites are refused before work when their
uncompressed size does not fit; the disk filling during a run (another writer) is the same line."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lut.toolkit.cli import lut

from .conftest import synthetic_scene, write_scene


@pytest.fixture
def small_disk(tmp_path):
    """A factory of tmpfs mounts of a given size, unmounted after the test."""
    mounts: list[Path] = []

    def make(size: str) -> Path:
        where = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                              capture_output=True)
        if done.returncode:
            pytest.skip("mounting a tmpfs needs root with CAP_SYS_ADMIN")
        mounts.append(where)
        return where

    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    yield make
    for where in mounts:
        subprocess.run(["umount", "--lazy", str(where)], check=False, capture_output=True)


def _one_line(result, output: Path) -> str:
    lines = [line for line in result.output.splitlines()
             if line.strip() and not line.startswith(("warning:", '{"epoch"'))]  # pretrain's history on stdout
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert str(output) in lines[0] and "MB free" in lines[0]
    return lines[0]


@pytest.fixture
def scene(tmp_path) -> Path:
    data = np.concatenate([synthetic_scene(96, 96, class_index=c, seed=c) for c in (0, 3)], axis=2)
    return write_scene(tmp_path / "scene.tif", data)


def test_a_map_that_cannot_fit_is_refused_before_work(exported_bundle, scene, small_disk):
    disk = small_disk("64k")
    out = disk / "m.tif"
    result = CliRunner().invoke(lut, ["classify", str(scene), "-o", str(out), "--model", str(exported_bundle),
                                      "--quiet", "--probabilities"])
    line = _one_line(result, out)
    assert "needs up to 0.2 MB (192 x 96 px x 7 band(s), uncompressed)" in line
    assert list(disk.iterdir()) == []


def test_a_disk_that_fills_during_classify_or_change(exported_bundle, scene, small_disk, tmp_path, monkeypatch):
    from lut.tiling import classify
    from lut.toolkit.gis import change

    monkeypatch.setattr(classify, "check_free_space", lambda *a: None)  # another writer fills it during the run
    monkeypatch.setattr(change, "check_free_space", lambda *a: None)
    disk = small_disk("12k")
    out = disk / "m.tif"
    result = CliRunner().invoke(lut, ["classify", str(scene), "-o", str(out), "--model", str(exported_bundle),
                                      "--quiet", "--confidence"])
    assert "the disk is full writing" in _one_line(result, out)
    assert list(disk.iterdir()) == []
    maps = []
    for name in ("a", "b"):
        maps.append(tmp_path / f"{name}.tif")
        assert CliRunner().invoke(lut, ["classify", str(scene), "-o", str(maps[-1]), "--model",
                                        str(exported_bundle), "--quiet"]).exit_code == 0
    result = CliRunner().invoke(lut, ["change", *map(str, maps), "-o", str(disk / "c.tif")])
    assert "the disk is full writing" in _one_line(result, disk / "c.tif")
    assert list(disk.iterdir()) == []


def test_vectorize_on_a_full_disk(exported_bundle, scene, small_disk, tmp_path):
    assert CliRunner().invoke(lut, ["classify", str(scene), "-o", str(tmp_path / "m.tif"), "--model",
                                    str(exported_bundle), "--quiet"]).exit_code == 0
    disk = small_disk("40k")
    result = CliRunner().invoke(lut, ["vectorize", str(tmp_path / "m.tif"), "-o", str(disk / "v.gpkg")])
    assert "the disk is full writing" in _one_line(result, disk / "v.gpkg")
    assert list(disk.iterdir()) == []


def test_finetune_on_a_full_disk(tiny_backbone, small_disk):
    disk = small_disk("24k")
    out = disk / "ft"
    result = CliRunner().invoke(lut, ["finetune", "--backbone", str(tiny_backbone), "--synthetic-images", "60",
                                      "--epochs", "1", "--strategy", "linear_probe", "-o", str(out), "--quiet"])
    assert "the disk is full writing" in _one_line(result, out)
    assert list(disk.iterdir()) == []


def _images(folder: Path) -> Path:
    from PIL import Image

    (folder / "a").mkdir(parents=True)
    for i in range(8):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / "a" /
                                                                                                        f"{i}.png")
    return folder


PRETRAIN = ["pretrain", "--backbone", "vit-tiny", "--image-size", "32", "--local-size", "16", "--local-views", "2",
            "--epochs", "1", "--batch-size", "4", "--out-dim", "32", "--head-hidden", "16", "--bottleneck", "8",
            "--warmup-epochs", "0", "--quiet"]


def test_pretrain_on_a_full_disk_says_so_and_leaves_nothing(small_disk, tmp_path):
    disk = small_disk("200k")
    out = disk / "pt"
    result = CliRunner().invoke(lut, [*PRETRAIN, "--data", str(_images(tmp_path / "imgs")), "-o", str(out)])
    line = _one_line(result, out)
    assert "the disk is full writing" in line and "nothing partial was kept" in line
    assert "inline_container" not in result.output
    assert list(disk.iterdir()) == []


def test_pretrain_keeps_its_last_checkpoint_when_the_backbone_does_not_fit(tmp_path, monkeypatch):
    import errno

    from lut.toolkit.selfsup import dino

    def full(cfg, state, processor, target, *args):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(dino, "_write_backbone", full)
    out = tmp_path / "pt"
    result = CliRunner().invoke(lut, [*PRETRAIN, "--data", str(_images(tmp_path / "imgs")), "-o", str(out)])
    line = _one_line(result, out)
    assert f"the checkpoint in {out}.ckpt was kept: free some space and rerun with --resume" in line
    assert (tmp_path / "pt.ckpt" / "checkpoint.pt").is_file() or any((tmp_path / "pt.ckpt").iterdir())


FILTER = r"""
import ctypes, os, sys
from lut.toolkit.cli.stderr_filter import filtered_stderr
libc = ctypes.CDLL(None)
def c_write(text):
    data = text.encode()
    libc.write(2, data, len(data))
with filtered_stderr():
    c_write("_tiffWriteProc: No space left on device.\n")
    c_write("progress 10%\r")
    c_write("_tiffSeekProc: No space left on device.\nTIFFAppendToStrip: Write error at scanline 3.\n")
    sys.stderr.write("error: the disk is full\n")
    c_write("_tiffWr")
    c_write("iteProc: No space left on device.\n")
    c_write("[2026-12-01 14:06:45,216 W 15779 15779] gcs_client.cc:210: Failed to get cluster ID from GCS server\n")
    c_write("/usr/lib/python3.11/multiprocessing/resource_tracker.py:254: UserWarning: resource_tracker: There "
            "appear to be 1 leaked semaphore objects to clean up at shutdown\n")
    c_write("  warnings.warn('resource_tracker: There appear to be %d '\n")
    c_write("done\n")
"""


def test_lines_from_c_and_children_are_dropped_and_everything_else_kept():
    done = subprocess.run([sys.executable, "-c", FILTER], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == (b"progress 10%\rTIFFAppendToStrip: Write error at scanline 3.\n"
                           b"error: the disk is full\ndone\n")


TERMINAL = r"""
from lut.toolkit.cli.stderr_filter import filtered_stderr
from lut.toolkit.core.terminal import stderr_is_terminal
from lut.toolkit.cli.options import show_progress
import os, sys
with filtered_stderr():
    print(os.isatty(2), stderr_is_terminal(), show_progress(False), flush=True)
print(stderr_is_terminal(), flush=True)
"""


def test_a_terminal_stays_a_terminal_for_progress_bars_under_the_filter():
    import pty

    main, child = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-c", TERMINAL], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=child, timeout=60, text=True)
    finally:
        os.close(child)
        os.close(main)
    assert done.returncode == 0
    assert done.stdout.split() == ["False", "True", "True", "True"]  # fd 2 is the pipe, the answer the terminal's
