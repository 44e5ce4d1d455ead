"""DINO's schedules as pure functions of the step or epoch: learning rate, weight decay, teacher momentum
and temperature.

Like `strategies.make_plan`, nothing here touches a model, so each schedule is tested on its own and a
resumed run (on any number of ranks) continues exactly where the schedule left off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class DinoSchedule:
    """The run's schedules. `batch_size` is the global batch: the peak LR scales per 256 images of it."""

    epochs: int
    steps_per_epoch: int
    batch_size: int
    lr: float = 5e-4  # per 256 images
    min_lr: float = 1e-6
    warmup_epochs: int = 10
    momentum: float = 0.996  # teacher EMA momentum at step 0, cosine to 1
    teacher_temp_start: float = 0.04  # at epoch 0
    teacher_temp_final: float = 0.07  # after the warm-up
    teacher_temp_warmup_epochs: int = 30
    weight_decay: float = 0.04  # at step 0, cosine to weight_decay_end (the paper's 0.04 -> 0.4)
    weight_decay_end: float = 0.4

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def peak_lr(self) -> float:
        return self.lr * self.batch_size / 256

    def learning_rate(self, step: int) -> float:
        """Linear warm-up to the peak, then cosine decay to `min_lr` at the last step."""
        warmup = min(self.warmup_epochs, max(self.epochs - 1, 0)) * self.steps_per_epoch
        if step < warmup:
            return self.peak_lr * (step + 1) / warmup
        progress = (step - warmup) / max(self.total_steps - warmup, 1)
        return self.min_lr + 0.5 * (self.peak_lr - self.min_lr) * (1 + math.cos(math.pi * progress))

    def teacher_momentum(self, step: int) -> float:
        """Cosine from `momentum` at step 0 to 1 at the last step (lightly's cosine_schedule)."""
        if self.total_steps <= 1:
            return 1.0
        progress = min(step, self.total_steps - 1) / (self.total_steps - 1)
        return 1.0 - (1.0 - self.momentum) * (math.cos(math.pi * progress) + 1) / 2

    def teacher_temperature(self, epoch: int) -> float:
        """Linear warm-up from the start to the final temperature over the first third of the run at most."""
        warm = min(self.teacher_temp_warmup_epochs, max(self.epochs // 3, 1))
        if epoch >= warm:
            return self.teacher_temp_final
        return self.teacher_temp_start + (self.teacher_temp_final - self.teacher_temp_start) * epoch / warm

    def weight_decay_at(self, step: int) -> float:
        """Cosine from `weight_decay` at step 0 to `weight_decay_end` at the last step (DINO's schedule)."""
        if self.total_steps <= 1:
            return self.weight_decay_end
        progress = min(step, self.total_steps - 1) / (self.total_steps - 1)
        cosine = (math.cos(math.pi * progress) + 1) / 2
        return self.weight_decay_end + (self.weight_decay - self.weight_decay_end) * cosine
