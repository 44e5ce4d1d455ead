"""The training loop: staged forward, feature caching, an optimizer that grows, best-validation weights."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .datasets import PatchDataset
from .staged import StagedViT
from .strategies import Plan


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 15
    batch_size: int = 32
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "cpu"
    cache_features: bool = True
    standardize_head: bool = True
    num_workers: int = 0
    progress: bool = True


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


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        from .errors import LutError

        raise LutError("--device cuda was asked for but no CUDA GPU is usable here")
    return torch.device(device)


def check_finite(loss: torch.Tensor, epoch: int) -> None:
    """Stop at once when the loss is NaN/inf: nothing after it would be a model."""
    if not torch.isfinite(loss).item():
        from .errors import LutError

        raise LutError(f"the training loss became {loss.item()} in epoch {epoch}; nothing was written. Check the "
                       "data for invalid pixels, or lower the learning rate")


def count_params(modules: list[nn.Module]) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


class FeatureCache:
    """Prefix outputs for a fixed cut, computed once; sequence caches are kept in float16."""

    def __init__(self, staged: StagedViT, cut: int, dataset: PatchDataset, cfg: TrainConfig, device: torch.device,
                 desc: str) -> None:
        loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, shuffle=False,
                                             num_workers=cfg.num_workers)
        chunks, labels = [], []
        with torch.no_grad():
            for x, y in tqdm(loader, desc=desc, leave=False, disable=not cfg.progress, unit="batch"):
                h = staged.prefix(x.to(device), cut)
                chunks.append(h.to("cpu", torch.float16 if h.dim() == 3 else torch.float32))
                labels.append(y)
        self.features = torch.cat(chunks)
        self.labels = torch.cat(labels)

    def batches(self, batch_size: int, generator: torch.Generator | None = None):
        order = (torch.randperm(len(self.labels), generator=generator) if generator is not None
                 else torch.arange(len(self.labels)))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            yield self.features[idx].float(), self.labels[idx]


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
def head_input_statistics(staged: StagedViT, batches, cut: int, device: torch.device,
                          eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and std of the classifier's input over `batches` of prefix outputs at `cut`."""
    features = torch.cat([staged.head_input(x.to(device), cut).float() for x, _ in batches])
    return features.mean(0), (features.var(0, unbiased=False) + eps).sqrt()


def _stage_params(staged: StagedViT, stage: int) -> list[nn.Parameter]:
    return list(staged.stage_modules(stage).parameters())


