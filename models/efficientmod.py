"""EfficientMod (Ma et al., ICLR 2024), written from the paper and the facts of the
released checkpoints (shared/efficientmod/ARCHITECTURE.md).

Module names follow the released state dict exactly, so a released checkpoint
loads with ``strict=True``. Tensors stay channels-last (B, H, W, C) inside the
stages, as in the released model: the permutes around every convolution are part
of what the paper times, and removing them is a separate (mobile) variant.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .registry import (APPENDIX_L, OTHER_TABLES, TABLE1, add_to_suite, file_digest, load_checkpoint,
                       register_model)

INTERACTIONS = ("repeat", "reshape")


@dataclass(frozen=True)
class EfficientModConfig:
    dims: tuple[int, int, int, int]
    mod_blocks: tuple[int, int, int, int]
    attn_blocks: tuple[int, int, int, int]
    expansion: int
    # MLP ratio of the attention blocks, per stage.
    attn_mlp_ratios: tuple[int, int, int, int] = (4, 4, 4, 4)
    # Depth-wise kernels of the context branch, applied in sequence (each + GELU).
    # The released models use one 7x7; App. L compares FocalNet-like stacks.
    kernel_sizes: tuple[int, ...] = (7,)
    attn_heads: int = 8
    num_classes: int = 1000
    extra: dict = field(default_factory=dict)


CONFIGS: dict[str, EfficientModConfig] = {
    "xxs": EfficientModConfig((32, 64, 128, 256), (2, 2, 6, 2), (0, 0, 1, 2), 6),
    "xs": EfficientModConfig((32, 64, 144, 288), (3, 3, 4, 2), (0, 0, 3, 3), 4),
    "s": EfficientModConfig((32, 64, 144, 312), (4, 4, 8, 4), (0, 0, 4, 4), 6,
                            attn_mlp_ratios=(4, 4, 4, 5)),
    "s_conv": EfficientModConfig((40, 80, 160, 344), (4, 4, 12, 8), (0, 0, 0, 0), 6),
}


class ContextLayer(nn.Module):
    """ctx(x) = g(GELU(DWConv_k(f(x)))), on channels-last input."""

    def __init__(self, dim: int, kernel_sizes: tuple[int, ...]):
        super().__init__()
        self.f = nn.Linear(dim, dim)
        self.g = nn.Linear(dim, dim)
        # A list because the released model keeps one entry per context scale.
        self.context_list = nn.ModuleList(
            nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim) for k in kernel_sizes
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.f(x).permute(0, 3, 1, 2)
        for conv in self.context_list:
            x = F.gelu(conv(x))
        return self.g(x.permute(0, 2, 3, 1))


def interact(v: torch.Tensor, ctx: torch.Tensor, r: int, interaction: str,
             channel_dim: int) -> torch.Tensor:
    """v * tile(ctx, r) along the channel axis, as Repeat (a tiled copy of the
    context) or Reshape (v viewed as (r, C), the context broadcast over r).

    Element j of v meets context channel j mod C either way, so the two give
    bitwise-equal outputs; only their speed differs (paper Fig. 2)."""
    if r == 1:
        return v * ctx
    d = channel_dim % ctx.dim()
    if interaction == "repeat":
        reps = [1] * ctx.dim()
        reps[d] = r
        return v * ctx.repeat(*reps)
    split = list(ctx.shape[:d]) + [r, ctx.shape[d]] + list(ctx.shape[d + 1:])
    return (v.reshape(split) * ctx.unsqueeze(d)).reshape(v.shape)


class ModulationMLP(nn.Module):
    """fc2(a(fc1(x)) * tile(ctx(x), r)): the MLP fused with the modulation."""

    def __init__(self, dim: int, expansion: int, kernel_sizes: tuple[int, ...], interaction: str):
        super().__init__()
        if interaction not in INTERACTIONS:
            raise ValueError(f"interaction must be one of {INTERACTIONS}, not {interaction!r}")
        self.expansion = expansion
        self.interaction = interaction
        self.fc1 = nn.Linear(dim, dim * expansion)
        self.context_layer = ContextLayer(dim, kernel_sizes)
        self.fc2 = nn.Linear(dim * expansion, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.fc1(x)
        if self.expansion > 1:
            v = F.gelu(v)
        return self.fc2(interact(v, self.context_layer(x), self.expansion, self.interaction, -1))


class EfficientModBlock(nn.Module):
    def __init__(self, dim: int, expansion: int, kernel_sizes: tuple[int, ...], interaction: str):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mlp = ModulationMLP(dim, expansion, kernel_sizes, interaction)
        self.gamma_1 = nn.Parameter(torch.full((dim,), 1e-4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gamma_1 * self.mlp(self.norm(x))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.head_dim = max(dim // heads, 32)
        inner = heads * self.head_dim
        self.qkv = nn.Linear(dim, 3 * inner, bias=False)
        self.proj = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, self.heads * self.head_dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, ratio: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, dim * ratio)
        self.fc2 = nn.Linear(dim * ratio, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class AttentionBlock(nn.Module):
    """Vanilla pre-norm ViT block over the H*W tokens of a stage (no layer scale)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        t = x.reshape(b, h * w, c)
        t = t + self.attn(self.norm1(t))
        t = t + self.mlp(self.norm2(t))
        return t.reshape(b, h, w, c)


