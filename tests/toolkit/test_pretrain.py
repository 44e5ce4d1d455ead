import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from lut.toolkit.selfsup import dino as dino_module
from lut.toolkit.vit.backbones import load_classifier
from lut.toolkit.cli import lut
from lut.toolkit.train import distributed
from lut.toolkit.selfsup.dino import PretrainConfig, pretrain
from lut.toolkit.train.distributed import DistConfig
from lut.toolkit.core.errors import LutError
from lut.toolkit.data.synthetic import render
from lut.toolkit.data.unlabelled import SourceSpec, build_pool, epoch_items, load_item

from ..conftest import write_scene


def labelled_folder(root, classes=("a", "b", "c"), n=10, size=40):
    for i, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for k in range(n):
            Image.fromarray(render(i, np.random.default_rng(k), size, size)).save(root / c / f"{k}.png")
    return root


def tiny_cfg(tmp_path, sources, backbone, **kw):
    base = dict(sources=[str(s) for s in sources], backbone=str(backbone), image_size=32, local_size=16,
                local_views=2, epochs=2, batch_size=8, out_dim=64, head_hidden=32, bottleneck=16,
                windows_per_scene=4, warmup_epochs=1, output=tmp_path / "dino", progress=False)
    precision = kw.pop("precision", "fp32")
    base["dist"] = DistConfig(accelerator="cpu", precision=precision)
    base.update(kw)
    return PretrainConfig(**base)


def test_source_spec_parses_per_source_bands(tmp_path):
    assert SourceSpec.parse("s2.tif:3,2,1") == SourceSpec(tmp_path.__class__("s2.tif"), (3, 2, 1))
    assert SourceSpec.parse("folder").bands is None


def test_labelled_folder_contributes_only_its_training_split(tmp_path):
    root = labelled_folder(tmp_path / "d")
    pool = build_pool([str(root)], 32, None, seed=0)
    assert len(pool.files) == 18  # 60% of 30
    assert pool.guards == [{"folder": str(root.resolve()), "split_seed": 0, "used": "train", "images": 18, "of": 30,
                            "fractions": [0.6, 0.2, 0.2]}]
    from lut.toolkit.data.datasets import stratified_split
    from lut.toolkit.data.imagefolder import scan_folder

    _, files, labels = scan_folder(root)
    assert set(pool.files) == {files[i] for i in stratified_split(labels, 0).train}
    assert len(build_pool([str(root)], 32, None, seed=0, guard=False).files) == 30


def test_scene_windows_avoid_nodata_and_repeat_per_epoch(tmp_path):
    rng = np.random.default_rng(0)
    data = np.stack([rng.integers(v - 20, v + 20, (100, 100)).astype(np.uint8) for v in (50, 100, 150)])
    data[:, :, :70] = 0
    scene = write_scene(tmp_path / "s.tif", data, nodata=0)
    pool = build_pool([str(scene)], 32, None, seed=0)
    items = epoch_items(pool, 6, 32, seed=0, epoch=3)
    assert len(items) == 6 and all(it.x + 32 - 70 >= 16 for it in items)  # at least half valid
    assert items == epoch_items(pool, 6, 32, seed=0, epoch=3) != epoch_items(pool, 6, 32, seed=0, epoch=4)
    image = load_item(pool, items[0], 32)
    assert image.shape == (3, 32, 32) and 0 <= image.min() and image.max() <= 1


@pytest.mark.parametrize("case", ["bands", "crop", "missing", "empty", "all_nodata"])
def test_pool_errors(tmp_path, case):
    root = labelled_folder(tmp_path / "d", size=24 if case == "crop" else 40)
    sources = [str(root)]
    if case == "bands":
        sources.append(str(write_scene(tmp_path / "s.tif", np.ones((1, 64, 64), np.uint8))))
    if case == "all_nodata":
        sources = [str(write_scene(tmp_path / "s.tif", np.zeros((3, 64, 64), np.uint8), nodata=0))]
    if case == "missing":
        sources = [str(tmp_path / "absent")]
    if case == "empty":
        (tmp_path / "empty").mkdir()
        sources = [str(tmp_path / "empty")]
    with pytest.raises(LutError) as err:
        build_pool(sources, 32, None, seed=0)
    if case == "bands":
        assert "`bands` 1,1,1" in str(err.value)
    if case == "all_nodata":
        assert "holds no valid pixels" in str(err.value)


def test_single_four_band_scene_defaults_to_its_first_three_bands(tmp_path):
    scene = write_scene(tmp_path / "s.tif", np.random.default_rng(0).integers(1, 255, (4, 80, 80), dtype=np.uint8))
    pool = build_pool([str(scene)], 32, None, seed=0)
    assert pool.scenes[0].bands == (1, 2, 3)


