"""A sample-level model rewritten for inference: folded convs as Conv2d (1 x k) in channels-last layout.

oneDNN runs 2-D convolutions on channels-last tensors without reordering activations before and after
every layer (its 1-D path reorders (B, C, T) to a blocked layout and back each call), and TorchScript
freezing can then fuse conv + ReLU and prepack weights. ReLU is applied after max-pooling (they commute:
ReLU is monotonic), so it touches a third of the values. The first conv (one input channel, stride =
filter) is a plain matrix product over non-overlapping frames, far cheaper than a 1-channel conv.

Built from a batch-norm-folded copy (fold.py) and equal to the model's forward to float rounding.
Output: (logits, hidden -3, hidden -2, hidden -1), hidden as (B, C, T).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from samplecnn_cli.models.base import ConvModule


def supports_plan(model: nn.Module) -> bool:
    """Only plain sample-level models (a strided first conv, then ConvModules, the standard head)."""
    from samplecnn_cli.models.sample_level import SampleCNN

    if type(model) is not SampleCNN:
        return False
    front = list(model.front)
    return (isinstance(front[0], nn.Conv1d) and front[0].in_channels == 1
            and front[0].stride[0] == front[0].kernel_size[0] and front[0].padding == (0,)
            and all(type(m) is ConvModule for m in model.modules_))


class _Module(nn.Module):
    def __init__(self, module: ConvModule):
        super().__init__()
        conv = module.conv
        k = conv.kernel_size[0]
        # "same" padding as ConvModule: odd filters pad k//2 both sides (inside the conv, no copy);
        # even ones one more on the right (an explicit pad)
        self.pad = None if k % 2 else ((k - 1) // 2, k // 2)
        self.conv = nn.Conv2d(conv.in_channels, conv.out_channels, (1, k), padding=(0, k // 2) if k % 2 else 0)
        with torch.no_grad():
            self.conv.weight.copy_(conv.weight.unsqueeze(2))
            self.conv.bias.copy_(conv.bias)
        self.pool = module.pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = F.pad(x, (self.pad[0], self.pad[1], 0, 0))
        y = self.conv(x)  # (B, C, 1, T), channels-last: memory is (B, T, C)
        channels, length = y.shape[1], y.shape[3] // self.pool * self.pool
        # max-pool as a max over a (T/p, p, C) view of that memory: no index tensor, one pass
        rows = y.permute(0, 2, 3, 1)[:, 0, :length].reshape(-1, length // self.pool, self.pool, channels)
        pooled = rows.amax(dim=2).relu_()  # (B, T/p, C)
        return pooled.unsqueeze(1).permute(0, 3, 1, 2)  # back to (B, C, 1, T/p), channels-last


class SamplePlan(nn.Module):
    def __init__(self, folded: nn.Module):
        super().__init__()
        first = folded.front[0]
        self.frame = first.kernel_size[0]
        self.front_weight = nn.Parameter(first.weight.detach().reshape(first.out_channels, self.frame).t().contiguous(),
                                         requires_grad=False)
        self.front_bias = nn.Parameter(first.bias.detach().clone(), requires_grad=False)
        self.blocks = nn.ModuleList(_Module(m) for m in folded.modules_)
        last = folded.conv_last[0]
        self.last = nn.Conv2d(last.in_channels, last.out_channels, 1)
        with torch.no_grad():
            self.last.weight.copy_(last.weight.unsqueeze(2))
            self.last.bias.copy_(last.bias)
        self.classifier = folded.classifier
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor):
        batch = x.shape[0]
        frames = x.reshape(batch, -1, self.frame)  # (B, T, k): non-overlapping frames
        h = torch.addmm(self.front_bias, frames.reshape(-1, self.frame), self.front_weight)
        h = h.view(batch, -1, h.shape[-1]).relu_()  # (B, T, C)
        h = h.transpose(1, 2).unsqueeze(2)  # (B, C, 1, T) with channels-last strides, no copy
        outputs = [h]
        for block in self.blocks:
            h = block(h)
            outputs.append(h)
        h = F.relu(self.last(h))
        outputs.append(h)
        embedding = h.mean(dim=(2, 3))
        logits = self.classifier(embedding)
        return logits, outputs[-3].squeeze(2), outputs[-2].squeeze(2), outputs[-1].squeeze(2)
