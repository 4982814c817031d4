"""The paper's mobile formulations of EfficientMod (App. J, Table 12).

Core ML runs NCHW convolutions natively, and every permute the released model
makes around its convolutions becomes a transpose in the Core ML program, which
the paper found to dominate iPhone latency. Two rewrites remove them:

* channels-first ("cf"): tensors stay (B, C, H, W) throughout; every Linear on
  channels-last tensors becomes a 1x1 convolution (mathematically the same map)
  and LayerNorm normalises over dim 1. Module names and parameter shapes are the
  released ones, so a released checkpoint loads strictly and gives the same
  logits: a 1x1 convolution keeps its weight as the Linear's (out, in) matrix and
  views it as (out, in, 1, 1) when it runs.
* no-LayerNorm ("bn", Table 12's diamond row): every LayerNorm removed and a
  BatchNorm put after every convolution, folded into it for deployment. The
  paper re-trained this network; its weights are not released, so it runs with
  random weights (latency does not depend on their values).

Table 12's EfficientMod-xxs(conv) is xxs without attention. The paper gives no
configuration for it; (2, 2, 8, 4) EfficientMod blocks at xxs widths give
4.37M params and 0.66 GMACs, matching its 4.4M / 0.7G, and mirror how the
released s-Conv replaces s's attention blocks by as many EfficientMod blocks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .efficientmod import CONFIGS, INTERACTIONS, EfficientModConfig, _init_weights, interact

XXS_CONV = EfficientModConfig((32, 64, 128, 256), (2, 2, 8, 4), (0, 0, 0, 0), 6)
MOBILE_CONFIGS = dict(CONFIGS, xxs_conv=XXS_CONV)


class Conv1x1(nn.Module):
    """A Linear applied along dim 1 of NCHW, as a 1x1 convolution.

    The weight keeps the Linear's (out, in) shape so released state dicts load
    unchanged; the (out, in, 1, 1) view is a constant that exporters fold."""

    def __init__(self, cin: int, cout: int, bias: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cout, cin))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        nn.init.trunc_normal_(self.weight, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight[:, :, None, None], self.bias)


class LayerNormCF(nn.Module):
    """LayerNorm over the channels of an NCHW tensor (the released LN, without permutes)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Written as coremltools' channels-first LayerNorm pattern (d * d, affine after
        # the normalisation) so the converter fuses it into one layer_norm op.
        d = x - x.mean(1, keepdim=True)
        x = d * torch.rsqrt((d * d).mean(1, keepdim=True) + self.eps)
        return x * self.weight[:, None, None] + self.bias[:, None, None]


