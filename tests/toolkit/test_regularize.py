import numpy as np
import pytest
import torch

from lut.toolkit.data.augment import AugmentConfig
from lut.toolkit.vit.backbones import load_classifier
from lut.toolkit.core.errors import LutError
from lut.toolkit.train.regularize import MixConfig, WeightEma, class_weights, mix_batch
from lut.toolkit.train.strategies import StrategyConfig, make_plan
from lut.toolkit.train.config import TrainConfig
from lut.toolkit.train.trainer import Trainer


def test_balanced_class_weights_make_every_class_weigh_the_same():
    labels = np.array([0] * 10 + [1] * 2)
    w = class_weights("balanced", labels, 3)
    assert torch.allclose(w, torch.tensor([0.6, 3.0, 0.0]))
    assert w[0] * 10 == pytest.approx(w[1] * 2)  # total weight per class equal; the absent class none
    assert class_weights("none", labels, 3) is None
    with pytest.raises(LutError):
        class_weights("inverse", labels, 3)


def test_mixup_and_cutmix_targets_match_what_was_mixed():
    x = torch.stack([torch.full((3, 8, 8), float(i)) for i in range(4)])
    y = torch.tensor([0, 1, 2, 3])
    same, onehot = mix_batch(x, y, 4, MixConfig(mixup=0.4, prob=0.0), np.random.default_rng(0))
    assert torch.equal(same, x) and torch.equal(onehot, torch.eye(4))
    mixed, soft = mix_batch(x, y, 4, MixConfig(mixup=0.4), np.random.default_rng(1))
    lam = soft[0, 0].item()
    assert 0 < lam < 1 and torch.allclose(soft.sum(1), torch.ones(4))
    assert torch.allclose(mixed[0], lam * x[0] + (1 - lam) * x[3])  # partner: the batch reversed
    cut, soft = mix_batch(x, y, 4, MixConfig(cutmix=1.0), np.random.default_rng(2))
    kept = (cut[0] == 0).float().mean().item()  # image 0 holds 0s where it was not cut
    assert soft[0, 0].item() == pytest.approx(kept) and soft[0, 3].item() == pytest.approx(1 - kept)
    with pytest.raises(LutError):
        MixConfig(mixup=-1).check()


@pytest.mark.parametrize("bad, message", [
    (dict(cache_views=0), "`cache_views`"),
    (dict(augment=AugmentConfig(crop_scale=0.01)), "`crop_scale`"),
    (dict(augment=AugmentConfig(colour=1.0)), "`colour_jitter`"),
    (dict(mix=MixConfig(mixup=0.5, prob=2.0)), "`mix_prob`"),
])
def test_train_config_refuses_what_click_ranges_cannot_express(bad, message):
    """Library messages name the parameter; the CLI turns it into the flag."""
    with pytest.raises(LutError, match=message):
        TrainConfig(**bad).check()
    TrainConfig().check()  # the defaults pass


def test_weight_ema_averages_and_is_applied_only_inside_its_block():
    p = torch.nn.Parameter(torch.zeros(2))
    ema = WeightEma(0.5)
    ema.update([p])
    with torch.no_grad():
        p.fill_(4.0)
    ema.update([p])
    with ema.applied([p]):
        assert torch.equal(p.data, torch.full((2,), 2.0))
    assert torch.equal(p.data, torch.full((2,), 4.0))
    with pytest.raises(LutError):
        WeightEma(1.0)


def test_ema_weights_are_the_validated_kept_and_exported_ones(tiny):
    model, train, val = tiny
    cfg = TrainConfig(epochs=3, batch_size=12, progress=False, ema=0.6, mix=MixConfig(mixup=0.2, cutmix=1.0),
                      label_smoothing=0.1, class_weights="balanced")
    trainer = Trainer(model, make_plan(StrategyConfig("full_ft", backbone_lr=1e-3), 2, 3), cfg)
    result = trainer.fit(train, val)
    assert trainer.loss_fn.label_smoothing == 0.1 and trainer.loss_fn.weight is not None
    assert all(np.isfinite(h["train_loss"]) for h in result.history)
    pred, true = trainer.predict(val)
    assert float((pred == true).mean()) == pytest.approx(result.best_val_accuracy)


def test_patience_stops_after_epochs_without_improvement(tiny):
    model, train, val = tiny
    trainer = Trainer(model, make_plan(StrategyConfig("linear_probe"), 2, 6),
                      TrainConfig(epochs=6, progress=False, batch_size=12, patience=2))
    scores = iter([0.5, 0.7, 0.6, 0.6, 0.9, 0.9])

    def fake_evaluate(dataset, cache=None):
        n = len(dataset)
        return np.where(np.arange(n) < round(next(scores) * n), 0, 1), np.zeros(n, int), 1.0

    trainer.evaluate = fake_evaluate
    result = trainer.fit(train, val)
    assert len(result.history) == 4 and result.best_epoch == 2  # epochs 3 and 4 did not beat epoch 2


def test_drop_path_drops_whole_samples_in_training_and_is_the_plain_block_in_eval(tiny_backbone):
    from lut.toolkit.vit.drop_path import add_drop_path

    torch.manual_seed(0)
    model, _, _ = load_classifier(str(tiny_backbone), list("abcdef"))
    x = torch.randn(8, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        before = model(pixel_values=x).logits
    assert add_drop_path(model, 0.4) == [0.0, 0.4]  # linear in depth: the first block never drops
    with torch.no_grad():
        assert torch.allclose(model(pixel_values=x).logits, before, atol=1e-6)  # eval: the original forward
        model.train()
        runs = [model(pixel_values=x).logits for _ in range(4)]
    assert any(not torch.allclose(runs[0], r) for r in runs[1:])
    assert set(model.state_dict()) == set(load_classifier(str(tiny_backbone), list("abcdef"))[0].state_dict())
    with pytest.raises(LutError):
        add_drop_path(model, 1.0)
