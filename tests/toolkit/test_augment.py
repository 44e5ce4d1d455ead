import numpy as np
import pytest
import torch

from lut.toolkit.data.augment import AugmentConfig, augment, colour_jitter, resized_crop
from lut.toolkit.vit.backbones import load_classifier
from lut.toolkit.data.datasets import PatchDataset, open_source
from lut.toolkit.core.errors import LutError
from lut.toolkit.vit.staged import StagedViT
from lut.toolkit.train.features import FeatureCache
from lut.toolkit.train.config import TrainConfig


def test_augmentation_repeats_per_draw_and_keeps_colour_unless_asked():
    image = torch.rand(3, 32, 32)
    a = augment(image, AugmentConfig(crop_scale=0.5, colour=0.2), np.random.default_rng([0, 1, 2]))
    b = augment(image, AugmentConfig(crop_scale=0.5, colour=0.2), np.random.default_rng([0, 1, 2]))
    assert torch.equal(a, b) and a.shape == image.shape
    plain = augment(image, AugmentConfig(), np.random.default_rng(3))
    assert torch.allclose(plain.mean(dim=(1, 2)), image.mean(dim=(1, 2)))  # flips/rotations move no colour
    uniform = torch.tensor([0.2, 0.5, 0.3])[:, None, None].expand(3, 16, 16)
    cropped = resized_crop(uniform, 0.3, np.random.default_rng(4))
    assert torch.allclose(cropped, uniform, atol=1e-5)  # a crop of a uniform patch stays that colour
    jittered = colour_jitter(uniform, 0.3, np.random.default_rng(5))
    assert (jittered - uniform).abs().max() > 0.01 and 0 <= jittered.min() and jittered.max() <= 1
    with pytest.raises(LutError):
        AugmentConfig(crop_scale=0).check()


def test_cached_strategies_see_one_augmented_view_per_epoch_in_turn(tiny_backbone):
    model, _, _ = load_classifier(str(tiny_backbone), list("abcdef"))
    src = open_source("synthetic", 32, synthetic_images=24, seed=0)
    train = PatchDataset(src, np.arange(12), [0.5] * 3, [0.5] * 3, augment=True, policy=AugmentConfig(0.6))
    staged = StagedViT(model)
    cache = FeatureCache(staged, staged.head_only, train, TrainConfig(progress=False, batch_size=4),
                         torch.device("cpu"), "test", views=3)
    assert len(cache.views) == 3 and not torch.equal(cache.views[0], cache.views[1])
    for epoch in (0, 1, 2, 3):
        x, _ = next(cache.batches(12, None, epoch))
        assert torch.equal(x, cache.views[epoch % 3].float())
    train.set_epoch(1)
    x = torch.stack([train[i][0] for i in range(12)])
    with torch.no_grad():
        assert torch.allclose(staged.prefix(x, staged.head_only), cache.views[1], atol=1e-4)  # view 1 = epoch 1