class ConvNorm(nn.Module):
    """Convolution on NCHW, then LayerNorm over channels; returns channels-last."""

    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(cin, cout, kernel_size, stride, padding=kernel_size // 2)
        self.norm = nn.LayerNorm(cout)

    def forward(self, x_nchw: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x_nchw).permute(0, 2, 3, 1))


class Stage(nn.Module):
    def __init__(self, dim: int, n_mod: int, n_attn: int, expansion: int, kernel_sizes: tuple[int, ...],
                 heads: int, attn_mlp_ratio: int, next_dim: int | None, interaction: str):
        super().__init__()
        # The ratio alternates 1, r, 1, r, ... inside every stage.
        mods = [EfficientModBlock(dim, 1 if i % 2 == 0 else expansion, kernel_sizes, interaction)
                for i in range(n_mod)]
        attns = [AttentionBlock(dim, heads, attn_mlp_ratio) for _ in range(n_attn)]
        self.blocks = nn.Sequential(*mods, *attns)
        self.downsample = ConvNorm(dim, next_dim, 3, 2) if next_dim is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(x)
        if self.downsample is not None:
            x = self.downsample(x.permute(0, 3, 1, 2))
        return x


class EfficientMod(nn.Module):
    def __init__(self, cfg: EfficientModConfig, interaction: str = "repeat",
                 num_classes: int | None = None):
        super().__init__()
        self.cfg = cfg
        self.interaction = interaction
        d = cfg.dims
        self.patch_embed = ConvNorm(3, d[0], 7, 4)
        self.layers = nn.ModuleList(
            Stage(d[i], cfg.mod_blocks[i], cfg.attn_blocks[i], cfg.expansion, cfg.kernel_sizes,
                  cfg.attn_heads, cfg.attn_mlp_ratios[i], d[i + 1] if i < 3 else None,
                  interaction)
            for i in range(4)
        )
        self.norm = nn.LayerNorm(d[3])
        self.head = nn.Linear(d[3], num_classes or cfg.num_classes)
        self.apply(_init_weights)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for stage in self.layers:
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.forward_features(x))
        return self.head(x.mean(dim=(1, 2)))


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, (nn.Linear, nn.Conv2d)):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def efficientmod(size: str, interaction: str = "repeat", **kwargs) -> EfficientMod:
    if size not in CONFIGS:
        raise ValueError(f"unknown EfficientMod size {size!r}; known: {', '.join(CONFIGS)}")
    return EfficientMod(CONFIGS[size], interaction=interaction, **kwargs)


# --- registry entries -------------------------------------------------------------
# Paper facts: Table 1 (xxs, xs, s), paper_other.tsv (s-Conv: Table 2 accuracy and
# size, Table 6's hier. EfficientMod 12.9M latency), App. L (kernel stacks).
SOURCE_ID = "modbench:efficientmod@" + file_digest(Path(__file__))


def _build(cfg: EfficientModConfig, variant: str, checkpoint) -> EfficientMod:
    model = EfficientMod(cfg, interaction=variant)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model


def _s_conv_kernels(*kernel_sizes: int) -> EfficientModConfig:
    """EfficientMod-s-Conv with a stack of depth-wise kernels in the context branch
    instead of one 7x7 (App. L). The paper gives no code for it; the stack is applied
    in sequence like the released single kernel (its parameter counts, 12.7M for
    [3, 3] to 13.1M for [3, 5, 7], leave no room for gates)."""
    return replace(CONFIGS["s_conv"], kernel_sizes=kernel_sizes)


