"""A ViT classifier seen as a chain of stages, so a frozen prefix can run without autograd or be cached.

Stages are [embeddings, block 0, ..., block L-1, final norm]; the head always trains. A `cut` c means
stages 0..c-1 are frozen. cut == L + 2 (everything frozen) leaves only the CLS feature for the head.
"""

from __future__ import annotations

import torch
from torch import nn


class StagedViT:
    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.vit = model.vit
        self.blocks = list(self.vit.encoder.layer)
        self.num_blocks = len(self.blocks)

    @property
    def num_stages(self) -> int:
        return self.num_blocks + 2

    @property
    def head_only(self) -> int:
        """The cut at which only the classifier head trains."""
        return self.num_stages

    def stage_modules(self, stage: int) -> nn.Module:
        if stage == 0:
            return self.vit.embeddings
        if stage <= self.num_blocks:
            return self.blocks[stage - 1]
        return self.vit.layernorm

    def _run(self, h: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        for stage in range(start, stop):
            if stage == 0:
                h = self.vit.embeddings(h)
            elif stage <= self.num_blocks:
                out = self.blocks[stage - 1](h)
                h = out[0] if isinstance(out, tuple) else out
            else:
                h = self.vit.layernorm(h)
        return h

    def prefix(self, pixels: torch.Tensor, cut: int) -> torch.Tensor:
        """Output of the frozen stages; only the CLS token once everything is frozen."""
        h = self._run(pixels, 0, cut)
        return h[:, 0] if cut >= self.num_stages else h

    def head_input(self, h: torch.Tensor, cut: int) -> torch.Tensor:
        """The CLS feature the classifier sees, from a prefix output."""
        return self._run(h, cut, self.num_stages)[:, 0] if cut < self.num_stages else h

    def suffix(self, h: torch.Tensor, cut: int) -> torch.Tensor:
        """Logits from a prefix output."""
        return self.model.classifier(self.head_input(h, cut))

    def forward(self, pixels: torch.Tensor, cut: int) -> torch.Tensor:
        """Frozen prefix without autograd (no gradients, no backward compute), trainable suffix with it."""
        with torch.no_grad():
            h = self.prefix(pixels, cut)
        return self.suffix(h, cut)
