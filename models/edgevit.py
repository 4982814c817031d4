"""EdgeViT-XXS/XS/S (Pan et al., ECCV 2022), written from the architecture facts in
shared/models/edgevit.md. No weights were ever released: random init (latency
does not depend on the values).

Every block is local-global-local (LGL): a local aggregation (stages 1-3), then
global attention among one delegate token per r x r window, propagated back by
a depth-wise transposed convolution. The image size is fixed at construction, as
in the reference (its patch embedding checks it); it must be a multiple of 32 so
every stage divides by its sample ratio.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .registry import TABLE1, ModelError, add_to_suite, file_digest, load_checkpoint, register_model


@dataclass(frozen=True)
class EdgeViTConfig:
    depths: tuple[int, int, int, int]
    dims: tuple[int, int, int, int]
    head_dim: int
    mlp_ratio: int = 4
    sample_ratios: tuple[int, int, int, int] = (4, 2, 2, 1)


CONFIGS = {
    "xxs": EdgeViTConfig((1, 1, 3, 2), (36, 72, 144, 288), 36),
    "xs": EdgeViTConfig((1, 1, 3, 1), (48, 96, 240, 384), 48),
    "s": EdgeViTConfig((1, 2, 5, 3), (48, 96, 240, 384), 48),
}


class PatchEmbed(nn.Module):
    """Conv with kernel = stride = patch, then LayerNorm over channels (NCHW in and out)."""

    def __init__(self, cin: int, cout: int, patch: int):
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, patch, patch)
        self.norm = nn.LayerNorm(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvMlp(nn.Module):
    def __init__(self, dim: int, ratio: int):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, dim * ratio, 1)
        self.fc2 = nn.Conv2d(dim * ratio, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class TokenMlp(nn.Module):
    def __init__(self, dim: int, ratio: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, dim * ratio)
        self.fc2 = nn.Linear(dim * ratio, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class LocalAggregation(nn.Module):
    """Position encoding, then PW -> DW5x5 -> PW (no activation between), then a conv MLP."""

    def __init__(self, dim: int, mlp_ratio: int):
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.BatchNorm2d(dim)
        self.conv1 = nn.Conv2d(dim, dim, 1)
        self.dwconv = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.conv2 = nn.Conv2d(dim, dim, 1)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        x = x + self.conv2(self.dwconv(self.conv1(self.norm1(x))))
        return x + self.mlp(self.norm2(x))


class GlobalSparseAttention(nn.Module):
    """Attention among delegates (the top-left token of each r x r window), spread
    back to every position by a depth-wise transposed convolution."""

    def __init__(self, dim: int, heads: int, r: int):
        super().__init__()
        self.heads, self.r = heads, r
        self.qkv = nn.Linear(dim, 3 * dim)
        if r > 1:
            # kernel 1, stride r: a strided pick of one token, as the reference does it
            self.sampler = nn.AvgPool2d(1, r)
            self.local_prop = nn.ConvTranspose2d(dim, dim, r, stride=r, groups=dim)
            self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, _, c = x.shape
        if self.r > 1:
            x = self.sampler(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
        n = x.shape[1]
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]).transpose(1, 2).reshape(b, n, c)
        if self.r > 1:
            x = x.transpose(1, 2).reshape(b, c, h // self.r, w // self.r)
            x = self.norm(self.local_prop(x).flatten(2).transpose(1, 2))
        return self.proj(x)


class GlobalBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int, r: int):
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = GlobalSparseAttention(dim, heads, r)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = TokenMlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)
        t = t + self.attn(self.norm1(t), h, w)
        t = t + self.mlp(self.norm2(t))
        return t.transpose(1, 2).reshape(b, c, h, w)


class LGLBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int, r: int):
        super().__init__()
        # The last stage (r = 1) attends over all tokens and has no local aggregation.
        self.local_agg = LocalAggregation(dim, mlp_ratio) if r > 1 else nn.Identity()
        self.global_block = GlobalBlock(dim, heads, mlp_ratio, r)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.global_block(self.local_agg(x))


class EdgeViT(nn.Module):
    def __init__(self, cfg: EdgeViTConfig, img_size: int = 224, num_classes: int = 1000):
        super().__init__()
        if img_size % 32:
            raise ModelError(f"EdgeViT needs an image size that is a multiple of 32, not {img_size}")
        self.img_size = img_size
        cins = (3,) + cfg.dims[:3]
        self.patch_embeds = nn.ModuleList(
            PatchEmbed(cins[i], cfg.dims[i], 4 if i == 0 else 2) for i in range(4))
        self.stages = nn.ModuleList(
            nn.Sequential(*(LGLBlock(cfg.dims[i], cfg.dims[i] // cfg.head_dim, cfg.mlp_ratio,
                                     cfg.sample_ratios[i]) for _ in range(cfg.depths[i])))
            for i in range(4))
        self.norm = nn.BatchNorm2d(cfg.dims[3])
        self.head = nn.Linear(cfg.dims[3], num_classes)
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for embed, stage in zip(self.patch_embeds, self.stages):
            x = stage(embed(x))
        return self.head(self.norm(x).flatten(2).mean(-1))


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def edgevit(size: str, img_size: int = 224) -> EdgeViT:
    return EdgeViT(CONFIGS[size], img_size=img_size)


SOURCE_ID = "modbench:edgevit@" + file_digest(Path(__file__))


def _build(size: str, resolution: int, checkpoint) -> EdgeViT:
    model = edgevit(size, img_size=resolution)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model


@register_model("edgevit_xxs", family="edgevit", paper=TABLE1, source_id=SOURCE_ID, suites=("table1",),
                tags=("hybrid",))
def edgevit_xxs(variant: str = "default", resolution: int = 224, checkpoint=None) -> EdgeViT:
    return _build("xxs", resolution, checkpoint)


@register_model("edgevit_xs", family="edgevit", paper=TABLE1, source_id=SOURCE_ID, suites=("table1",),
                tags=("hybrid",))
def edgevit_xs(variant: str = "default", resolution: int = 224, checkpoint=None) -> EdgeViT:
    return _build("xs", resolution, checkpoint)


@register_model("edgevit_s", family="edgevit", paper=TABLE1, source_id=SOURCE_ID, suites=("table1",),
                tags=("hybrid",))
def edgevit_s(variant: str = "default", resolution: int = 224, checkpoint=None) -> EdgeViT:
    return _build("s", resolution, checkpoint)


add_to_suite("edgevit_xxs", "table12")
