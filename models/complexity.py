"""Parameters and multiply-accumulates counted from a built model.

The paper's "FLOPs" column is really MACs, so MACs = FLOPs / 2 from
torch.utils.flop_counter. Attention is counted with the math SDPA backend: the
fused CPU kernel is invisible to the flop counter and would count as zero.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, resolution: int, batch: int = 1) -> int:
    x = torch.zeros(batch, 3, resolution, resolution)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), counter:
        model(x)
    return counter.get_total_flops() // 2
