"""One DINO run's state and its steps: build, resume, train step, save. Works on one rank or many.

Under DDP only the student is wrapped: its gradients are averaged over the ranks. The teacher is never
wrapped and never trains; it starts as rank 0's copy (broadcast once, since the backbone was deep-copied
before any wrapping) and follows the *unwrapped* student's weights by EMA after every optimizer step, so
it stays identical on every rank. lightly's centre update all-reduces the teacher outputs' batch mean.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from lut.toolkit.core.atomic import atomic_file
from lut.toolkit.train.distributed import broadcast_module
from .dino_schedule import DinoSchedule
from lut.toolkit.core.errors import FormatError
from lut.toolkit.train.steps import check_finite

CHECKPOINT = "checkpoint.pt"


class DinoNetwork(nn.Module):
    """Backbone CLS embedding -> projection head, batching the crops of one resolution together."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, views: list[torch.Tensor]) -> list[torch.Tensor]:
        outputs: list[torch.Tensor | None] = [None] * len(views)
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, v in enumerate(views):
            by_size.setdefault(tuple(v.shape[-2:]), []).append(i)
        for indices in by_size.values():
            x = torch.cat([views[i] for i in indices])
            z = self.head(self.backbone(pixel_values=x, interpolate_pos_encoding=True).last_hidden_state[:, 0])
            for i, chunk in zip(indices, z.chunk(len(indices))):
                outputs[i] = chunk
        return outputs  # type: ignore[return-value]


@dataclass
class DinoState:
    """What one DINO run trains and what a checkpoint restores; `student` is the unwrapped module."""

    student: DinoNetwork
    teacher: DinoNetwork
    criterion: nn.Module
    optimizer: torch.optim.Optimizer
    arch: dict
    epoch: int = 0
    step: int = 0
    history: list[dict] = field(default_factory=list)
    # the data each stretch of epochs was trained on: [{"from_epoch": 1, "sources": [...]}, ...]
    sources: list[dict] = field(default_factory=list)

    def use_sources(self, described: list[dict]) -> bool:
        """Record that the epochs from now on train on `described`; False when a resumed run's earlier
        epochs trained on other sources."""
        if self.sources and self.sources[-1]["sources"] == described:
            return True
        self.sources.append({"from_epoch": self.epoch + 1, "sources": described})
        return len(self.sources) == 1

    def checkpoint(self) -> dict:
        """Tensors, numbers, strings, lists and dicts only; independent of the number of ranks."""
        return {"architecture": self.arch, "epoch": self.epoch, "step": self.step, "history": self.history,
                "sources": self.sources,
                "student": self.student.state_dict(), "teacher": self.teacher.state_dict(),
                "optimizer": self.optimizer.state_dict(), "criterion": self.criterion.state_dict()}

    def restore(self, path: Path, device: torch.device) -> None:
        state = load_checkpoint(path, device)
        if state.get("architecture") != self.arch:
            raise FormatError(f"{path} was written for another architecture ({state.get('architecture')}); "
                           "pass the same `backbone`/`image_size`/head sizes or `overwrite=True` to restart")
        self.student.load_state_dict(state["student"])
        self.teacher.load_state_dict(state["teacher"])
        try:
            self.optimizer.load_state_dict(state["optimizer"])
        except ValueError as exc:  # one parameter group: written before weight decay spared norms and biases
            raise FormatError(f"{path} was written by an older lut (one optimizer group); pass `overwrite=True` to "
                           "restart the run") from exc
        self.criterion.load_state_dict(state["criterion"])
        self.epoch, self.step, self.history = int(state["epoch"]), int(state["step"]), list(state["history"])
        self.sources = list(state.get("sources", []))


@dataclass(frozen=True)
class HeadSizes:
    out_dim: int
    hidden: int
    bottleneck: int


NO_DECAY_NAMES = ("cls_token", "position_embeddings", "mask_token")


def weight_decay_groups(student: nn.Module) -> list[dict]:
    """AdamW groups: weight decay on weights only; none on norms and biases (lightly's
    get_weight_decay_parameters) nor on the position embeddings and CLS token."""
    from lightly.models.utils import get_weight_decay_parameters

    decay, no_decay = get_weight_decay_parameters([student])
    special = {id(p) for n, p in student.named_parameters() if n.rsplit(".", 1)[-1] in NO_DECAY_NAMES}
    no_decay = [p for p in no_decay if p.requires_grad] + [p for p in decay if id(p) in special and p.requires_grad]
    decay = [p for p in decay if id(p) not in special and p.requires_grad]
    return [{"params": decay, "name": "decay"}, {"params": no_decay, "name": "no_decay", "weight_decay": 0.0}]


