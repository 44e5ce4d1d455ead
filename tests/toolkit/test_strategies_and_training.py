import numpy as np
import pytest
import torch

from lut.toolkit.vit.backbones import load_classifier
from lut.toolkit.data.datasets import PatchDataset, open_source
from lut.toolkit.core.errors import LutError
from lut.toolkit.vit.staged import StagedViT
from lut.toolkit.train.strategies import STRATEGIES, StrategyConfig, make_plan
from lut.toolkit.train.features import FeatureCache, StandardizedHead, head_input_statistics
from lut.toolkit.train.config import TrainConfig
from lut.toolkit.train.trainer import Trainer


def test_progressive_unfreezes_one_block_from_the_top_every_n_epochs():
    plan = make_plan(StrategyConfig("progressive", unfreeze_every=3), num_blocks=12, epochs=15)
    head_only = 14
    assert plan.cuts[:3] == (head_only,) * 3
    assert plan.cuts[3:6] == (12,) * 3  # last block + final norm
    assert plan.cuts[12:] == (9,) * 3
    assert plan.head_lr == 1e-2 and plan.stage_lr[12] == 2e-5


def test_strategy_learning_rates():
    assert make_plan(StrategyConfig("differential_lr"), 12, 1).stage_lr[5] == 2e-5
    assert make_plan(StrategyConfig("differential_lr"), 12, 1).head_lr == 1e-3
    assert make_plan(StrategyConfig("full_ft"), 12, 1).head_lr == 2e-5
    assert make_plan(StrategyConfig("linear_probe"), 12, 1).head_lr == 3e-2
    assert make_plan(StrategyConfig("last_block"), 12, 1).stage_lr == {12: 5e-4, 13: 5e-4}
    llrd = make_plan(StrategyConfig("llrd", layer_decay=0.5), 2, 1)
    assert llrd.stage_lr[3] == 1e-4 and llrd.stage_lr[2] == 5e-5 and llrd.stage_lr[0] == 1.25e-5
    with pytest.raises(LutError):
        make_plan(StrategyConfig("magic"), 12, 1)


def test_staged_forward_equals_the_model(tiny):
    model, _, val = tiny
    x = torch.stack([val[i][0] for i in range(4)])
    staged = StagedViT(model)
    ref = model(pixel_values=x).logits
    for cut in range(staged.num_stages + 1):
        assert torch.allclose(staged.forward(x, cut), ref, atol=1e-5)


def test_frozen_parameters_get_no_gradients(tiny):
    model, train, val = tiny
    trainer = Trainer(model, make_plan(StrategyConfig("last_block"), 2, 1),
                      TrainConfig(epochs=1, progress=False, cache_features=False, batch_size=12))
    trainer.fit(train, val)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(model.get_parameter(n).grad is None for n in frozen)
    assert model.vit.encoder.layer[1].output.dense.weight.grad is not None


def test_progressive_grows_one_optimizer_and_keeps_its_state(tiny):
    model, train, val = tiny
    cfg = TrainConfig(epochs=3, progress=False, batch_size=12)
    trainer = Trainer(model, make_plan(StrategyConfig("progressive", unfreeze_every=1), 2, 3), cfg)
    optimizer = trainer.optimizer
    head_weight = model.classifier.weight
    seen = []
    original_step = optimizer.step

    def step(*a, **k):
        seen.append((len(optimizer.param_groups), int(optimizer.state[head_weight].get("step", 0))))
        return original_step(*a, **k)

    optimizer.step = step
    result = trainer.fit(train, val)
    assert trainer.optimizer is optimizer
    groups = [g for g, _ in seen]
    assert groups[:3] == [1, 1, 1] and groups[3:6] == [3, 3, 3] and groups[6:] == [4, 4, 4]
    assert [s for _, s in seen] == list(range(9))  # AdamW state of the head survives unfreezing
    assert [h["trainable_params"] for h in result.history] == sorted(h["trainable_params"] for h in result.history)
    # the cosine schedule also drives groups added later
    assert optimizer.param_groups[-1]["lr"] < optimizer.param_groups[-1]["base_lr"]


def test_feature_cache_matches_frozen_prefix(tiny):
    model, _, val = tiny
    staged = StagedViT(model)
    cfg = TrainConfig(batch_size=5, progress=False)
    for cut in (staged.head_only, staged.num_stages - 2):
        cache = FeatureCache(staged, cut, val, cfg, torch.device("cpu"), "test")
        x = torch.stack([val[i][0] for i in range(len(val))])
        with torch.no_grad():
            assert torch.allclose(cache.features.float(), staged.prefix(x, cut), atol=1e-2)
        assert torch.equal(cache.labels, torch.tensor([val[i][1] for i in range(len(val))]))


def test_best_validation_weights_are_restored(tiny):
    model, train, val = tiny
    trainer = Trainer(model, make_plan(StrategyConfig("differential_lr", backbone_lr=1e-3, head_lr=1e-2), 2, 4),
                      TrainConfig(epochs=4, progress=False, batch_size=12))
    real_evaluate, seen = trainer.evaluate, []

    def scripted(dataset, cache=None):
        """The real evaluation, its weights kept, and an accuracy that makes epoch 2 of 4 the best."""
        pred, true, loss = real_evaluate(dataset, cache=cache)
        seen.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return (true if len(seen) == 2 else (true + 1) % trainer.num_classes), true, loss

    trainer.evaluate = scripted
    result = trainer.fit(train, val)
    assert len(seen) == 4 and result.best_epoch == 2 and result.best_val_accuracy == 1.0
    restored = model.state_dict()
    backbone = [k for k in restored if k in seen[1] and not k.startswith("classifier")]  # the head is folded
    assert len(backbone) > 10
    assert all(torch.equal(restored[k], seen[1][k]) for k in backbone)  # epoch 2's weights, not the last's
    assert not all(torch.equal(restored[k], seen[3][k]) for k in backbone)


