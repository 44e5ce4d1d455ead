import csv
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from lut.toolkit.cli import lut

from ..conftest import RSSCN7


def run(args):
    return CliRunner().invoke(lut, args, catch_exceptions=False)


def test_finetune_writes_a_complete_bundle_and_latest(in_tmp, tiny_backbone):
    args = ["finetune", "--backbone", str(tiny_backbone), "--synthetic-images", "120", "--epochs", "2",
            "--strategy", "progressive", "--unfreeze-every", "1", "--quiet"]
    result = run(args)
    assert result.exit_code == 0, result.output
    bundle = in_tmp / "models" / "progressive"
    names = {p.name for p in bundle.iterdir()}
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "lut.json", "metrics.json", "report.md",
            "confusion.png"} <= names
    assert (in_tmp / "models" / "LATEST").read_text().strip() == str(bundle.resolve())
    info = json.loads((bundle / "lut.json").read_text())
    assert info["classes"] == ["forest", "cropland", "urban", "water", "barren", "wetland"]
    assert info["format"] == "lut" and info["format_version"] == 2 and info["kind"] == "model"
    assert info["image_size"] == 32 and info["band_rule"]["quantity"] == "dn" and info["band_rule"]["high"] == [1.0] * 3
    assert info["chip"] == {"size_px": 32, "gsd_m": 10.0, "source": "synthetic"}
    assert oct(bundle.stat().st_mode & 0o777) == oct(0o777 & ~_umask())  # not mkdtemp's 0700
    assert oct((in_tmp / "models" / "LATEST").stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert info["split"] == {"seed": 0, "fractions": [0.6, 0.2, 0.2], "train": 72, "val": 24, "test": 24,
                             "train_labels": None}
    assert {"torch", "transformers"} <= set(info["versions"])
    metrics = json.loads((bundle / "metrics.json").read_text())
    assert len(metrics["confusion_matrix"]) == 6 and sum(map(sum, metrics["confusion_matrix"])) == 24
    assert len(metrics["history"]) == 2 and metrics["trainable_params"] < metrics["total_params"]
    rows = list(csv.DictReader((bundle / "curves.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for r, h in zip(rows, metrics["history"]):
        assert float(r["val_accuracy"]) == pytest.approx(h["val_accuracy"])
        assert 0 <= float(r["val_macro_f1"]) <= 1 and float(r["val_loss"]) > 0 and float(r["lr_head"]) > 0
    assert rows[0]["lr_backbone"] == "" and float(rows[1]["lr_backbone"]) > 0  # progressive: head alone first
    assert (bundle / "curves.png").stat().st_size > 5000 and "![training curves](curves.png)" in (
        bundle / "report.md").read_text()
    assert "test accuracy" in result.output and "macro F1" in result.output
    config = json.loads((bundle / "config.json").read_text())
    assert config["id2label"]["3"] == "water"

    again = run(args)
    assert again.exit_code == 1 and "--overwrite" in again.output
    assert run(args + ["--overwrite", "--seed", "1"]).exit_code == 0
    assert not [p for p in (in_tmp / "models").iterdir() if ".tmp-" in p.name]


def test_same_seed_gives_the_same_metrics(in_tmp, tiny_backbone):
    base = ["finetune", "--backbone", str(tiny_backbone), "--synthetic-images", "60", "--epochs", "2",
            "--strategy", "differential_lr", "--quiet", "--overwrite"]
    for name in ("a", "b"):
        assert run(base + ["-o", name]).exit_code == 0
    a, b = (json.loads((in_tmp / n / "metrics.json").read_text()) for n in ("a", "b"))
    assert a["confusion_matrix"] == b["confusion_matrix"]
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]


def test_train_labels_limits_the_training_split(in_tmp, tiny_backbone):
    result = run(["finetune", "--backbone", str(tiny_backbone), "--synthetic-images", "120", "--epochs", "1",
                  "--strategy", "linear_probe", "--train-labels", "12", "--quiet"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((in_tmp / "models" / "linear_probe" / "metrics.json").read_text())
    assert metrics["train_labels"] == 12 and metrics["test_images"] == 24


@pytest.mark.parametrize("case", ["missing", "empty", "single", "unreadable", "strategy", "backbone", "size"])
def test_bad_input_is_one_line_and_writes_nothing(in_tmp, tiny_backbone, case):
    data = in_tmp / "data"
    args = ["finetune", "--backbone", str(tiny_backbone), "--epochs", "1", "--quiet"]
    if case != "missing":
        data.mkdir()
    if case in ("single", "unreadable", "strategy", "backbone", "size"):
        for c in ("a",) if case == "single" else ("a", "b"):
            (data / c).mkdir()
            for i in range(4):
                Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(data / c / f"{i}.png")
    if case == "unreadable":
        (data / "a" / "bad.png").write_bytes(b"\x00garbage")
    args += ["--data", str(data)]
    if case == "strategy":
        args += ["--strategy", "magic"]
    if case == "backbone":
        args[2] = "not-a-backbone"
    if case == "size":
        args += ["--image-size", "36"]
    result = CliRunner().invoke(lut, args)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert not (in_tmp / "models").exists()


def test_unreachable_hub_exits_3_with_advice(in_tmp, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = CliRunner().invoke(lut, ["finetune", "--synthetic-images", "60", "--epochs", "1", "--quiet"])
    assert result.exit_code == 3
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "vit-tiny" in lines[0]


@pytest.mark.skipif(not RSSCN7.is_dir(), reason="../shared/data/rsscn7 is absent")
def test_finetune_end_to_end_on_rsscn7(in_tmp, tiny_backbone):
    result = run(["finetune", "--data", str(RSSCN7), "--backbone", str(tiny_backbone), "--epochs", "1",
                  "--strategy", "linear_probe", "--train-labels", "70", "--batch-size", "64", "--quiet"])
    assert result.exit_code == 0, result.output
    info = json.loads((in_tmp / "models" / "linear_probe" / "lut.json").read_text())
    assert len(info["classes"]) == 7 and info["classes"][0] == "aGrass"
    assert info["split"]["test"] == 560 and info["data_source"]["kind"] == "folder"
    metrics = json.loads((in_tmp / "models" / "linear_probe" / "metrics.json").read_text())
    assert metrics["test_images"] == 560 and 0.0 <= metrics["accuracy"] <= 1.0


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_non_finite_loss_stops_training_and_writes_no_bundle(in_tmp, tiny_backbone):
    result = CliRunner().invoke(lut, ["finetune", "--backbone", str(tiny_backbone), "--strategy", "full_ft",
                                      "--backbone-lr", "1e30", "--head-lr", "1e30", "--synthetic-images", "60",
                                      "--epochs", "3", "--quiet", "-o", "out"])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "loss became" in lines[0] and "nothing was written" in lines[0]
    assert not (in_tmp / "out").exists() and not (in_tmp / "models").exists()


def test_library_warnings_become_one_line_and_deprecations_are_hidden(in_tmp, monkeypatch):
    import warnings

    from lut.toolkit.train import finetune as finetune_module
    from lut.toolkit.core.errors import LutError

    def noisy(cfg):
        warnings.warn("invalid value encountered in divide\n  return a / b", RuntimeWarning)
        warnings.warn("this API is going away", DeprecationWarning)
        raise LutError("stopped here")

    monkeypatch.setattr(finetune_module, "finetune", noisy)
    result = CliRunner().invoke(lut, ["finetune", "--backbone", "vit-tiny", "--quiet"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == ["warning: invalid value encountered in divide", "error: stopped here"], result.output
    assert result.exit_code == 1
