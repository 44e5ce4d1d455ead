"""Output groups change together: a map and its sidecars are all old or all new, whichever rename fails."""

from __future__ import annotations

import os

import pytest

from lut.toolkit.core.atomic import atomic_files
from lut.toolkit.core.errors import OutputFailed

NAMES = ["m.tif", "m.summary.json", "m.tif.aux.xml", "m.qml"]


@pytest.mark.parametrize("fail_at", range(1, 2 * len(NAMES) + 1))
def test_a_failed_rename_at_any_step_leaves_the_old_group(tmp_path, monkeypatch, fail_at):
    targets = [tmp_path / n for n in NAMES]
    for t in targets:
        t.write_text("old " + t.name)
    real, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == fail_at:
            raise PermissionError(1, "Operation not permitted", str(dst))
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OutputFailed) as failure:
        with atomic_files(targets, overwrite=True) as temps:
            for tmp in temps:
                tmp.write_text("new")
    monkeypatch.setattr(os, "replace", real)
    assert [t.read_text() for t in targets] == ["old " + n for n in NAMES]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(NAMES)  # no temporary or moved-aside file
    assert ".tmp-" not in str(failure.value) and ".old-" not in str(failure.value)
    assert str(failure.value).startswith(str(tmp_path / NAMES[(fail_at - 1) % len(NAMES)]))


def test_a_group_replaces_every_file_and_leaves_nothing_else(tmp_path):
    targets = [tmp_path / n for n in NAMES]
    targets[0].write_text("old")
    with atomic_files(targets, overwrite=True) as temps:
        for tmp in temps:
            tmp.write_text("new")
    assert [t.read_text() for t in targets] == ["new"] * len(NAMES)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(NAMES)


def test_a_directory_output_gets_umask_permissions_for_every_file(tmp_path):
    from lut.toolkit.core.atomic import atomic_directory

    old = os.umask(0o022)
    try:
        with atomic_directory(tmp_path / "bundle") as tmp:
            (tmp / "model.safetensors").write_bytes(b"w")
            os.chmod(tmp / "model.safetensors", 0o600)  # as safetensors leaves it
    finally:
        os.umask(old)
    assert oct((tmp_path / "bundle" / "model.safetensors").stat().st_mode & 0o777) == oct(0o644)
    assert oct((tmp_path / "bundle").stat().st_mode & 0o777) == oct(0o755)
