"""Training on several ranks: CPU, gloo, 2 ranks forked in-process (Fabric's ddp_fork), 1 thread each.

Each rank function writes what it saw to a JSON file and the tests assert on those files: gloo sometimes
aborts at teardown after correct results (pytorch#179291), which must not turn a correct run red.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lut.toolkit.selfsup import dino as dino_module
from lut.toolkit.selfsup import dino_train
from lut.toolkit.vit.backbones import load_classifier
from lut.toolkit.cli import lut
from lut.toolkit.data.datasets import PatchDataset, open_source
from lut.toolkit.selfsup.dino_schedule import DinoSchedule
from lut.toolkit.train.distributed import DistConfig, Shard, launch
from lut.toolkit.core.errors import LutError
from lut.toolkit.train.finetune import FinetuneConfig, run_finetune
from lut.toolkit.train.strategies import STRATEGIES, StrategyConfig, make_plan
from lut.toolkit.train.config import TrainConfig
from lut.toolkit.train.trainer import Trainer

from .test_pretrain import labelled_folder, tiny_cfg

TWO = DistConfig(devices=2, accelerator="cpu", start_method="fork")
ONE = DistConfig(accelerator="cpu")


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def run_ranks(dist: DistConfig, fn, out: Path, *args):
    """launch, then read what rank 0 wrote; a teardown abort after the file was written is not a failure."""
    try:
        launch(dist, fn, out, *args)
    except LutError:
        if not out.is_file():
            raise
    return json.loads(out.read_text())


def max_difference_between_ranks(fabric, tensors) -> float:
    flat = torch.cat([t.detach().float().flatten() for t in tensors])
    both = fabric.all_gather(flat)
    return float((both[0] - both[-1]).abs().max())


# -- pure pieces ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,world", [(10, 2), (11, 2), (7, 3), (2, 4)])
def test_shards_are_equal_in_size_and_cover_every_item_once(n, world):
    shards = [Shard.of(n, world, r) for r in range(world)]
    assert len({len(s.indices) for s in shards}) == 1
    real = np.concatenate([s.indices[s.valid] for s in shards])
    assert sorted(real.tolist()) == list(range(n))


def test_global_batch_must_divide_over_the_ranks_and_nodes_need_a_launcher():
    with pytest.raises(LutError, match="multiple of 4"):
        DistConfig(devices=4).check(batch_size=30)
    with pytest.raises(LutError, match="torchrun or srun"):
        DistConfig(nodes=2).check()
    result = CliRunner().invoke(lut, ["finetune", "--devices", "2", "--batch-size", "15", "--epochs", "1"])
    assert result.exit_code == 1 and result.output.startswith("error: --batch-size 15 is the global batch")


def test_dino_schedules_are_pure_and_match_the_paper():
    from lightly.utils.scheduler import cosine_schedule

    s = DinoSchedule(epochs=10, steps_per_epoch=5, batch_size=128, lr=5e-4, min_lr=1e-6, warmup_epochs=2,
                     momentum=0.996, teacher_temp_start=0.04, teacher_temp_final=0.07, teacher_temp_warmup_epochs=30,
                     weight_decay=0.04, weight_decay_end=0.4)
    assert s.peak_lr == pytest.approx(2.5e-4)  # per 256 images of the global batch
    assert s.learning_rate(0) == pytest.approx(2.5e-4 / 10) and s.learning_rate(9) == pytest.approx(2.5e-4)
    assert s.learning_rate(49) == pytest.approx(1e-6, abs=1e-6)
    assert all(s.learning_rate(k) >= s.learning_rate(k + 1) for k in range(10, 49))
    for step in (0, 7, 25, 49, 60):
        assert s.teacher_momentum(step) == pytest.approx(cosine_schedule(step, 50, 0.996, 1.0))
    temps = [s.teacher_temperature(e) for e in range(10)]
    assert temps[0] == 0.04 and temps[3:] == [0.07] * 7 and temps[1] < temps[2] < 0.07  # warm-up <= a third
    decay = [s.weight_decay_at(k) for k in range(50)]
    assert decay[0] == pytest.approx(0.04) and decay[49] == pytest.approx(0.4) and decay[25] == pytest.approx(
        0.22, abs=0.01)
    assert decay == sorted(decay)


def test_dino_decays_weights_only_and_clips_each_parameter_on_its_own(tiny_backbone):
    from transformers import ViTModel

    from lut.toolkit.selfsup.dino_train import HeadSizes, build_state, clip_per_parameter
    from lut.toolkit.train.distributed import make_fabric

    state = build_state(ViTModel.from_pretrained(tiny_backbone, add_pooling_layer=False), HeadSizes(16, 8, 4),
                        {}, make_fabric(ONE))
    names = {id(p): n for n, p in state.student.named_parameters()}
    groups = {g["name"]: [names[id(p)] for p in g["params"]] for g in state.optimizer.param_groups}
    assert not set(groups["decay"]) & set(groups["no_decay"])
    assert len(groups["decay"]) + len(groups["no_decay"]) == sum(p.requires_grad for p in state.student.parameters())
    for name in groups["no_decay"]:
        assert name.endswith(("bias", "cls_token", "position_embeddings")) or "norm" in name, name
    assert any(n.endswith("attention.query.weight") for n in groups["decay"])
    assert all(not n.endswith("bias") and "norm" not in n for n in groups["decay"])
    small, large = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(4))
    small.grad, large.grad = torch.tensor([0.3, 0.4, 0.0]), torch.tensor([30.0, 40.0, 0.0, 0.0])
    clip_per_parameter([small, large], 3.0)
    assert torch.allclose(small.grad, torch.tensor([0.3, 0.4, 0.0]))  # under the limit: untouched
    assert large.grad.norm().item() == pytest.approx(3.0, rel=1e-4)  # over it: scaled alone


# -- fine-tuning -----------------------------------------------------------------------------------------------
def tiny_data(n=96):
    src = open_source("synthetic", 32, synthetic_images=n, seed=0)
    train = PatchDataset(src, np.arange(0, n * 3 // 4), [0.5] * 3, [0.5] * 3, augment=True)
    val = PatchDataset(src, np.arange(n * 3 // 4, n), [0.5] * 3, [0.5] * 3)
    return train, val


def _progressive_rank(fabric, out: Path, backbone: str):
    torch.manual_seed(fabric.global_rank)  # different heads on each rank: wrapping must make them one
    model, _, _ = load_classifier(backbone, list("abcdef"))
    train, val = tiny_data()
    seen = []

    def check(epoch, trainer):
        seen.append({"cut": trainer.plan.cuts[epoch],
                     "trainable": sum(p.numel() for p in trainer._trainable()),
                     "max_difference": max_difference_between_ranks(fabric, trainer.model.parameters())})

    plan = make_plan(StrategyConfig("progressive", unfreeze_every=1, backbone_lr=1e-3), 2, 4)
    Trainer(model, plan, TrainConfig(epochs=4, batch_size=16, progress=False), fabric, check).fit(train, val)
    if fabric.global_rank == 0:
        out.write_text(json.dumps(seen))


def test_progressive_weights_are_identical_on_both_ranks_after_every_unfreeze(tmp_path, tiny_backbone):
    seen = run_ranks(TWO, _progressive_rank, tmp_path / "seen.json", str(tiny_backbone))
    assert [s["cut"] for s in seen] == [4, 2, 1, 1]  # head alone, then one more block each epoch
    assert seen[0]["trainable"] < seen[1]["trainable"] < seen[2]["trainable"]
    assert [s["max_difference"] for s in seen] == [0.0] * 4


def _strategies_rank(fabric, out: Path, backbone: str):
    results = {}
    for name in STRATEGIES:
        cfg = FinetuneConfig(data="synthetic", synthetic_images=480, image_size=32, backbone=backbone,
                             strategy=StrategyConfig(name, unfreeze_every=1),
                             train=TrainConfig(epochs=3, batch_size=32, progress=False))
        metrics = run_finetune(cfg, fabric).metrics
        results[name] = {"losses": [h["train_loss"] for h in metrics["history"]], "accuracy": metrics["accuracy"]}
    if fabric.global_rank == 0:
        out.write_text(json.dumps(results))


def test_two_ranks_of_16_match_one_rank_of_32_for_every_strategy(tmp_path, tiny_backbone):
    one = run_ranks(ONE, _strategies_rank, tmp_path / "one.json", str(tiny_backbone))
    two = run_ranks(TWO, _strategies_rank, tmp_path / "two.json", str(tiny_backbone))
    for name in STRATEGIES:
        a, b = one[name], two[name]
        # cached strategies (each rank caches and shuffles its own shard) see other batch compositions;
        # the others see the same global batches, split over the ranks
        tolerance = 0.05 if name in ("linear_probe", "last_block") else 1e-3
        assert all(math.isclose(x, y, rel_tol=tolerance) for x, y in zip(a["losses"], b["losses"])), (name, a, b)
        assert abs(a["accuracy"] - b["accuracy"]) <= 0.02, (name, a["accuracy"], b["accuracy"])


# -- DINO ------------------------------------------------------------------------------------------------------
def _checked_epochs(monkeypatch, out: Path, stop_before: int | None):
    real = dino_train.train_epoch  # the original, also when a test patches twice

    def checked(state, student, loader, schedule, fabric, *a, **k):
        if stop_before is not None and state.epoch == stop_before:
            raise KeyboardInterrupt
        losses = real(state, student, loader, schedule, fabric, *a, **k)
        first = next(iter(loader))[0]
        row = {"epoch": state.epoch + 1,
               "teacher": max_difference_between_ranks(fabric, state.teacher.state_dict().values()),
               "student": max_difference_between_ranks(fabric, state.student.parameters()),
               "centre": max_difference_between_ranks(fabric, [state.criterion.center]),
               "centre_norm": float(state.criterion.center.norm()),
               "batches_differ": max_difference_between_ranks(fabric, [first]) > 0,
               "teacher_moved": float(sum((t - s).abs().sum() for t, s in zip(
                   state.teacher.parameters(), state.student.parameters())))}
        if fabric.global_rank == 0:
            rows = json.loads(out.read_text()) if out.is_file() else []
            out.write_text(json.dumps(rows + [row]))
        return losses

    monkeypatch.setattr(dino_module, "train_epoch", checked)


def test_two_rank_dino_has_one_teacher_one_centre_and_resumes_on_one_rank(tmp_path, tiny_backbone, monkeypatch):
    root = labelled_folder(tmp_path / "d")
    rows = tmp_path / "rows.json"
    _checked_epochs(monkeypatch, rows, stop_before=2)
    cfg = tiny_cfg(tmp_path, [root], tiny_backbone, epochs=3)
    cfg.dist = TWO
    with pytest.raises(KeyboardInterrupt, match="--resume"):
        pretrain_or_teardown(cfg)
    seen = json.loads(rows.read_text())
    assert [r["epoch"] for r in seen] == [1, 2]
    for r in seen:
        assert r["teacher"] == r["student"] == r["centre"] == 0.0 and r["batches_differ"], r
        assert r["centre_norm"] > 0 and r["teacher_moved"] > 0  # a real centre; an EMA, not a copy
    assert (tmp_path / "dino.ckpt" / "checkpoint.pt").is_file() and not (tmp_path / "dino").exists()
    _checked_epochs(monkeypatch, rows, stop_before=None)
    resumed = dino_module.pretrain(tiny_cfg(tmp_path, [root], tiny_backbone, epochs=3, resume=True))
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    # the resumed run trained epoch 3 alone: a run restarted from epoch 0 would log epochs 1 and 2 again
    assert [r["epoch"] for r in json.loads(rows.read_text())] == [1, 2, 3]
    assert (tmp_path / "dino" / "model.safetensors").is_file() and not (tmp_path / "dino.ckpt").exists()


def pretrain_or_teardown(cfg):
    try:
        dino_module.pretrain(cfg)
    except LutError as exc:  # a gloo teardown abort hides the interrupt: the checkpoint tells
        if "rank failed" not in str(exc):
            raise
        raise KeyboardInterrupt("--resume") from None


# -- the command line, as users start it (spawned ranks) ---------------------------------------------------------
def test_cli_finetune_on_two_spawned_ranks_writes_one_bundle(tmp_path, tiny_backbone):
    exe = Path(sys.executable).parent / "lut"
    out = tmp_path / "models" / "two"
    args = [str(exe), "finetune", "--devices", "2", "--accelerator", "cpu", "--strategy", "progressive",
            "--unfreeze-every", "1", "--backbone", str(tiny_backbone), "--synthetic-images", "96", "--epochs", "2",
            "--batch-size", "16", "-o", str(out), "--quiet"]
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("bundle:") == 1  # rank 0 speaks once
    info = json.loads((out / "lut.json").read_text())
    assert info["training"]["devices"] == 2 and (out / "model.safetensors").is_file()
    assert (tmp_path / "models" / "LATEST").read_text().strip().endswith("two")


def test_torchrun_around_lut_runs_each_rank_once_and_rank_0_writes(tmp_path, tiny_backbone):
    """The multi-node path, on one node: torchrun starts the ranks and lut starts none of its own."""
    bin_dir = Path(sys.executable).parent
    out = tmp_path / "m"
    args = [str(bin_dir / "torchrun"), "--standalone", "--nproc-per-node", "2", "--no-python", str(bin_dir / "lut"),
            "finetune", "--devices", "2", "--accelerator", "cpu", "--strategy", "linear_probe",
            "--backbone", str(tiny_backbone), "--synthetic-images", "96", "--epochs", "1", "--batch-size", "16",
            "-o", str(out), "--quiet"]
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("bundle:") == 1
    assert json.loads((out / "lut.json").read_text())["training"]["devices"] == 2


@pytest.mark.skipif(not __import__("lut.toolkit.train.distributed", fromlist=["x"]).native_bfloat16("cpu"),
                    reason="this CPU has no native bfloat16")
def test_finetune_trains_under_bf16_mixed_and_keeps_float32_weights(tiny_backbone):
    cfg = FinetuneConfig(data="synthetic", synthetic_images=96, image_size=32, backbone=str(tiny_backbone),
                         strategy=StrategyConfig("full_ft", backbone_lr=1e-3),
                         train=TrainConfig(epochs=2, batch_size=16, progress=False),
                         dist=DistConfig(accelerator="cpu", precision="bf16-mixed"))
    outcome = launch(cfg.dist, lambda fabric: run_finetune(cfg, fabric))
    assert outcome.bundle.training["precision"] == "bf16-mixed"
    assert all(np.isfinite(h["train_loss"]) for h in outcome.metrics["history"])
    assert outcome.metrics["accuracy"] > 1 / 6 + 0.1  # it learned, not chance
    assert {p.dtype for p in outcome.model.parameters()} == {torch.float32}