def test_pretrain_writes_a_backbone_finetune_loads(tmp_path, tiny_backbone):
    root = labelled_folder(tmp_path / "d")
    scene = write_scene(tmp_path / "s.tif", np.random.default_rng(0).integers(1, 255, (4, 80, 80), dtype=np.uint8))
    cfg = tiny_cfg(tmp_path, [root, f"{scene}:3,2,1"], tiny_backbone, monitor=root, monitor_images=30)
    result = pretrain(cfg)
    out = tmp_path / "dino"
    assert result.output == out and not (tmp_path / "dino.ckpt").exists()
    info = json.loads((out / "lut.json").read_text())
    assert info["format"] == "lut" and info["kind"] == "backbone"
    info = info["pretrain"]
    assert info["method"] == "dino" and info["split_guard"][0]["used"] == "train"
    assert [h["epoch"] for h in info["history"]] == [1, 2] and all("knn_accuracy" in h for h in info["history"])
    assert info["history"][0]["images"] == 18 + 4
    model, _, backbone = load_classifier(str(out), ["x", "y"])
    assert backbone.kind == "local" and backbone.image_size == 32
    from transformers import ViTModel

    start = ViTModel.from_pretrained(tiny_backbone)
    assert not torch.equal(model.vit.encoder.layer[0].output.dense.weight, start.encoder.layer[0].output.dense.weight)


def test_killed_run_resumes_from_its_last_epoch(tmp_path, tiny_backbone, monkeypatch):
    root = labelled_folder(tmp_path / "d")
    cfg = tiny_cfg(tmp_path, [root], tiny_backbone, epochs=3)
    saves = []
    real_save = dino_module.save_checkpoint

    def save_then_die(path, state):
        real_save(path, state)
        saves.append(state.epoch)
        if len(saves) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(dino_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cfg)
    assert not (tmp_path / "dino").exists() and (tmp_path / "dino.ckpt" / "checkpoint.pt").is_file()
    with pytest.raises(LutError, match="`resume`"):
        pretrain(cfg)
    other = tiny_cfg(tmp_path, [root], tiny_backbone, epochs=3, out_dim=32, resume=True)
    with pytest.raises(LutError, match="another architecture"):
        pretrain(other)
    monkeypatch.setattr(dino_module, "save_checkpoint", real_save)
    kept = torch.load(tmp_path / "dino.ckpt" / "checkpoint.pt", weights_only=True)["history"]
    trained = []
    real_epoch = dino_module.train_epoch

    def counted(state, *args, **kwargs):
        trained.append(state.epoch + 1)
        return real_epoch(state, *args, **kwargs)

    monkeypatch.setattr(dino_module, "train_epoch", counted)
    result = pretrain(tiny_cfg(tmp_path, [root], tiny_backbone, epochs=3, resume=True))
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    # only the epoch after the checkpoint trains, and the kept epochs' losses are the killed run's
    assert trained == [3] and len(kept) == 2 and result.history[:2] == kept


@pytest.mark.parametrize("case", ["no_images", "bands", "crop", "backbone", "monitor", "truncated_backbone"])
def test_cli_bad_input(tmp_path, tiny_backbone, case):
    root = labelled_folder(tmp_path / "d", size=24 if case == "crop" else 40)
    args = ["pretrain", "--data", str(root), "--backbone", str(tiny_backbone), "--image-size", "32", "--epochs", "1",
            "-o", str(tmp_path / "out"), "--quiet"]
    if case == "no_images":
        (tmp_path / "empty").mkdir()
        args[2] = str(tmp_path / "empty")
    if case == "bands":
        args += ["--data", str(write_scene(tmp_path / "s.tif", np.ones((1, 64, 64), np.uint8)))]
    if case == "backbone":
        args[4] = str(tmp_path / "absent")
    if case == "monitor":
        args += ["--monitor", str(tmp_path / "no-such-folder")]
    if case == "truncated_backbone":
        import shutil

        shutil.copytree(tiny_backbone, tmp_path / "bb")
        weights = tmp_path / "bb" / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
        args[4] = str(tmp_path / "bb")
    result = CliRunner().invoke(lut, args)
    assert result.exit_code != 0
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "failed unexpectedly" not in lines[0], lines[0]
    if case == "monitor":
        assert lines[0].startswith("error: --monitor folder ") and "does not exist" in lines[0]
    assert not (tmp_path / "out").exists()


def test_colour_augmentation_can_be_turned_off_for_colour_coded_land_cover():
    uniform = Image.new("RGB", (64, 64), (40, 120, 60))
    expected = (torch.tensor([40, 120, 60]) / 255.0 - 0.5) / 0.5

    def view_colours(**kw):
        cfg = PretrainConfig(image_size=32, local_views=2, **kw)
        torch.manual_seed(0)
        views = [v for _ in range(8) for v in dino_module.make_transform(cfg, 16, [0.5] * 3, [0.5] * 3)(uniform)]
        return torch.stack([v.mean(dim=(1, 2)) for v in views])

    plain = view_colours(colour_jitter=0, grayscale=0, solarize=0)
    assert torch.allclose(plain, expected.expand_as(plain), atol=0.02)
    jittered = view_colours()
    assert (jittered - expected).abs().max() > 0.1


