import pytest
import torch
from transformers import ViTForImageClassification

from lut.toolkit.vit.backbones import load_classifier
from lut.toolkit.core.errors import LutError
from lut.toolkit.vit.staged import StagedViT
from lut.toolkit.train.strategies import StrategyConfig, make_plan
from lut.toolkit.train.config import TrainConfig
from lut.toolkit.train.trainer import Trainer

from ..conftest import tiny_vit_config

SIX = ["forest", "cropland", "urban", "water", "barren", "wetland"]


def trainable_after_first_epoch(model, strategy: str) -> int:
    trainer = Trainer(model, make_plan(StrategyConfig(strategy), StagedViT(model).num_blocks, 15), TrainConfig())
    trainer._unfreeze_to(trainer.plan.cuts[0])
    return sum(p.numel() for p in trainer._trainable())


def test_vit_base_parameter_counts_match_the_study():
    model, processor, info = load_classifier("vit-base", SIX)
    assert (info.hidden_size, info.num_layers, info.image_size) == (768, 12, 224)
    assert model.config.id2label[3] == "water" and model.config.label2id["wetland"] == 5
    assert trainable_after_first_epoch(model, "linear_probe") == 4_614
    total = sum(p.numel() for p in model.parameters())
    assert trainable_after_first_epoch(model, "full_ft") == total
    assert round(total / 1e6, 1) == 85.8


@pytest.mark.parametrize("spec,width", [("vit-tiny", 192), ("vit-small", 384)])
def test_random_init_sizes(spec, width):
    model, _, info = load_classifier(spec, SIX, image_size=64)
    assert info.hidden_size == width and info.num_layers == 12 and info.kind == "random-init"
    assert model(pixel_values=torch.zeros(1, 3, 64, 64)).logits.shape == (1, 6)


def test_local_vitmodel_checkpoint_gets_a_new_head(tiny_backbone):
    model, processor, info = load_classifier(str(tiny_backbone), ["a", "b", "c"])
    assert info.kind == "local" and info.image_size == 32
    assert model.classifier.out_features == 3
    from transformers import ViTModel

    ref = ViTModel.from_pretrained(tiny_backbone)
    assert torch.equal(model.vit.embeddings.patch_embeddings.projection.weight,
                       ref.embeddings.patch_embeddings.projection.weight)


def test_local_classifier_checkpoint_with_other_classes_and_size(tmp_path):
    path = tmp_path / "clf"
    ViTForImageClassification(tiny_vit_config(num_labels=9)).save_pretrained(path)
    model, processor, info = load_classifier(str(path), SIX, image_size=48)
    assert model.classifier.out_features == 6 and info.image_size == 48
    assert processor.size == {"height": 48, "width": 48}
    assert model(pixel_values=torch.zeros(2, 3, 48, 48)).logits.shape == (2, 6)


def test_default_hub_id_offline_fails_fast_with_its_own_exit_code(monkeypatch):
    import time

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(LutError) as err:
        load_classifier("google/vit-base-patch16-224", SIX)
    assert err.value.exit_code == 3 and "`backbone`" in str(err.value) and "hub" in str(err.value)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("spec", ["lut-test-org/no-such-model-for-tests", "nope_dir/", "./x", "mymodels/dino/v1"])
def test_missing_path_like_backbone_is_a_missing_directory(monkeypatch, spec):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(LutError, match="does not exist") as err:
        load_classifier(spec, SIX)
    assert err.value.exit_code == 1


@pytest.mark.parametrize("spec", ["resnet-50-ish", "./does/not/exist"])
def test_unknown_backbones(spec):
    with pytest.raises(LutError):
        load_classifier(spec, SIX)


def test_image_size_must_divide_by_patch(tiny_backbone):
    with pytest.raises(LutError, match="multiple of the patch size"):
        load_classifier(str(tiny_backbone), SIX, image_size=36)


def test_backbone_specs_are_told_apart_in_one_place():
    from lut.toolkit.vit.backbones import is_hub_id, is_local_spec

    assert is_hub_id("google/vit-base-patch16-224")
    assert not is_hub_id("models/dino-vit-tiny") and is_local_spec("models/dino-vit-tiny")
    assert not is_hub_id("a/b/c") and not is_hub_id("vit-huge") and not is_hub_id("./ckpt")
