"""VAN-B0 (Visual Attention Network, Guo et al.), written from the architecture facts
in shared/models/van.md. The paper's Table 4 puts it beside EfficientMod-xxs as a
modulation ancestor: its large-kernel attention (a 5x5 depth-wise conv, then a
dilated 7x7 one, then a 1x1) modulates the projected input. Random init.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .registry import OTHER_TABLES, file_digest, load_checkpoint, register_model


@dataclass(frozen=True)
class VANConfig:
    dims: tuple[int, int, int, int]
    depths: tuple[int, int, int, int]
    mlp_ratios: tuple[int, int, int, int]


CONFIGS = {"b0": VANConfig((32, 64, 160, 256), (3, 3, 5, 2), (8, 8, 4, 4))}
# Paper facts (Table 4 row 1): paper_other.tsv.


class PatchEmbed(nn.Module):
    """Overlapping patch embedding: conv (stride 4 with 7x7, else 3x3 stride 2), BatchNorm."""

    def __init__(self, cin: int, cout: int, k: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, k, stride, k // 2)
        self.norm = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


class LargeKernelAttention(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv0 = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.conv_spatial = nn.Conv2d(dim, dim, 7, padding=9, groups=dim, dilation=3)
        self.conv1 = nn.Conv2d(dim, dim, 1)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return v * self.conv1(self.conv_spatial(self.conv0(v)))


class SpatialAttention(nn.Module):
    """proj2(LKA(GELU(proj1(u)))) + u: the attention carries its own shortcut."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj1 = nn.Conv2d(dim, dim, 1)
        self.lka = LargeKernelAttention(dim)
        self.proj2 = nn.Conv2d(dim, dim, 1)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.proj2(self.lka(F.gelu(self.proj1(u)))) + u


class ConvMlp(nn.Module):
    def __init__(self, dim: int, ratio: int):
        super().__init__()
        hidden = dim * ratio
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.dwconv(self.fc1(x))))


class VANBlock(nn.Module):
    def __init__(self, dim: int, mlp_ratio: int, layer_scale: float = 1e-2):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = SpatialAttention(dim)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, mlp_ratio)
        self.ls1 = nn.Parameter(torch.full((dim, 1, 1), layer_scale))
        self.ls2 = nn.Parameter(torch.full((dim, 1, 1), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1 * self.attn(self.norm1(x))
        return x + self.ls2 * self.mlp(self.norm2(x))


class VAN(nn.Module):
    def __init__(self, cfg: VANConfig, num_classes: int = 1000):
        super().__init__()
        cins = (3,) + cfg.dims[:3]
        self.patch_embeds = nn.ModuleList(
            PatchEmbed(cins[i], cfg.dims[i], 7 if i == 0 else 3, 4 if i == 0 else 2) for i in range(4))
        self.stages = nn.ModuleList(
            nn.Sequential(*(VANBlock(cfg.dims[i], cfg.mlp_ratios[i]) for _ in range(cfg.depths[i])))
            for i in range(4))
        self.norms = nn.ModuleList(nn.LayerNorm(d, eps=1e-6) for d in cfg.dims)
        self.head = nn.Linear(cfg.dims[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(4):
            x = self.stages[i](self.patch_embeds[i](x))
            b, c, h, w = x.shape
            t = self.norms[i](x.flatten(2).transpose(1, 2))
            if i < 3:
                x = t.transpose(1, 2).reshape(b, c, h, w)
        return self.head(t.mean(dim=1))


@register_model("van_b0", family="van", paper=OTHER_TABLES, source_id="modbench:van@" + file_digest(Path(__file__)),
                suites=("table4",), tags=("conv", "modulation"))
def van_b0(variant: str = "default", resolution: int = 224, checkpoint=None) -> VAN:
    model = VAN(CONFIGS["b0"])
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model