class Trainer:
    """Trains `model` following `plan`; the optimizer gains param groups as stages unfreeze."""

    def __init__(self, model: nn.Module, plan: Plan, cfg: TrainConfig) -> None:
        self.model = model
        self.plan = plan
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.staged = StagedViT(model)
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

    def _unfreeze_to(self, cut: int, remember: bool = False) -> None:
        """Add a param group per newly trainable stage; existing groups keep their AdamW state."""
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

    def fit(self, train: PatchDataset, val: PatchDataset) -> TrainResult:
        cfg, plan = self.cfg, self.plan
        torch.manual_seed(cfg.seed)
        generator = torch.Generator().manual_seed(cfg.seed)
        steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
        schedule = CosineSchedule(self.optimizer, steps_per_epoch * cfg.epochs)
        start = time.perf_counter()

        cache_cut = plan.cuts[0] if (plan.fixed_cut and cfg.cache_features and plan.cuts[0] > 0) else None
        train_cache = val_cache = None
        if cache_cut is not None:
            train_cache = FeatureCache(self.staged, cache_cut, train, cfg, self.device, "caching train features")
            val_cache = FeatureCache(self.staged, cache_cut, val, cfg, self.device, "caching val features")
        self.val_cache, self.cache_cut = val_cache, cache_cut
        if cfg.standardize_head:
            self._standardize_head(train, train_cache, cache_cut)

        best_acc, best_epoch, best_state = -1.0, 0, None
        history: list[dict] = []
        epochs = tqdm(range(cfg.epochs), desc=plan.name, unit="epoch", disable=not cfg.progress)
        for epoch in epochs:
            cut = plan.cuts[epoch]
            self._unfreeze_to(cut, remember=epoch > 0)
            self._set_modes(cut)
            train.set_epoch(epoch)
            if train_cache is not None:
                batches = train_cache.batches(cfg.batch_size, generator)
            else:
                batches = iter(torch.utils.data.DataLoader(train, batch_size=cfg.batch_size, shuffle=True,
                                                           generator=generator, num_workers=cfg.num_workers))
            losses = []
            bar = tqdm(batches, total=steps_per_epoch, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                       disable=not cfg.progress, unit="batch")
            for x, y in bar:
                x, y = x.to(self.device), y.to(self.device)
                if train_cache is not None:
                    logits = self.staged.suffix(x, cut)
                else:
                    logits = self.staged.forward(x, cut)
                loss = self.loss_fn(logits, y)
                check_finite(loss, epoch + 1)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(self._trainable(), cfg.grad_clip)
                self.optimizer.step()
                schedule.step()
                losses.append(loss.item())
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
            val_pred, val_true = self.predict(val, cache=val_cache)
            val_acc = float((val_pred == val_true).mean())
            trainable = sum(p.numel() for p in self._trainable())
            history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_accuracy": val_acc,
                            "trainable_params": trainable})
            epochs.set_postfix(loss=f"{np.mean(losses):.3f}", val_acc=f"{val_acc:.3f}")
            if val_acc > best_acc:
                best_acc, best_epoch, best_state = val_acc, epoch + 1, self._snapshot()
        seconds = time.perf_counter() - start
        if best_state is not None:  # stages unfrozen after the best epoch go back to their frozen values
            restore = {n: v for n, v in self.frozen_values.items() if n not in best_state}
            self.model.load_state_dict({**restore, **best_state}, strict=False)
        if isinstance(self.model.classifier, StandardizedHead):
            self.model.classifier = self.model.classifier.folded()
        self.model.eval()
        return TrainResult(best_epoch, best_acc, history, seconds,
                           trainable_params=sum(p.numel() for p in self._trainable()),
                           total_params=sum(p.numel() for p in self.model.parameters()))

    def _standardize_head(self, train: PatchDataset, cache: FeatureCache | None, cut: int | None) -> None:
        """Wrap the classifier in a StandardizedHead; statistics from the cache or one frozen pass."""
        if cache is not None:
            batches, at = cache.batches(self.cfg.batch_size), cut
        else:
            batches = torch.utils.data.DataLoader(train, batch_size=self.cfg.batch_size, shuffle=False,
                                                  num_workers=self.cfg.num_workers)
            at = 0  # pixels: the whole backbone runs once, without autograd
        was_training = self.model.training
        self.model.eval()
        mean, std = head_input_statistics(self.staged, batches, at, self.device)
        std = torch.full_like(std, float(std.pow(2).mean().sqrt()))  # one scale: see StandardizedHead
        self.model.train(was_training)
        self.model.classifier = StandardizedHead(self.model.classifier, mean, std)

    @torch.no_grad()
    def predict(self, dataset: PatchDataset, cache: FeatureCache | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Predicted and true labels; reuses a prefix cache when the cut allows it."""
        was_training = self.model.training
        self.model.eval()
        preds, trues = [], []
        if cache is not None:
            batches = cache.batches(self.cfg.batch_size)
            cut = self.cache_cut
        else:
            batches = torch.utils.data.DataLoader(dataset, batch_size=self.cfg.batch_size, shuffle=False,
                                                  num_workers=self.cfg.num_workers)
            cut = 0
        for x, y in batches:
            x = x.to(self.device)
            logits = self.staged.suffix(x, cut) if cache is not None else self.model(pixel_values=x).logits
            preds.append(logits.argmax(-1).cpu().numpy())
            trues.append(y.numpy())
        self.model.train(was_training)
        return np.concatenate(preds), np.concatenate(trues)

    def predict_test(self, test: PatchDataset) -> tuple[np.ndarray, np.ndarray]:
        if self.cache_cut is not None:
            cache = FeatureCache(self.staged, self.cache_cut, test, self.cfg, self.device, "caching test features")
            return self.predict(test, cache=cache)
        return self.predict(test)
