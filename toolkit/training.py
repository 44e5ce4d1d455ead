"""The training loop: staged forward, feature caching, an optimizer that grows, best-validation weights."""

from __future__ import annotations

import contextlib
import gc
import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .augment import AugmentConfig
from .datasets import PatchDataset
from .distributed import DistConfig, Shard, all_mean, all_sum, gather_rows, make_fabric, shard_for
from .errors import LutError
from .evaluation import macro_f1
from .regularize import MixConfig, WeightEma, class_weights, mix_batch
from .staged import StagedViT
from .strategies import Plan


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 15
    batch_size: int = 32
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    cache_features: bool = True
    standardize_head: bool = True
    num_workers: int = 0
    progress: bool = True
    class_weights: str = "none"  # or "balanced": every class weighs the same in the loss
    label_smoothing: float = 0.0
    mix: MixConfig = field(default_factory=MixConfig)  # mixup/cutmix on pixel batches (not on cached features)
    ema: float | None = None  # decay of an EMA of the weights used for validation, the best snapshot and export
    patience: int | None = None  # stop after this many epochs without a better validation accuracy
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # beyond the flips/rotations
    cache_views: int = 1  # cached strategies: augmented views cached per training image, one per epoch in turn
    drop_path: float = 0.0  # stochastic depth of the last block (linear in depth from 0 at the first)

    def check(self) -> None:
        """Every option that a click range cannot express, refused before anything trains."""
        self.mix.check()
        self.augment.check()
        if self.cache_views < 1:
            raise LutError(f"--cache-views must be at least 1, got {self.cache_views}")


@dataclass
class TrainResult:
    best_epoch: int
    best_val_accuracy: float
    history: list[dict] = field(default_factory=list)
    train_seconds: float = 0.0
    trainable_params: int = 0
    total_params: int = 0


class CosineSchedule:
    """Cosine decay applied to every param group's own base LR, including groups added later."""

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int) -> None:
        self.optimizer = optimizer
        self.total_steps = max(total_steps, 1)
        self.step_count = 0
        self.apply()

    def factor(self) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * min(self.step_count, self.total_steps) / self.total_steps))

    def apply(self) -> None:
        f = self.factor()
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * f

    def step(self) -> None:
        self.step_count += 1
        self.apply()


def check_finite(fabric, loss: torch.Tensor, epoch: int) -> None:
    """Stop at once when the loss is NaN/inf on any rank: nothing after it would be a model. Every rank
    stops together; one stopping alone would leave the others waiting inside a collective."""
    local = bool(torch.isfinite(loss.detach()).item())
    finite = local
    if fabric.world_size > 1:
        finite = fabric.all_reduce(torch.tensor(float(local), device=fabric.device), reduce_op="min").item() == 1
    if not finite:
        value = "NaN/inf on another rank" if local else loss.item()
        raise LutError(f"the training loss became {value} in epoch {epoch}; nothing was written. Check the "
                       "data for invalid pixels, or lower the learning rate")


def shard_loader(dataset: PatchDataset, shard: Shard, batch_size: int, workers: int):
    """This rank's share of `dataset`, in order (padding included: `shard.valid` says which rows count)."""
    return torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, shard.indices.tolist()),
                                       batch_size=batch_size, shuffle=False, num_workers=workers)


def count_params(modules: list[nn.Module]) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


class FeatureCache:
    """Prefix outputs for a fixed cut, computed once; sequence caches are kept in float16.

    `views` > 1 caches that many augmented views of each image (the dataset's augmentation for epochs
    0..views-1); epoch e trains on view e mod views. Under DDP each rank caches only its `shard` of the
    dataset (equal sizes, so equal batch counts)."""

    def __init__(self, staged: StagedViT, cut: int, dataset: PatchDataset, cfg: TrainConfig, device: torch.device,
                 desc: str, shard: Shard | None = None, batch_size: int | None = None, views: int = 1) -> None:
        self.shard = shard if shard is not None else Shard.of(len(dataset), 1, 0)
        loader = shard_loader(dataset, self.shard, batch_size or cfg.batch_size, cfg.num_workers)
        self.views: list[torch.Tensor] = []
        for view in range(views):
            if views > 1:
                dataset.set_epoch(view)
            chunks, labels = [], []
            with torch.no_grad():
                for x, y in tqdm(loader, desc=f"{desc} ({view + 1}/{views})" if views > 1 else desc, leave=False,
                                 disable=not cfg.progress, unit="batch"):
                    h = staged.prefix(x.to(device), cut)
                    chunks.append(h.to("cpu", torch.float16 if h.dim() == 3 else torch.float32))
                    labels.append(y)
            self.views.append(torch.cat(chunks))
        self.features = self.views[0]
        self.labels = torch.cat(labels)

    def batches(self, batch_size: int, generator: torch.Generator | None = None, epoch: int = 0):
        features = self.views[epoch % len(self.views)]
        order = (torch.randperm(len(self.labels), generator=generator) if generator is not None
                 else torch.arange(len(self.labels)))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            yield features[idx].float(), self.labels[idx]


