"""Batch norm folded into the preceding convolution, on a copy of the model, for inference only.

In eval mode BN is an affine map per channel, so conv -> BN equals one conv with scaled weights and a
shifted bias. Folding removes a full pass over every activation. The original model is never touched
(models/** is shared with training): we deep-copy it and replace each folded BN by an Identity, so
the copy keeps the module indices the model's own code relies on.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def fold_batch_norm(model: nn.Module) -> nn.Module:
    """An eval-mode deep copy of `model` with every Conv1d -> BatchNorm1d pair inside a Sequential fused."""
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names, names[1:], strict=False):
            conv, bn = module._modules[first], module._modules[second]
            if isinstance(conv, nn.Conv1d) and isinstance(bn, nn.BatchNorm1d) and bn.track_running_stats:
                module._modules[first] = fuse(conv, bn)
                module._modules[second] = nn.Identity()
    for p in folded.parameters():
        p.requires_grad_(False)
    return folded


@torch.no_grad()
def fuse(conv: nn.Conv1d, bn: nn.BatchNorm1d) -> nn.Conv1d:
    """A new Conv1d equal to bn(conv(x)) with BN in eval mode."""
    fused = copy.deepcopy(conv)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1.0 / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.weight.copy_(conv.weight * scale[:, None, None])
    if fused.bias is None:
        fused.bias = nn.Parameter(torch.zeros_like(bn.running_mean))
    fused.bias.copy_((bias - bn.running_mean) * scale + shift)
    return fused