class ConvBN(nn.Sequential):
    """A convolution followed by BatchNorm; `fuse()` returns the single folded conv."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__(conv, nn.BatchNorm2d(conv.out_channels))

    def fuse(self) -> nn.Conv2d:
        conv, bn = self[0], self[1]
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                          conv.padding, groups=conv.groups, bias=True)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        with torch.no_grad():
            fused.weight.copy_(conv.weight * scale[:, None, None, None])
            fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
        return fused


class _Parts:
    """Builds the layers of one formulation: with LayerNorm (cf) or BatchNorm (bn)."""

    def __init__(self, bn: bool):
        self.bn = bn

    def pw(self, cin: int, cout: int, bias: bool = True) -> nn.Module:
        return ConvBN(nn.Conv2d(cin, cout, 1, bias=bias)) if self.bn else Conv1x1(cin, cout, bias)

    def conv(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Module:
        conv = nn.Conv2d(cin, cout, k, stride, padding=k // 2, groups=groups)
        return ConvBN(conv) if self.bn else conv

    def norm(self, dim: int) -> nn.Module:
        return nn.Identity() if self.bn else LayerNormCF(dim)


class ContextLayerCF(nn.Module):
    def __init__(self, dim: int, kernel_sizes: tuple[int, ...], parts: _Parts):
        super().__init__()
        self.f = parts.pw(dim, dim)
        self.g = parts.pw(dim, dim)
        self.context_list = nn.ModuleList(parts.conv(dim, dim, k, groups=dim) for k in kernel_sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.f(x)
        for conv in self.context_list:
            x = F.gelu(conv(x))
        return self.g(x)


class ModulationMLPCF(nn.Module):
    def __init__(self, dim: int, expansion: int, kernel_sizes: tuple[int, ...], interaction: str, parts: _Parts):
        super().__init__()
        if interaction not in INTERACTIONS:
            raise ValueError(f"interaction must be one of {INTERACTIONS}, not {interaction!r}")
        self.expansion = expansion
        self.interaction = interaction
        self.fc1 = parts.pw(dim, dim * expansion)
        self.context_layer = ContextLayerCF(dim, kernel_sizes, parts)
        self.fc2 = parts.pw(dim * expansion, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.fc1(x)
        if self.expansion > 1:
            v = F.gelu(v)
        return self.fc2(interact(v, self.context_layer(x), self.expansion, self.interaction, 1))


class EfficientModBlockCF(nn.Module):
    def __init__(self, dim: int, expansion: int, kernel_sizes: tuple[int, ...], interaction: str, parts: _Parts):
        super().__init__()
        self.norm = parts.norm(dim)
        self.mlp = ModulationMLPCF(dim, expansion, kernel_sizes, interaction, parts)
        self.gamma_1 = nn.Parameter(torch.full((dim,), 1e-4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gamma_1[:, None, None] * self.mlp(self.norm(x))


class AttentionCF(nn.Module):
    """Multi-head self-attention over the H*W positions, computed on (B, heads, hd, N)
    so that no token-major copy of the feature map is ever made."""

    def __init__(self, dim: int, heads: int, parts: _Parts):
        super().__init__()
        self.heads = heads
        self.head_dim = max(dim // heads, 32)
        inner = heads * self.head_dim
        self.qkv = parts.pw(dim, 3 * inner, bias=False)
        self.proj = parts.pw(inner, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q, k, v = self.qkv(x).reshape(b, 3, self.heads, self.head_dim, h * w).unbind(1)
        # Scaling q before the product, as SDPA does: the logits agree to fp32 rounding.
        attn = torch.matmul(q.transpose(-2, -1) * self.head_dim ** -0.5, k).softmax(-1)
        out = torch.matmul(v, attn.transpose(-2, -1))
        return self.proj(out.reshape(b, self.heads * self.head_dim, h, w))


class MlpCF(nn.Module):
    def __init__(self, dim: int, ratio: int, parts: _Parts):
        super().__init__()
        self.fc1 = parts.pw(dim, dim * ratio)
        self.fc2 = parts.pw(dim * ratio, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class AttentionBlockCF(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int, parts: _Parts):
        super().__init__()
        self.norm1 = parts.norm(dim)
        self.attn = AttentionCF(dim, heads, parts)
        self.norm2 = parts.norm(dim)
        self.mlp = MlpCF(dim, mlp_ratio, parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ConvNormCF(nn.Module):
    def __init__(self, cin: int, cout: int, kernel_size: int, stride: int, parts: _Parts):
        super().__init__()
        self.proj = parts.conv(cin, cout, kernel_size, stride)
        self.norm = parts.norm(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


class StageCF(nn.Module):
    def __init__(self, dim: int, cfg: EfficientModConfig, i: int, interaction: str, parts: _Parts):
        super().__init__()
        mods = [EfficientModBlockCF(dim, 1 if j % 2 == 0 else cfg.expansion, cfg.kernel_sizes,
                                    interaction, parts) for j in range(cfg.mod_blocks[i])]
        attns = [AttentionBlockCF(dim, cfg.attn_heads, cfg.attn_mlp_ratios[i], parts)
                 for _ in range(cfg.attn_blocks[i])]
        self.blocks = nn.Sequential(*mods, *attns)
        self.downsample = ConvNormCF(dim, cfg.dims[i + 1], 3, 2, parts) if i < 3 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(x)
        return self.downsample(x) if self.downsample is not None else x


class EfficientModCF(nn.Module):
    """EfficientMod computed channels-first; `norm='layernorm'` is the released network
    (same state dict), `norm='batchnorm'` the paper's no-LayerNorm mobile network."""

    def __init__(self, cfg: EfficientModConfig, interaction: str = "repeat",
                 norm: str = "layernorm", num_classes: int | None = None):
        super().__init__()
        if norm not in ("layernorm", "batchnorm"):
            raise ValueError(f"norm must be 'layernorm' or 'batchnorm', not {norm!r}")
        parts = _Parts(bn=norm == "batchnorm")
        self.cfg = cfg
        self.interaction = interaction
        d = cfg.dims
        self.patch_embed = ConvNormCF(3, d[0], 7, 4, parts)
        self.layers = nn.ModuleList(StageCF(d[i], cfg, i, interaction, parts) for i in range(4))
        self.norm = parts.norm(d[3])
        self.head = nn.Linear(d[3], num_classes or cfg.num_classes)
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for stage in self.layers:
            x = stage(x)
        return self.head(self.norm(x).mean(dim=(2, 3)))


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every ConvBN into one convolution, in place (deploy form)."""
    for name, child in list(model.named_children()):
        if isinstance(child, ConvBN):
            setattr(model, name, child.fuse())
        else:
            fuse_batchnorm(child)
    return model


def efficientmod_cf(size: str, interaction: str = "repeat", norm: str = "layernorm") -> EfficientModCF:
    if size not in MOBILE_CONFIGS:
        raise ValueError(f"unknown EfficientMod size {size!r}; known: {', '.join(MOBILE_CONFIGS)}")
    return EfficientModCF(MOBILE_CONFIGS[size], interaction=interaction, norm=norm)