def test_precision_follows_the_hardware(monkeypatch):
    def precision(name):
        return distributed.fabric_precision(DistConfig(precision=name), "cpu")

    assert precision("fp32") == "32-true"
    monkeypatch.setattr(distributed, "native_bfloat16", lambda device_type: False)
    assert precision("auto") == "32-true"
    with pytest.raises(LutError, match="no native bfloat16"):
        precision("bf16-mixed")
    monkeypatch.setattr(distributed, "native_bfloat16", lambda device_type: True)
    assert precision("auto") == precision("bf16-mixed") == "bf16-mixed"


@pytest.mark.skipif(not distributed.native_bfloat16("cpu"), reason="this CPU has no native bfloat16")
def test_bfloat16_pretraining_writes_a_float32_backbone(tmp_path, tiny_backbone):
    root = labelled_folder(tmp_path / "d")
    result = pretrain(tiny_cfg(tmp_path, [root], tiny_backbone, epochs=1, precision="bf16-mixed"))
    info = json.loads((result.output / "lut.json").read_text())["pretrain"]
    assert info["precision"] == "bf16" and np.isfinite(info["history"][0]["loss"])
    model, _, _ = load_classifier(str(result.output), ["x", "y"])
    assert model.vit.encoder.layer[0].output.dense.weight.dtype == torch.float32


def test_recipes_are_presets_that_explicit_options_override():
    from lut.toolkit.selfsup.dino_recipes import RECIPES, recipe_config

    paper = recipe_config("paper", sources=["d"])
    assert paper == PretrainConfig(sources=["d"])  # the paper recipe is the dataclass defaults
    short = recipe_config("short", sources=["d"], epochs=3)
    assert short.recipe == "short" and short.epochs == 3  # the user's option wins over the preset's 25
    assert (short.backbone, short.image_size, short.lr, short.momentum, short.out_dim) == \
        ("vit-tiny", 64, 2e-3, 0.99, 1024)
    assert all(getattr(short, name) == value for name, value in RECIPES["short"].items() if name != "epochs")
    with pytest.raises(LutError, match="unknown DINO recipe 'long'"):
        recipe_config("long")


def test_cli_recipe_short_keeps_the_options_given(tmp_path, tiny_backbone):
    root = labelled_folder(tmp_path / "d")
    out = tmp_path / "out"
    result = CliRunner().invoke(lut, [
        "pretrain", "--recipe", "short", "--data", str(root), "--backbone", str(tiny_backbone),
        "--image-size", "32", "--local-size", "16", "--local-views", "2", "--epochs", "1", "--batch-size", "8",
        "--head-hidden", "32", "--bottleneck", "16", "--precision", "fp32", "-o", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "lut.json").read_text())["pretrain"]["config"]
    assert config["recipe"] == "short"
    assert (config["image_size"], config["epochs"], config["batch_size"]) == (32, 1, 8)  # given
    assert (config["lr"], config["warmup_epochs"], config["momentum"], config["out_dim"]) == (2e-3, 2, 0.99, 1024)
    assert (config["colour_jitter"], config["grayscale"], config["teacher_temp_final"]) == (0.2, 0.0, 0.04)


def test_resume_without_a_checkpoint_says_it_starts_afresh(tmp_path, tiny_backbone):
    from lut.toolkit.core.errors import LutWarning

    root = labelled_folder(tmp_path / "d", n=6)
    with pytest.warns(LutWarning, match=r"`resume`: .*does not exist, so pretraining starts from epoch 1"):
        pretrain(tiny_cfg(tmp_path, [root], tiny_backbone, epochs=1, resume=True))


def test_resume_with_other_data_records_both(tmp_path, tiny_backbone, monkeypatch):
    from lut.toolkit.core.errors import LutWarning

    first, second = labelled_folder(tmp_path / "d1", n=6), labelled_folder(tmp_path / "d2", n=6)
    real_save = dino_module.save_checkpoint

    def save_then_die(path, state):
        real_save(path, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(dino_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        pretrain(tiny_cfg(tmp_path, [first], tiny_backbone, epochs=2))
    monkeypatch.setattr(dino_module, "save_checkpoint", real_save)
    with pytest.warns(LutWarning, match=r"`resume` with other `sources` than epochs 1-1 were trained on"):
        pretrain(tiny_cfg(tmp_path, [second], tiny_backbone, epochs=2, resume=True))
    recorded = json.loads((tmp_path / "dino" / "lut.json").read_text())["pretrain"]
    assert [s["path"] for s in recorded["sources"]] == [str(first.resolve()), str(second.resolve())]
    assert [(s["from_epoch"], s["sources"][0]["path"]) for s in recorded["sources_by_epoch"]] == [
        (1, str(first.resolve())), (2, str(second.resolve()))]
