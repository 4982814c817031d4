"""The paper's MBConv-vs-EfficientMod ablations (Table 6, App. B, App. G / Fig. 9) and
App. L's separate-MLP block. None of these is in the released code; what the paper
does not say is assumed here and recorded on each entry (see ASSUMPTIONS).

Isotropic networks (App. B): a 14x14 patchify conv (16x16 tokens at 224), N
blocks of one kind at constant width, final LayerNorm, global average pool,
linear head. EfficientMod blocks use r = 6 with the released 7x7 context kernel;
MBConv (MobileNetV2 inverted residual) blocks use r = 7 with a 3x3 depth-wise
kernel: with these the counted params/MACs match App. B's 6.4M/1.6G and
12.5M/3.1G (shared/models/mbconv-vs-efficientmod-ablations.md).

Hierarchical MBConv (Table 6 row 7): EfficientMod-s-Conv with every EfficientMod
block replaced by an MBConv block; the paper gives neither ratio nor kernel, so
the closest configuration found is used and marked approximate.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .efficientmod import CONFIGS, INTERACTIONS, EfficientMod, EfficientModBlock, ModulationMLP, _init_weights
from .registry import (OTHER_TABLES, TABLE6, PaperFacts, add_to_suite, file_digest, load_checkpoint,
                       register_model)

ISO_PATCH = 14


@dataclass(frozen=True)
class IsoConfig:
    block: str  # "efficientmod" or "mbconv"
    width: int
    depth: int
    expansion: int
    kernel: int


# Fig. 9's swept values appear only in the figure: assumed widths and kernels,
# around the 6.4M design (depth 11). The width sweep keeps each block's Table 6
# kernel; the kernel sweep gives both blocks the same kernel at width 196.
FIG9_WIDTHS = (128, 196, 256, 320, 384)
FIG9_KERNELS = (3, 5, 7, 9, 11)
FIG9_DEPTH = 11
FIG9_ASSUMPTION = (f"Fig. 9 sweep values not given: assumed widths {FIG9_WIDTHS} (EfficientMod k7, MBConv k3) "
                   f"and kernels {FIG9_KERNELS} at width 196, depth {FIG9_DEPTH}, r = 6 / 7")
ISO_ASSUMPTION = ("App. B gives width, depth, patch 14 and ratios (6 / 7); assumed: no position embedding, "
                  "final LayerNorm + average pool, MBConv depth-wise kernel 3 (matches the paper's params/FLOPs)")

# Hierarchical MBConv: expansion per block alternating like EfficientMod's (1, r),
# depth-wise kernel. Searched (params M / MACs G at 224; paper 12.9 / 1.6):
#   uniform 4, k3: 11.56 / 1.308     uniform 5, k3: 14.20 / 1.612
#   uniform 4, k7: 12.38 / 1.510     alternating 1/8, k3: 12.88 / 1.460
#   alternating 1/8, k5: 13.25 / 1.551
# None matches both; alternating 1/8 with k3 matches the params (the paper's
# matching criterion, App. B) and mirrors EfficientMod-s-Conv's (1, 6) pattern.
HIER_MBCONV_EXPANSIONS = (1, 8)
HIER_MBCONV_KERNEL = 3
HIER_ASSUMPTION = ("approximate: ratio and kernel not given; EfficientMod-s-Conv with each block an MBConv "
                   "of expansion alternating 1/8 and 3x3 depth-wise kernel (params match, MACs 1.46G vs 1.6G)")
SEPMLP_ASSUMPTION = ("assumed split: every r>1 block becomes a modulation (v: C->C) plus its own pre-norm MLP "
                     "of hidden (r-1)C with layer scale, which keeps the paper's 12.9M / 1.5G")
HIER6_REASON = "the paper does not give the configuration of its hier. 6.4M networks (not EfficientMod-xs)"


class MBConv(nn.Module):
    """MobileNetV2 inverted residual on NCHW: PW expand, DW, PW project (BN after each), residual."""

    def __init__(self, dim: int, expansion: int, kernel: int):
        super().__init__()
        hidden = dim * expansion
        self.expand = nn.Sequential(nn.Conv2d(dim, hidden, 1, bias=False), nn.BatchNorm2d(hidden))
        self.dw = nn.Sequential(nn.Conv2d(hidden, hidden, kernel, padding=kernel // 2, groups=hidden,
                                          bias=False), nn.BatchNorm2d(hidden))
        self.project = nn.Sequential(nn.Conv2d(hidden, dim, 1, bias=False), nn.BatchNorm2d(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(F.relu6(self.dw(F.relu6(self.expand(x)))))


class ChannelsLastMBConv(MBConv):
    """An MBConv in place of an EfficientMod block, in EfficientMod's channels-last stages."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class Isotropic(nn.Module):
    def __init__(self, cfg: IsoConfig, interaction: str = "repeat", num_classes: int = 1000):
        super().__init__()
        self.cfg = cfg
        c = cfg.width
        self.patch_embed = nn.Conv2d(3, c, ISO_PATCH, ISO_PATCH)
        if cfg.block == "efficientmod":
            # channels-last, as the released EfficientMod block runs
            self.blocks = nn.Sequential(*(EfficientModBlock(c, cfg.expansion, (cfg.kernel,), interaction)
                                          for _ in range(cfg.depth)))
        else:
            self.blocks = nn.Sequential(*(MBConv(c, cfg.expansion, cfg.kernel) for _ in range(cfg.depth)))
        self.norm = nn.LayerNorm(c)
        self.head = nn.Linear(c, num_classes)
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        if self.cfg.block == "efficientmod":
            x = self.blocks(x.permute(0, 2, 3, 1))
        else:
            x = self.blocks(x).permute(0, 2, 3, 1)
        return self.head(self.norm(x).mean(dim=(1, 2)))