@register_model("efficientmod_xxs", family="efficientmod", paper=TABLE1, source_id=SOURCE_ID,
                variants=INTERACTIONS, suites=("efficientmod", "table1"), tags=("hybrid",))
def efficientmod_xxs(variant: str = "repeat", resolution: int = 224, checkpoint=None) -> EfficientMod:
    return _build(CONFIGS["xxs"], variant, checkpoint)


@register_model("efficientmod_xs", family="efficientmod", paper=TABLE1, source_id=SOURCE_ID,
                variants=INTERACTIONS, suites=("efficientmod", "table1"), tags=("hybrid",))
def efficientmod_xs(variant: str = "repeat", resolution: int = 224, checkpoint=None) -> EfficientMod:
    return _build(CONFIGS["xs"], variant, checkpoint)


@register_model("efficientmod_s", family="efficientmod", paper=TABLE1, source_id=SOURCE_ID,
                variants=INTERACTIONS, suites=("efficientmod", "table1"), tags=("hybrid",))
def efficientmod_s(variant: str = "repeat", resolution: int = 224, checkpoint=None) -> EfficientMod:
    return _build(CONFIGS["s"], variant, checkpoint)


@register_model("efficientmod_s_conv", family="efficientmod", paper=OTHER_TABLES, source_id=SOURCE_ID,
                variants=INTERACTIONS, suites=("efficientmod", "appendix_l"), tags=("conv",))
def efficientmod_s_conv(variant: str = "repeat", resolution: int = 224, checkpoint=None) -> EfficientMod:
    return _build(CONFIGS["s_conv"], variant, checkpoint)


@register_model("efficientmod_s_conv_k3_3", family="efficientmod", paper=APPENDIX_L, source_id=SOURCE_ID,
                variants=INTERACTIONS, suites=("appendix_l",), tags=("ablation", "conv"))
def efficientmod_s_conv_k3_3(variant: str = "repeat", resolution: int = 224, checkpoint=None) -> EfficientMod:
    return _build(_s_conv_kernels(3, 3), variant, checkpoint)


@register_model("efficientmod_s_conv_k3_5", family="efficientmod", paper=APPENDIX_L, source_id=SOURCE_ID,
                variants=INTERACTIONS, suites=("appendix_l",), tags=("ablation", "conv"))
def efficientmod_s_conv_k3_5(variant: str = "repeat", resolution: int = 224, checkpoint=None) -> EfficientMod:
    return _build(_s_conv_kernels(3, 5), variant, checkpoint)


@register_model("efficientmod_s_conv_k3_7", family="efficientmod", paper=APPENDIX_L, source_id=SOURCE_ID,
                variants=INTERACTIONS, suites=("appendix_l",), tags=("ablation", "conv"))
def efficientmod_s_conv_k3_7(variant: str = "repeat", resolution: int = 224, checkpoint=None) -> EfficientMod:
    return _build(_s_conv_kernels(3, 7), variant, checkpoint)


@register_model("efficientmod_s_conv_k5_5", family="efficientmod", paper=APPENDIX_L, source_id=SOURCE_ID,
                variants=INTERACTIONS, suites=("appendix_l",), tags=("ablation", "conv"))
def efficientmod_s_conv_k5_5(variant: str = "repeat", resolution: int = 224, checkpoint=None) -> EfficientMod:
    return _build(_s_conv_kernels(5, 5), variant, checkpoint)


@register_model("efficientmod_s_conv_k5_7", family="efficientmod", paper=APPENDIX_L, source_id=SOURCE_ID,
                variants=INTERACTIONS, suites=("appendix_l",), tags=("ablation", "conv"))
def efficientmod_s_conv_k5_7(variant: str = "repeat", resolution: int = 224, checkpoint=None) -> EfficientMod:
    return _build(_s_conv_kernels(5, 7), variant, checkpoint)


@register_model("efficientmod_s_conv_k3_5_7", family="efficientmod", paper=APPENDIX_L, source_id=SOURCE_ID,
                variants=INTERACTIONS, suites=("appendix_l",), tags=("ablation", "conv"))
def efficientmod_s_conv_k3_5_7(variant: str = "repeat", resolution: int = 224, checkpoint=None) -> EfficientMod:
    return _build(_s_conv_kernels(3, 5, 7), variant, checkpoint)


# Later tables that put these beside their peers: Table 4 (modulation models),
# Table 6 (hier. EfficientMod 12.9M is s-Conv).
add_to_suite("efficientmod_xxs", "table4")
add_to_suite("efficientmod_s_conv", "table6")