def clip_per_parameter(params, max_norm: float) -> None:
    """The paper's clip_gradients: each parameter tensor's gradient scaled to norm <= max_norm on its own
    (torch's clip_grad_norm_, one tensor at a time)."""
    for p in params:
        if p.grad is not None:
            nn.utils.clip_grad_norm_(p, max_norm)


def build_state(backbone: nn.Module, head: HeadSizes, arch: dict, fabric) -> DinoState:
    """Student and teacher on this rank's device; the teacher is rank 0's, identical everywhere."""
    from lightly.loss import DINOLoss
    from lightly.models.modules import DINOProjectionHead
    from lightly.models.utils import deactivate_requires_grad

    hidden = backbone.config.hidden_size

    def new_head() -> nn.Module:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # lightly's head uses torch's older weight_norm
            return DINOProjectionHead(hidden, head.hidden, head.bottleneck, head.out_dim, freeze_last_layer=1)

    device = fabric.device
    student = DinoNetwork(backbone, new_head()).to(device)
    # weight-normed heads cannot be deep-copied: build the teacher's and copy the weights in
    teacher = DinoNetwork(copy.deepcopy(backbone), new_head()).to(device)
    teacher.head.load_state_dict(student.head.state_dict())
    deactivate_requires_grad(teacher)
    broadcast_module(fabric, teacher)
    criterion = DINOLoss(output_dim=head.out_dim).to(device)  # temperatures come from the schedule each step
    optimizer = torch.optim.AdamW(weight_decay_groups(student), lr=0.0, weight_decay=0.0)
    return DinoState(student, teacher, criterion, optimizer, arch)


def save_checkpoint(path: Path, state: DinoState) -> None:
    with atomic_file(path, overwrite=True) as tmp:
        torch.save(state.checkpoint(), tmp)


def load_checkpoint(path: Path, device: torch.device) -> dict:
    """weights_only=True: torch's restricted loader, which refuses any pickled object that could run code."""
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle, zip and torch errors alike
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FormatError(f"cannot read checkpoint {path}: it is damaged or holds more than tensors ({first[:120]}); "
                       "pass `overwrite=True` to restart the run") from exc
    if not isinstance(state, dict) or "architecture" not in state:
        raise FormatError(f"{path} is not a lut pretraining checkpoint; pass `overwrite=True` to restart the run")
    return state


def train_step(state: DinoState, student: nn.Module, views: list[torch.Tensor], schedule: DinoSchedule,
               fabric, grad_clip: float) -> float:
    """One optimizer step: the schedules' LR and weight decay; the student through its (DDP-)wrapped forward,
    the teacher under autocast without gradients, the loss in float32; per-parameter clipping; then the EMA
    from the unwrapped student. Returns the loss."""
    from lightly.models.utils import update_momentum

    epoch = state.epoch
    for group in state.optimizer.param_groups:
        group["lr"] = schedule.learning_rate(state.step)
        if group.get("name") == "decay":
            group["weight_decay"] = schedule.weight_decay_at(state.step)
    with torch.no_grad(), fabric.autocast():
        teacher_out = state.teacher(views[:2])
    student_out = student(views)
    loss = state.criterion([t.float() for t in teacher_out], [o.float() for o in student_out],
                           teacher_temp=schedule.teacher_temperature(epoch))
    check_finite(fabric, loss, epoch + 1)
    state.optimizer.zero_grad(set_to_none=True)
    fabric.backward(loss)
    clip_per_parameter(state.student.parameters(), grad_clip)
    state.student.head.cancel_last_layer_gradients(current_epoch=epoch)
    state.optimizer.step()
    update_momentum(state.student, state.teacher, schedule.teacher_momentum(state.step))
    state.step += 1
    return loss.item()


def train_epoch(state: DinoState, student: nn.Module, loader, schedule: DinoSchedule, fabric, grad_clip: float,
                progress: bool) -> list[float]:
    state.student.train()
    losses: list[float] = []
    bar = tqdm(loader, desc=f"epoch {state.epoch + 1}/{schedule.epochs}", leave=False, disable=not progress,
               unit="batch")
    for views in bar:
        losses.append(train_step(state, student, [v.to(fabric.device) for v in views], schedule, fabric,
                                 grad_clip))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    return losses
