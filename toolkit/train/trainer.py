"""The training loop: staged forward, an optimizer that grows, best-validation weights (features: `features`)."""

from __future__ import annotations

import contextlib
import gc
import math
import time
from dataclasses import replace
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from lut.toolkit.data.datasets import PatchDataset
from .distributed import DistConfig, all_mean, all_sum, gather_rows, make_fabric, shard_for
from .evaluation import macro_f1
from .regularize import WeightEma, class_weights, mix_batch
from lut.toolkit.vit.staged import StagedViT
from .strategies import Plan
from .config import TrainConfig, TrainResult
from .features import FeatureCache, StandardizedHead, head_input_moments, moments_to_statistics
from .steps import CosineSchedule, check_finite, shard_loader


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