def hier_mbconv(expansions=HIER_MBCONV_EXPANSIONS, kernel: int = HIER_MBCONV_KERNEL) -> EfficientMod:
    """EfficientMod-s-Conv's skeleton with MBConv blocks (expansions alternate inside each stage)."""
    model = EfficientMod(CONFIGS["s_conv"])
    for stage in model.layers:
        blocks = list(stage.blocks)
        stage.blocks = nn.Sequential(*(
            ChannelsLastMBConv(b.norm.normalized_shape[0], expansions[i % len(expansions)], kernel)
            for i, b in enumerate(blocks)))
    return model


class SeparateMLPBlock(nn.Module):
    """App. L: the modulation and the MLP as two residual sub-blocks instead of one fused block."""

    def __init__(self, dim: int, expansion: int, kernel_sizes: tuple[int, ...], interaction: str):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mlp = ModulationMLP(dim, 1, kernel_sizes, interaction)  # v, ctx, p: no expansion
        self.gamma_1 = nn.Parameter(torch.full((dim,), 1e-4))
        self.norm2 = nn.LayerNorm(dim)
        hidden = dim * (expansion - 1)
        self.ffn = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.gamma_2 = nn.Parameter(torch.full((dim,), 1e-4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.gamma_1 * self.mlp(self.norm(x))
        return x + self.gamma_2 * self.ffn(self.norm2(x))


def s_conv_separate_mlp(interaction: str = "repeat") -> EfficientMod:
    cfg = CONFIGS["s_conv"]
    model = EfficientMod(cfg, interaction=interaction)
    for stage in model.layers:
        stage.blocks = nn.Sequential(*(
            SeparateMLPBlock(b.norm.normalized_shape[0], b.mlp.expansion, cfg.kernel_sizes, interaction)
            if b.mlp.expansion > 1 else b for b in stage.blocks))
    model.apply(_init_weights)
    return model


SOURCE_ID = ("modbench:mbconv-ablation@" + file_digest(Path(__file__))
             + file_digest(Path(__file__).resolve().parent / "efficientmod.py"))


def _with_checkpoint(model: nn.Module, checkpoint) -> nn.Module:
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model


def iso_name(cfg: IsoConfig) -> str:
    return f"{cfg.block}_iso_c{cfg.width}_d{cfg.depth}_k{cfg.kernel}"


def fig9_configs() -> list[IsoConfig]:
    out = []
    for w in FIG9_WIDTHS:
        out += [IsoConfig("efficientmod", w, FIG9_DEPTH, 6, 7), IsoConfig("mbconv", w, FIG9_DEPTH, 7, 3)]
    for k in FIG9_KERNELS:
        out += [IsoConfig("efficientmod", 196, FIG9_DEPTH, 6, k), IsoConfig("mbconv", 196, FIG9_DEPTH, 7, k)]
    return list(dict.fromkeys(out))


_BY_NAME: dict[str, IsoConfig] = {}


def iso_config(name: str) -> IsoConfig | None:
    """The isotropic configuration of a registered name, or None."""
    return _BY_NAME.get(name)


def fig9_points(name: str) -> list[tuple[str, str, int]]:
    """Where a model sits in Fig. 9: (sweep 'width' or 'kernel', block, x) for each sweep."""
    cfg = iso_config(name)
    if cfg is None or cfg.depth != FIG9_DEPTH:
        return []
    out = []
    if cfg.kernel == (7 if cfg.block == "efficientmod" else 3) and cfg.width in FIG9_WIDTHS:
        out.append(("width", cfg.block, cfg.width))
    if cfg.width == 196 and cfg.kernel in FIG9_KERNELS:
        out.append(("kernel", cfg.block, cfg.kernel))
    return out


def register_iso_model(name: str, cfg: IsoConfig, *, paper, suites: tuple[str, ...], assumption: str):
    """@register_model for an isotropic network, its configuration kept for iso_config()."""
    _BY_NAME[name] = cfg
    variants = INTERACTIONS if cfg.block == "efficientmod" else ("default",)
    return register_model(name, family=cfg.block, paper=paper, source_id=SOURCE_ID, variants=variants,
                          suites=suites, tags=("isotropic", "ablation"), assumption=assumption)


def _isotropic(name: str, variant: str, checkpoint) -> Isotropic:
    model = Isotropic(_BY_NAME[name], interaction=variant if variant != "default" else "repeat")
    return _with_checkpoint(model, checkpoint)


def _fig9_facts(name: str) -> PaperFacts:
    """Fig. 9 points have no table row: the facts say which sweep and configuration."""
    cfg = _BY_NAME[name]
    sweep = "width" if cfg.kernel == (7 if cfg.block == "efficientmod" else 3) else "kernel"
    label = "EfficientMod" if cfg.block == "efficientmod" else "MBConv"
    return PaperFacts(paper_name=f"iso. {label}, width {cfg.width}, depth {cfg.depth}, kernel {cfg.kernel}",
                      source=f"Fig. 9 ({sweep} sweep)")


# Table 6 isotropic rows (App. B widths and depths; App. G ratios).
@register_iso_model("efficientmod_iso_6m", IsoConfig("efficientmod", 196, 11, 6, 7),
                    paper=TABLE6, suites=("table6",), assumption=ISO_ASSUMPTION)
def efficientmod_iso_6m(variant: str = "repeat", resolution: int = 224, checkpoint=None) -> Isotropic:
    return _isotropic("efficientmod_iso_6m", variant, checkpoint)


@register_iso_model("mbconv_iso_6m", IsoConfig("mbconv", 196, 11, 7, 3),
                    paper=TABLE6, suites=("table6",), assumption=ISO_ASSUMPTION)
def mbconv_iso_6m(variant: str = "default", resolution: int = 224, checkpoint=None) -> Isotropic:
    return _isotropic("mbconv_iso_6m", variant, checkpoint)


@register_iso_model("efficientmod_iso_12m", IsoConfig("efficientmod", 256, 13, 6, 7),
                    paper=TABLE6, suites=("table6",), assumption=ISO_ASSUMPTION)
def efficientmod_iso_12m(variant: str = "repeat", resolution: int = 224, checkpoint=None) -> Isotropic:
    return _isotropic("efficientmod_iso_12m", variant, checkpoint)


@register_iso_model("mbconv_iso_12m", IsoConfig("mbconv", 256, 13, 7, 3),
                    paper=TABLE6, suites=("table6",), assumption=ISO_ASSUMPTION)
def mbconv_iso_12m(variant: str = "default", resolution: int = 224, checkpoint=None) -> Isotropic:
    return _isotropic("mbconv_iso_12m", variant, checkpoint)


# Fig. 9's sweeps around the 6.4M design (see FIG9_ASSUMPTION); the two Table 6
# networks at width 196 are points of both sweeps.
add_to_suite("efficientmod_iso_6m", "fig9")
add_to_suite("mbconv_iso_6m", "fig9")


@register_iso_model("efficientmod_iso_c128_d11_k7", IsoConfig("efficientmod", 128, FIG9_DEPTH, 6, 7),
                    paper=_fig9_facts, suites=("fig9",), assumption=FIG9_ASSUMPTION)
def efficientmod_iso_c128_d11_k7(variant: str = "repeat", resolution: int = 224, checkpoint=None) -> Isotropic:
    return _isotropic("efficientmod_iso_c128_d11_k7", variant, checkpoint)


@register_iso_model("mbconv_iso_c128_d11_k3", IsoConfig("mbconv", 128, FIG9_DEPTH, 7, 3),
                    paper=_fig9_facts, suites=("fig9",), assumption=FIG9_ASSUMPTION)
def mbconv_iso_c128_d11_k3(variant: str = "default", resolution: int = 224, checkpoint=None) -> Isotropic:
    return _isotropic("mbconv_iso_c128_d11_k3", variant, checkpoint)


@register_iso_model("efficientmod_iso_c256_d11_k7", IsoConfig("efficientmod", 256, FIG9_DEPTH, 6, 7),
                    paper=_fig9_facts, suites=("fig9",), assumption=FIG9_ASSUMPTION)
def efficientmod_iso_c256_d11_k7(variant: str = "repeat", resolution: int = 224, checkpoint=None) -> Isotropic:
    return _isotropic("efficientmod_iso_c256_d11_k7", variant, checkpoint)


@register_iso_model("mbconv_iso_c256_d11_k3", IsoConfig("mbconv", 256, FIG9_DEPTH, 7, 3),
                    paper=_fig9_facts, suites=("fig9",), assumption=FIG9_ASSUMPTION)
def mbconv_iso_c256_d11_k3(variant: str = "default", resolution: int = 224, checkpoint=None) -> Isotropic:
    return _isotropic("mbconv_iso_c256_d11_k3", variant, checkpoint)


@register_iso_model("efficientmod_iso_c320_d11_k7", IsoConfig("efficientmod", 320, FIG9_DEPTH, 6, 7),
                    paper=_fig9_facts, suites=("fig9",), assumption=FIG9_ASSUMPTION)
def efficientmod_iso_c320_d11_k7(variant: str = "repeat", resolution: int = 224, checkpoint=None) -> Isotropic:
    return _isotropic("efficientmod_iso_c320_d11_k7", variant, checkpoint)


@register_iso_model("mbconv_iso_c320_d11_k3", IsoConfig("mbconv", 320, FIG9_DEPTH, 7, 3),
                    paper=_fig9_facts, suites=("fig9",), assumption=FIG9_ASSUMPTION)
def mbconv_iso_c320_d11_k3(variant: str = "default", resolution: int = 224, checkpoint=None) -> Isotropic:
    return _isotropic("mbconv_iso_c320_d11_k3", variant, checkpoint)


@register_iso_model("efficientmod_iso_c384_d11_k7", IsoConfig("efficientmod", 384, FIG9_DEPTH, 6, 7),
                    paper=_fig9_facts, suites=("fig9",), assumption=FIG9_ASSUMPTION)
def efficientmod_iso_c384_d11_k7(variant: str = "repeat", resolution: int = 224, checkpoint=None) -> Isotropic:
    return _isotropic("efficientmod_iso_c384_d11_k7", variant, checkpoint)


@register_iso_model("mbconv_iso_c384_d11_k3", IsoConfig("mbconv", 384, FIG9_DEPTH, 7, 3),
                    paper=_fig9_facts, suites=("fig9",), assumption=FIG9_ASSUMPTION)
def mbconv_iso_c384_d11_k3(variant: str = "default", resolution: int = 224, checkpoint=None) -> Isotropic:
    return _isotropic("mbconv_iso_c384_d11_k3", variant, checkpoint)


@register_iso_model("efficientmod_iso_c196_d11_k3", IsoConfig("efficientmod", 196, FIG9_DEPTH, 6, 3),
                    paper=_fig9_facts, suites=("fig9",), assumption=FIG9_ASSUMPTION)
def efficientmod_iso_c196_d11_k3(variant: str = "repeat", resolution: int = 224, checkpoint=None) -> Isotropic:
    return _isotropic("efficientmod_iso_c196_d11_k3", variant, checkpoint)


@register_iso_model("efficientmod_iso_c196_d11_k5", IsoConfig("efficientmod", 196, FIG9_DEPTH, 6, 5),
                    paper=_fig9_facts, suites=("fig9",), assumption=FIG9_ASSUMPTION)
def efficientmod_iso_c196_d11_k5(variant: str = "repeat", resolution: int = 224, checkpoint=None) -> Isotropic:
    return _isotropic("efficientmod_iso_c196_d11_k5", variant, checkpoint)


@register_iso_model("mbconv_iso_c196_d11_k5", IsoConfig("mbconv", 196, FIG9_DEPTH, 7, 5),
                    paper=_fig9_facts, suites=("fig9",), assumption=FIG9_ASSUMPTION)
def mbconv_iso_c196_d11_k5(variant: str = "default", resolution: int = 224, checkpoint=None) -> Isotropic:
    return _isotropic("mbconv_iso_c196_d11_k5", variant, checkpoint)


@register_iso_model("mbconv_iso_c196_d11_k7", IsoConfig("mbconv", 196, FIG9_DEPTH, 7, 7),
                    paper=_fig9_facts, suites=("fig9",), assumption=FIG9_ASSUMPTION)
def mbconv_iso_c196_d11_k7(variant: str = "default", resolution: int = 224, checkpoint=None) -> Isotropic:
    return _isotropic("mbconv_iso_c196_d11_k7", variant, checkpoint)


@register_iso_model("efficientmod_iso_c196_d11_k9", IsoConfig("efficientmod", 196, FIG9_DEPTH, 6, 9),
                    paper=_fig9_facts, suites=("fig9",), assumption=FIG9_ASSUMPTION)
def efficientmod_iso_c196_d11_k9(variant: str = "repeat", resolution: int = 224, checkpoint=None) -> Isotropic:
    return _isotropic("efficientmod_iso_c196_d11_k9", variant, checkpoint)


@register_iso_model("mbconv_iso_c196_d11_k9", IsoConfig("mbconv", 196, FIG9_DEPTH, 7, 9),
                    paper=_fig9_facts, suites=("fig9",), assumption=FIG9_ASSUMPTION)
def mbconv_iso_c196_d11_k9(variant: str = "default", resolution: int = 224, checkpoint=None) -> Isotropic:
    return _isotropic("mbconv_iso_c196_d11_k9", variant, checkpoint)


@register_iso_model("efficientmod_iso_c196_d11_k11", IsoConfig("efficientmod", 196, FIG9_DEPTH, 6, 11),
                    paper=_fig9_facts, suites=("fig9",), assumption=FIG9_ASSUMPTION)
def efficientmod_iso_c196_d11_k11(variant: str = "repeat", resolution: int = 224, checkpoint=None) -> Isotropic:
    return _isotropic("efficientmod_iso_c196_d11_k11", variant, checkpoint)


@register_iso_model("mbconv_iso_c196_d11_k11", IsoConfig("mbconv", 196, FIG9_DEPTH, 7, 11),
                    paper=_fig9_facts, suites=("fig9",), assumption=FIG9_ASSUMPTION)
def mbconv_iso_c196_d11_k11(variant: str = "default", resolution: int = 224, checkpoint=None) -> Isotropic:
    return _isotropic("mbconv_iso_c196_d11_k11", variant, checkpoint)


@register_model("mbconv_hier_13m", family="mbconv", paper=TABLE6, source_id=SOURCE_ID, suites=("table6",),
                tags=("hierarchical", "ablation", "approximate"), assumption=HIER_ASSUMPTION)
def mbconv_hier_13m(variant: str = "default", resolution: int = 224, checkpoint=None) -> EfficientMod:
    return _with_checkpoint(hier_mbconv(), checkpoint)


@register_model("mbconv_hier_6m", family="mbconv", paper=TABLE6, source_id=SOURCE_ID, suites=("table6",),
                unavailable=HIER6_REASON)
def mbconv_hier_6m(variant: str = "default", resolution: int = 224, checkpoint=None):
    """Not built (HIER6_REASON): registered so Table 6 shows the row the paper reports."""


@register_model("efficientmod_hier_6m", family="efficientmod", paper=TABLE6, source_id=SOURCE_ID,
                suites=("table6",), unavailable=HIER6_REASON)
def efficientmod_hier_6m(variant: str = "default", resolution: int = 224, checkpoint=None):
    """Not built (HIER6_REASON): registered so Table 6 shows the row the paper reports."""


@register_model("efficientmod_s_conv_sepmlp", family="efficientmod", paper=OTHER_TABLES, source_id=SOURCE_ID,
                variants=INTERACTIONS, suites=("appendix_l",), tags=("ablation", "conv"),
                assumption=SEPMLP_ASSUMPTION)
def efficientmod_s_conv_sepmlp(variant: str = "repeat", resolution: int = 224, checkpoint=None) -> EfficientMod:
    return _with_checkpoint(s_conv_separate_mlp(variant), checkpoint)