def test_all_strategies_train_and_count_parameters(tiny_backbone):
    counts = {}
    src = open_source("synthetic", 32, synthetic_images=24, seed=0)
    for name in STRATEGIES:
        model, _, _ = load_classifier(str(tiny_backbone), list("abcdef"))
        train = PatchDataset(src, np.arange(18), [0.5] * 3, [0.5] * 3, augment=True)
        val = PatchDataset(src, np.arange(18, 24), [0.5] * 3, [0.5] * 3)
        result = Trainer(model, make_plan(StrategyConfig(name), 2, 1), TrainConfig(epochs=1, progress=False)).fit(
            train, val)
        counts[name] = result.trainable_params
    total = sum(p.numel() for p in model.parameters())
    assert counts["linear_probe"] == 32 * 6 + 6
    assert counts["full_ft"] == counts["differential_lr"] == counts["llrd"] == total
    assert counts["linear_probe"] < counts["last_block"] < total


def test_best_epoch_before_unfreezing_restores_the_blocks_unfrozen_later(tiny):
    model, train, val = tiny
    trainer = Trainer(model, make_plan(StrategyConfig("progressive", unfreeze_every=1, backbone_lr=1e-2), 2, 3),
                      TrainConfig(epochs=3, progress=False, batch_size=12))
    top_block = model.vit.encoder.layer[1].output.dense.weight
    before = top_block.detach().clone()
    scores = iter([0.9, 0.5, 0.4])  # the head-only first epoch is the best one

    def fake_evaluate(dataset, cache=None):
        acc = next(scores)
        n = len(dataset)
        true = np.zeros(n, int)
        return np.where(np.arange(n) < round(acc * n), 0, 1), true, 1.0

    trainer.evaluate = fake_evaluate
    result = trainer.fit(train, val)
    assert result.best_epoch == 1
    assert torch.equal(top_block, before)  # trained in epochs 2-3, then restored


def test_standardized_head_folds_into_an_identical_linear():
    torch.manual_seed(0)
    head = StandardizedHead(torch.nn.Linear(8, 3), torch.randn(8) * 5, torch.rand(8) * 0.1 + 0.01)
    x = torch.randn(16, 8) * 0.1 + head.mean
    folded = head.folded()
    assert isinstance(folded, torch.nn.Linear)
    assert torch.allclose(folded(x), head(x), atol=1e-4)


def test_head_input_statistics_match_the_features(tiny):
    model, _, val = tiny
    staged = StagedViT(model)
    cfg = TrainConfig(batch_size=5, progress=False)
    cache = FeatureCache(staged, staged.num_stages - 2, val, cfg, torch.device("cpu"), "test")
    mean, std = head_input_statistics(staged, cache.batches(5), staged.num_stages - 2, torch.device("cpu"))
    with torch.no_grad():
        f = staged.head_input(cache.features.float(), staged.num_stages - 2)
    assert torch.allclose(mean, f.mean(0), atol=1e-5)
    assert torch.allclose(std, f.std(0, unbiased=False), atol=1e-3)


@pytest.mark.parametrize("strategy", ["linear_probe", "progressive"])
def test_trained_model_keeps_a_plain_linear_head_with_the_best_epochs_predictions(tiny, strategy):
    model, train, val = tiny
    trainer = Trainer(model, make_plan(StrategyConfig(strategy, unfreeze_every=1), 2, 3),
                      TrainConfig(epochs=3, progress=False, batch_size=12))
    result = trainer.fit(train, val)
    assert type(model.classifier) is torch.nn.Linear  # exports like any ViTForImageClassification
    pred, true = trainer.predict(val)
    assert float((pred == true).mean()) == pytest.approx(result.best_val_accuracy)


def test_head_input_is_centred_and_scaled_by_one_scale(tiny):
    """One global scale: low-variance feature directions get no larger weights than the rest (per-feature
    standardization amplified INT8 noise in them)."""
    model, train, val = tiny
    trainer = Trainer(model, make_plan(StrategyConfig("linear_probe"), 2, 1), TrainConfig(epochs=1, progress=False))
    trainer.fit(train, val)
    staged = StagedViT(model)
    loader = torch.utils.data.DataLoader(train, batch_size=8)
    mean, std = head_input_statistics(staged, loader, 0, torch.device("cpu"))
    assert std.max() / std.min() > 1.5  # the features' spreads differ ...
    head = Trainer(model, make_plan(StrategyConfig("linear_probe"), 2, 1), TrainConfig(epochs=1, progress=False))
    head._standardize_head(train, None, None)
    scale = head.model.classifier.std
    assert torch.allclose(scale, scale[0].expand_as(scale))  # ... yet one scale serves them all
    assert torch.allclose(scale[0], std.pow(2).mean().sqrt(), rtol=1e-4)
    assert torch.allclose(head.model.classifier.mean, mean, atol=1e-5)
