import csv
import json

import pytest
from click.testing import CliRunner

from lut.toolkit.study import compare as compare_module
from lut.toolkit.cli import lut
from lut.toolkit.study.compare import CompareConfig, Cell, parse_labels, parse_strategies, plan_cells
from lut.toolkit.core.errors import LutError


def test_grid_runs_every_strategy_once_and_efficiency_strategies_per_label_count():
    cfg = CompareConfig(backbones=["a", "b"], strategies=parse_strategies("all"),
                        train_labels=parse_labels("500,1000,all"))
    cells = plan_cells(cfg)
    assert len(cells) == 2 * (6 + 2 * 3)
    assert Cell("a", "llrd", None) in cells and Cell("a", "llrd", 500) not in cells
    assert Cell("b", "progressive", 1000) in cells
    assert Cell("models/dino-vit-tiny", "full_ft", None).key == "models_dino-vit-tiny__full_ft__all"
    with pytest.raises(LutError):
        parse_labels("500,lots")
    with pytest.raises(LutError):
        parse_strategies("linear_probe,magic")


def args_for(tmp_path, backbones):
    return ["compare", "--backbones", ",".join(map(str, backbones)), "--strategies", "linear_probe,progressive",
            "--train-labels", "24,all", "--synthetic-images", "120", "--epochs", "1", "--quiet",
            "-o", str(tmp_path / "results")]


def test_compare_writes_the_four_tables_and_resumes(tmp_path, tiny_backbone, monkeypatch):
    runner = CliRunner()
    calls = []
    real = compare_module.run_cell

    def interrupt_third(cfg, cell, fabric=None):
        calls.append(cell.key)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(cfg, cell, fabric)

    monkeypatch.setattr(compare_module, "run_cell", interrupt_third)
    first = runner.invoke(lut, args_for(tmp_path, ["vit-tiny", tiny_backbone]))
    assert first.exit_code == 130 and "cell 3/8" in first.output
    assert "error: interrupted: 2 of 8 cells finished and kept in " in first.output
    assert "run the same command again to resume" in first.output
    assert len(list((tmp_path / "results" / "cells").glob("*.json"))) == 2

    monkeypatch.setattr(compare_module, "run_cell", real)
    second = runner.invoke(lut, args_for(tmp_path, ["vit-tiny", tiny_backbone]))
    assert second.exit_code == 0, second.output
    assert second.output.count("(cached)") == 2 and "cell 8/8" in second.output
    out = tmp_path / "results"
    md = (out / "results.md").read_text()
    for title in ("1. Strategy comparison", "2. Per-class F1", "3. Data efficiency", "4. Domain-specific"):
        assert title in md
    assert "| linear_probe |" in md and "tiny_backbone" in md
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 8 and {r["labels"] for r in rows} == {"24", "all"}
    assert len(json.loads((out / "results.json").read_text())) == 8
    assert (out / "data_efficiency.png").stat().st_size > 1000
    curves = sorted((out / "curves").glob("*.png"))
    assert len(curves) == 8 and all(f"(curves/{p.name})" in md for p in curves)

    def never(cfg, cell):
        raise AssertionError("a finished cell ran again")

    monkeypatch.setattr(compare_module, "run_cell", never)
    assert runner.invoke(lut, args_for(tmp_path, ["vit-tiny", tiny_backbone])).exit_code == 0
    other = runner.invoke(lut, args_for(tmp_path, ["vit-tiny"]) + ["--seed", "3"])
    assert other.exit_code == 1 and "other data/training options" in other.output


def test_missing_backbone_directory_fails_before_any_work(tmp_path):
    result = CliRunner().invoke(lut, args_for(tmp_path, ["vit-tiny", tmp_path / "models" / "dino-absent"]))
    assert result.exit_code == 1 and result.output.startswith("error:") and len(result.output.splitlines()) == 1
    assert not (tmp_path / "results").exists()


def test_recipe_grid_expands_applies_and_picks_winners_on_validation():
    from lut.toolkit.core.errors import LutError
    from lut.toolkit.study.recipe_grid import apply, parse_grid, settings, winners
    from lut.toolkit.train.strategies import StrategyConfig
    from lut.toolkit.train.config import TrainConfig

    grid = parse_grid(["mixup=0,0.2", "label-smoothing=0,0.1", "head_lr=1e-3"])
    combos = settings(grid)
    assert len(combos) == 4 and combos[1] == (("mixup", 0.0), ("label_smoothing", 0.1), ("head_lr", 1e-3))
    train, strategy = apply(combos[3] + (("crop_scale", 0.5),), TrainConfig(), StrategyConfig("progressive"))
    assert train.mix.mixup == 0.2 and train.label_smoothing == 0.1 and train.augment.crop_scale == 0.5
    assert strategy.head_lr == 1e-3 and strategy.name == "progressive"
    assert settings({}) == [()]
    for bad in (["mixup"], ["magic=1"], ["epochs=ten"]):
        with pytest.raises(LutError):
            parse_grid(bad)
    cells = [{"backbone": "b", "strategy": "s", "labels": None, "best_val_accuracy": v, "accuracy": t, "key": k}
             for k, v, t in (("a", 0.7, 0.9), ("b", 0.8, 0.6), ("c", 0.8, 0.99))]
    assert [c["key"] for c in winners(cells)] == ["b"]  # validation decides, the first on ties; test never does


def test_compare_grid_runs_every_setting_and_reports_the_validation_winner(tmp_path, tiny_backbone):
    args = ["compare", "--backbones", str(tiny_backbone), "--strategies", "linear_probe", "--synthetic-images", "96",
            "--epochs", "1", "--quiet", "--grid", "label_smoothing=0,0.2", "-o", str(tmp_path / "r")]
    result = CliRunner().invoke(lut, args)
    assert result.exit_code == 0, result.output
    cells = json.loads((tmp_path / "r" / "results.json").read_text())
    assert sorted(c["setting"] for c in cells) == ["label_smoothing=0.0", "label_smoothing=0.2"]
    assert sum(c["winner"] for c in cells) == 1
    top = max(c["best_val_accuracy"] for c in cells)
    assert next(c for c in cells if c["best_val_accuracy"] == top)["winner"]  # the first best on validation
    md = (tmp_path / "r" / "results.md").read_text()
    assert "## 6. Recipe search" in md and md.count("| yes |") == 1