class StandardizedHead(nn.Module):
    """The classifier on centred, rescaled features, folded into a plain Linear afterwards.

    The CLS features of a frozen backbone (random or self-supervised) share a large common offset and
    differ in small directions; a linear head trained on them raw converges far too slowly to measure
    what the backbone holds. Centring with training-set means and dividing by **one** global scale (the
    RMS of the per-feature standard deviations) fixes that. Per-feature standardization did too, but it
    multiplied the weights of low-variance feature directions (up to 7.8x the median column norm on an
    RSSCN7 bundle), which amplified INT8 quantization noise: top-1 agreement of the INT8 export fell from
    97.3% to 93.2% on the same model (BENCHMARKS.md). The statistics are fixed, so folding is exact.
    """

    def __init__(self, linear: nn.Linear, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.linear = linear
        self.register_buffer("mean", mean.to(linear.weight))
        self.register_buffer("std", std.to(linear.weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((x - self.mean) / self.std)

    @torch.no_grad()
    def folded(self) -> nn.Linear:
        out = nn.Linear(self.linear.in_features, self.linear.out_features).to(self.linear.weight)
        weight = self.linear.weight / self.std
        out.weight.copy_(weight)
        out.bias.copy_(self.linear.bias - weight @ self.mean)
        return out


@torch.no_grad()
def head_input_moments(staged: StagedViT, batches, cut: int, device: torch.device,
                       valid: torch.Tensor | None = None) -> torch.Tensor:
    """Count, per-feature sum and sum of squares (float64, one row each) of the classifier's input over
    `batches` of prefix outputs at `cut`; rows where `valid` is False (shard padding) are left out."""
    features = torch.cat([staged.head_input(x.to(device), cut).double().cpu() for x, _ in batches])
    if valid is not None:
        features = features[valid]
    count = torch.full((features.shape[1],), float(len(features)), dtype=torch.float64)
    return torch.stack([count, features.sum(0), features.pow(2).sum(0)])


def moments_to_statistics(moments: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    count, total, squares = moments
    mean = total / count
    var = (squares / count - mean.pow(2)).clamp_min(0)
    return mean.float(), (var + eps).sqrt().float()


def head_input_statistics(staged: StagedViT, batches, cut: int, device: torch.device,
                          eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and std of the classifier's input over `batches` of prefix outputs at `cut`."""
    return moments_to_statistics(head_input_moments(staged, batches, cut, device), eps)


def _stage_params(staged: StagedViT, stage: int) -> list[nn.Parameter]:
    return list(staged.stage_modules(stage).parameters())


class TrainNet(nn.Module):
    """The one forward that training calls, so DDP sees every training computation: the frozen prefix
    without autograd, then the trainable suffix; from pixels, or from cached prefix outputs."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.staged = StagedViT(model)

    def forward(self, x: torch.Tensor, cut: int, cached: bool) -> torch.Tensor:
        return self.staged.suffix(x, cut) if cached else self.staged.forward(x, cut)


class Trainer:
    """Trains `model` following `plan` on every rank of `fabric`; the optimizer gains param groups as
    stages unfreeze, and the module is re-wrapped for DDP whenever what trains changes."""

    def __init__(self, model: nn.Module, plan: Plan, cfg: TrainConfig, fabric=None,
                 on_epoch_end: Callable[[int, "Trainer"], None] | None = None) -> None:
        self.model = model
        self.plan = plan
        cfg.check()
        self.fabric = fabric if fabric is not None else make_fabric(DistConfig())  # one device
        self.cfg = replace(cfg, progress=cfg.progress and self.fabric.global_rank == 0)  # one set of bars
        self.device = self.fabric.device
        self.on_epoch_end = on_epoch_end
        self.net = TrainNet(model)
        self.staged = self.net.staged
        self.wrapped: nn.Module | None = None
        self.loss_fn = nn.CrossEntropyLoss()
        model.to(self.device)
        for p in model.parameters():
            p.requires_grad_(False)
        self.trainable_stages: set[int] = set()
        # values of parameters unfrozen after epoch 0, for restoring a best epoch that predates them
        self.frozen_values: dict[str, torch.Tensor] = {}
        head = list(model.classifier.parameters())
        for p in head:
            p.requires_grad_(True)
        self.optimizer = torch.optim.AdamW(
            [{"params": head, "lr": plan.head_lr, "base_lr": plan.head_lr, "name": "head"}],
            lr=plan.head_lr, weight_decay=cfg.weight_decay,
        )
        self.val_cache: FeatureCache | None = None
        self.cache_cut: int | None = None
        self.num_classes = model.classifier.out_features
        self.ema = WeightEma(cfg.ema) if cfg.ema else None

    @property
    def local_batch(self) -> int:
        return max(self.cfg.batch_size // self.fabric.world_size, 1)

    def _unfreeze_to(self, cut: int, remember: bool = False) -> bool:
        """Add a param group per newly trainable stage (existing groups keep their AdamW state); True when
        the set of trainable parameters changed."""
        changed = False
        for stage in range(cut, self.staged.num_stages):
            if stage in self.trainable_stages:
                continue
            params = _stage_params(self.staged, stage)
            if remember:
                ids = {id(p) for p in params}
                self.frozen_values.update({n: p.detach().clone() for n, p in self.model.named_parameters()
                                           if id(p) in ids})
            for p in params:
                p.requires_grad_(True)
            rate = self.plan.stage_lr[stage]
            self.optimizer.add_param_group({"params": params, "lr": rate, "base_lr": rate, "name": f"stage{stage}"})
            self.trainable_stages.add(stage)
            changed = True
        return changed

    def _wrap(self) -> None:
        """A new DDP wrapper for the parameters that train now. DDP registers the parameters that require
        gradients when it is built; one built before an unfreeze would never synchronise the new ones. The
        old wrapper goes first, with its reducer's gradient hooks; building broadcasts rank 0's weights."""
        self.wrapped = None
        gc.collect()
        self.wrapped = self.fabric.setup_module(self.net)

    def _trainable(self) -> list[nn.Parameter]:
        return [p for g in self.optimizer.param_groups for p in g["params"]]

    def _snapshot(self) -> dict[str, torch.Tensor]:
        ids = {id(p) for p in self._trainable()}
        return {n: p.detach().clone() for n, p in self.model.named_parameters() if id(p) in ids}

    def _set_modes(self, cut: int) -> None:
        self.model.eval()
        for stage in range(cut, self.staged.num_stages):
            self.staged.stage_modules(stage).train()
        self.model.classifier.train()

    def _caches(self, train: PatchDataset, val: PatchDataset) -> tuple[FeatureCache | None, int | None]:
        plan, cfg = self.plan, self.cfg
        cut = plan.cuts[0] if (plan.fixed_cut and cfg.cache_features and plan.cuts[0] > 0) else None
        if cut is None:
            return None, None
        shard = shard_for(self.fabric, len(train))
        self.model.eval()  # the frozen prefix as it will run: no dropout, no dropped paths
        train_cache = FeatureCache(self.staged, cut, train, cfg, self.device, "caching train features", shard,
                                   self.local_batch, views=cfg.cache_views)
        self.val_cache = FeatureCache(self.staged, cut, val, cfg, self.device, "caching val features",
                                      shard_for(self.fabric, len(val)), self.local_batch)
        return train_cache, cut

    def fit(self, train: PatchDataset, val: PatchDataset) -> TrainResult:
        cfg, plan, fabric = self.cfg, self.plan, self.fabric
        torch.manual_seed(cfg.seed)
        weights = class_weights(cfg.class_weights, train.source.labels[train.indices], self.num_classes)
        self.loss_fn = nn.CrossEntropyLoss(weight=None if weights is None else weights.to(self.device),
                                           label_smoothing=cfg.label_smoothing)
        generator = torch.Generator().manual_seed(cfg.seed)
        start = time.perf_counter()
        train_cache, self.cache_cut = self._caches(train, val)
        if cfg.standardize_head:
            self._standardize_head(train, train_cache, self.cache_cut)
        sampler = torch.utils.data.distributed.DistributedSampler(
            train, num_replicas=fabric.world_size, rank=fabric.global_rank, shuffle=True, seed=cfg.seed)
        steps_per_epoch = math.ceil(len(sampler) / self.local_batch)
        schedule = CosineSchedule(self.optimizer, steps_per_epoch * cfg.epochs)

        best_acc, best_epoch, best_state = -1.0, 0, None
        history: list[dict] = []
        epochs = tqdm(range(cfg.epochs), desc=plan.name, unit="epoch", disable=not cfg.progress)
        for epoch in epochs:
            cut = plan.cuts[epoch]
            if self._unfreeze_to(cut, remember=epoch > 0) or self.wrapped is None:
                self._wrap()
                schedule.apply()  # new groups start at the schedule's current factor
            rates = self._rates()  # at the epoch's first step
            self._set_modes(cut)
            train.set_epoch(epoch)
            sampler.set_epoch(epoch)
            if train_cache is not None:
                batches = train_cache.batches(self.local_batch, generator, epoch)
            else:
                batches = iter(torch.utils.data.DataLoader(train, batch_size=self.local_batch, sampler=sampler,
                                                           num_workers=cfg.num_workers))
            loss = all_mean(fabric, self._train_epoch(batches, cut, train_cache is not None, schedule, epoch,
                                                      steps_per_epoch))
            with self._averaged():  # the EMA weights, where on, are what is validated, kept and exported
                # every rank predicts its shard; the gathered predictions give one exact metric on every rank
                val_pred, val_true, val_loss = self.evaluate(val, cache=self.val_cache)
                val_acc = float((val_pred == val_true).mean())
                if val_acc > best_acc:
                    best_acc, best_epoch, best_state = val_acc, epoch + 1, self._snapshot()
            history.append({"epoch": epoch + 1, "train_loss": loss, "val_loss": val_loss, "val_accuracy": val_acc,
                            "val_macro_f1": macro_f1(val_true, val_pred, self.num_classes), **rates,
                            "trainable_params": sum(p.numel() for p in self._trainable())})
            epochs.set_postfix(loss=f"{loss:.3f}", val_acc=f"{val_acc:.3f}")
            if self.on_epoch_end is not None:
                self.on_epoch_end(epoch, self)
            if cfg.patience and epoch + 1 - best_epoch >= cfg.patience:
                break  # the same decision on every rank: the metric is the gathered one
        seconds = time.perf_counter() - start
        self.wrapped = None
        self._restore(best_state)
        return TrainResult(best_epoch, best_acc, history, seconds,
                           trainable_params=sum(p.numel() for p in self._trainable()),
                           total_params=sum(p.numel() for p in self.model.parameters()))

    def _train_epoch(self, batches, cut: int, cached: bool, schedule: CosineSchedule, epoch: int,
                     steps: int) -> float:
        """One pass through this rank's batches, every one through the wrapped forward; the mean loss."""
        losses = []
        bar = tqdm(batches, total=steps, desc=f"epoch {epoch + 1}/{self.cfg.epochs}", leave=False,
                   disable=not self.cfg.progress, unit="batch")
        mixing = self.cfg.mix.active and not cached
        rng = np.random.default_rng([self.cfg.seed, epoch, self.fabric.global_rank, 7])
        for x, y in bar:
            x, y = x.to(self.device), y.to(self.device)
            if mixing:
                x, y = mix_batch(x, y, self.num_classes, self.cfg.mix, rng)
            loss = self.loss_fn(self.wrapped(x, cut, cached), y)
            check_finite(self.fabric, loss, epoch + 1)
            self.optimizer.zero_grad(set_to_none=True)
            self.fabric.backward(loss)
            nn.utils.clip_grad_norm_(self._trainable(), self.cfg.grad_clip)
            self.optimizer.step()
            schedule.step()
            if self.ema is not None:
                self.ema.update(self._trainable())
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        return float(np.mean(losses)) if losses else float("nan")

    def _averaged(self):
        return self.ema.applied(self._trainable()) if self.ema is not None else contextlib.nullcontext()

    def _rates(self) -> dict[str, float | None]:
        """The head's and the backbone's (its top trainable stage's) learning rate now."""
        groups = {g["name"]: g["lr"] for g in self.optimizer.param_groups}
        stages = [k for k in groups if k.startswith("stage")]
        top = max(stages, key=lambda k: int(k[5:])) if stages else None
        return {"lr_head": groups["head"], "lr_backbone": groups[top] if top else None}

    def _restore(self, best_state: dict[str, torch.Tensor] | None) -> None:
        """The best epoch's weights (stages unfrozen after it go back to their frozen values), head folded."""
        if best_state is not None:
            restore = {n: v for n, v in self.frozen_values.items() if n not in best_state}
            self.model.load_state_dict({**restore, **best_state}, strict=False)
        if isinstance(self.model.classifier, StandardizedHead):
            self.model.classifier = self.model.classifier.folded()
        self.model.eval()

    def _standardize_head(self, train: PatchDataset, cache: FeatureCache | None, cut: int | None) -> None:
        """Wrap the classifier in a StandardizedHead; statistics over the whole training set (every rank's
        shard, summed), from the cache or one frozen pass."""
        if cache is not None:
            batches, at, shard = cache.batches(self.local_batch), cut, cache.shard
        else:
            shard = shard_for(self.fabric, len(train))
            batches = shard_loader(train, shard, self.local_batch, self.cfg.num_workers)
            at = 0  # pixels: the whole backbone runs once, without autograd
        was_training = self.model.training
        self.model.eval()
        moments = head_input_moments(self.staged, batches, at, self.device, torch.from_numpy(shard.valid))
        mean, std = moments_to_statistics(all_sum(self.fabric, moments))
        std = torch.full_like(std, float(std.pow(2).mean().sqrt()))  # one scale: see StandardizedHead
        self.model.train(was_training)
        self.model.classifier = StandardizedHead(self.model.classifier, mean, std)

    @torch.no_grad()
    def evaluate(self, dataset: PatchDataset, cache: FeatureCache | None = None
                 ) -> tuple[np.ndarray, np.ndarray, float]:
        """Predicted and true labels of the whole dataset on every rank (each rank runs its shard, the rows
        are gathered), and the mean cross-entropy; reuses a prefix cache when the cut allows it."""
        was_training = self.model.training
        self.model.eval()
        if cache is not None:
            shard, batches, cut = cache.shard, cache.batches(self.local_batch), self.cache_cut
        else:
            shard, cut = shard_for(self.fabric, len(dataset)), 0
            batches = shard_loader(dataset, shard, self.local_batch, self.cfg.num_workers)
        rows = []
        with self.fabric.autocast():
            for x, y in batches:
                x = x.to(self.device)
                logits = self.staged.suffix(x, cut) if cache is not None else self.model(pixel_values=x).logits
                loss = nn.functional.cross_entropy(logits.float().cpu(), y.cpu(), reduction="none")
                rows.append(torch.stack([logits.argmax(-1).cpu().double(), y.cpu().double(), loss.double()], 1))
        self.model.train(was_training)
        both = gather_rows(self.fabric, torch.cat(rows), shard, len(dataset)).numpy()
        return both[:, 0].astype(np.int64), both[:, 1].astype(np.int64), float(both[:, 2].mean())

    def predict(self, dataset: PatchDataset, cache: FeatureCache | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Predicted and true labels of the whole dataset, on every rank."""
        pred, true, _ = self.evaluate(dataset, cache)
        return pred, true

    def predict_test(self, test: PatchDataset) -> tuple[np.ndarray, np.ndarray]:
        if self.cache_cut is not None:
            cache = FeatureCache(self.staged, self.cache_cut, test, self.cfg, self.device, "caching test features",
                                 shard_for(self.fabric, len(test)), self.local_batch)
            return self.predict(test, cache=cache)
        return self.predict(test)
