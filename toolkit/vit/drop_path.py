"""Stochastic depth (drop path) for Hugging Face ViT blocks, which have none of their own.

ViTConfig has no drop-path rate, so lut gives each block's instance a forward with the two residual
branches dropped per sample during training (timm's DropPath, rescaled by 1 / keep). The weights and the
module tree stay those of a plain ViT: bundles save, reload and export unchanged, and in eval mode the
forward is the original one exactly.
"""

from __future__ import annotations

import torch
from torch import nn

from lut.toolkit.core.errors import InputError


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    if rate <= 0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


def _block_forward(layer: nn.Module, rate: float):
    def forward(hidden_states: torch.Tensor, head_mask: torch.Tensor | None = None) -> torch.Tensor:
        attention = layer.attention(layer.layernorm_before(hidden_states), head_mask)
        attention = attention[0] if isinstance(attention, tuple) else attention
        hidden_states = drop_path(attention, rate, layer.training) + hidden_states
        branch = layer.output.dropout(layer.output.dense(layer.intermediate(layer.layernorm_after(hidden_states))))
        return drop_path(branch, rate, layer.training) + hidden_states

    return forward


def add_drop_path(model: nn.Module, max_rate: float) -> list[float]:
    """DeiT's linear rule: block i of L drops with probability max_rate * i / (L - 1). Returns the rates."""
    if not 0 <= max_rate < 1:
        raise InputError(f"`drop_path` must be in [0, 1), got {max_rate}")
    layers = model.vit.encoder.layer
    rates = [max_rate * i / max(len(layers) - 1, 1) for i in range(len(layers))]
    for layer, rate in zip(layers, rates):
        if rate > 0:
            layer.forward = _block_forward(layer, rate)
    return rates
