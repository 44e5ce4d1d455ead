"""Structured option values are parsed at the boundary: a bad one is a usage error (exit 2), one line."""

import pytest
from click.testing import CliRunner

from lut.toolkit.cli import lut
from lut.toolkit.cli.group import flags


@pytest.mark.parametrize("args, message", [
    (["classify", "s.tif", "-o", "m.tif", "--bands", "3,2"], "--bands must name 3 bands"),
    (["classify", "a.tif", "b.tif", "-o", "out", "--shard", "5/2"], "I must be 0 <= I < N"),
    (["compare", "--backbones", "vit-tiny", "--train-labels", "many"], "--train-labels takes positive counts"),
    (["compare", "--backbones", "vit-tiny", "--grid", "foo=1"], "--grid takes OPTION=V1,V2"),
    (["finetune", "--bands", "0,1,2"], "--bands are 1-based"),
    (["pretrain", "--data", "x", "--bands", "a,b,c"], "comma-separated 1-based integers"),
    (["compare", "--backbones", "vit-tiny", "--strategies", "nope"], "unknown strategy"),
])
def test_bad_structured_values_exit_2_before_any_work(in_tmp, args, message):
    result = CliRunner().invoke(lut, args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
    assert not any(in_tmp.iterdir())  # nothing written


def test_library_parameters_become_flags_on_the_command_line():
    assert flags("pass `bands` 1,1,1 or `overwrite=True`") == "pass --bands 1,1,1 or --overwrite"
    assert flags("`vector_min_area` applies to `vector` polygons") == "--vector-min-area applies to --vector polygons"
    assert flags("`resample=False` applies the model anyway; `stride=64`") == \
        "--no-resample applies the model anyway; --stride 64"
    assert flags("no backticks, no change: a `Path` or `2`") == "no backticks, no change: a `Path` or `2`"


def test_a_runtime_only_install_asked_to_train_names_the_extra():
    """With torch absent (as in `pip install lut`), training commands end in one line naming `lut[train]`."""
    import subprocess
    import sys

    script = ("import sys\nsys.modules['torch'] = None\n"
              "from click.testing import CliRunner\nfrom lut.toolkit.cli import lut\n"
              "r = CliRunner().invoke(lut, ['finetune', '--data', 'synthetic', '--epochs', '1'])\n"
              "print(r.exit_code)\nprint(r.output)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    code, line = out.strip().split("\n", 1)
    assert code == "1" and line == ("error: lut finetune needs torch, which the runtime install does not include: "
                                    "pip install 'lut[train]'")


def test_a_write_failure_on_a_full_disk_is_one_line_naming_the_output(monkeypatch, tmp_path):
    """GDAL says "Write failed" and torch "inline_container" where the disk is full: one line, the output."""
    import collections
    import shutil

    from lut.toolkit.cli import group

    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(300_000, 300_000, 0))
    args = ["change", "a.tif", "b.tif", "-o", str(tmp_path / "c.tif")]
    line = group._wrapped_full_disk(OSError("Write failed. See previous exception for details."), args)
    assert line == (f"the disk is full writing {tmp_path / 'c.tif'} (0.0 MB free on its file system); nothing partial "
                    "was kept: free some space or write the output elsewhere")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**12, 0, 10**12))
    assert group._wrapped_full_disk(OSError("Write failed."), args) is None  # plenty of space: not the disk's doing
    assert group._wrapped_full_disk(ValueError("something else"), args) is None


def test_a_stale_latest_says_where_the_path_came_from(tmp_path):
    from lut.toolkit.core.errors import InputError
    from lut.toolkit.core.store import resolve_bundle

    (tmp_path / "LATEST").write_text(str(tmp_path / "gone") + "\n")
    with pytest.raises(InputError, match=r"gone does not exist \(named by .*LATEST: name another bundle"):
        resolve_bundle(None, tmp_path)
    with pytest.raises(InputError, match=r"--model BUNDLE; lut export BUNDLE"):
        resolve_bundle(None, tmp_path / "empty")
