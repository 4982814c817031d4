"""Registry entries for the paper's mobile EfficientMod (App. J, Table 12), and the
Table 12 suite, whose peers are already registered from Table 1."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .efficientmod import INTERACTIONS, EfficientMod
from .efficientmod_mobile import XXS_CONV, efficientmod_cf, fuse_batchnorm
from .registry import (TABLE12, PaperFacts, add_to_suite, file_digest, get_entry, load_checkpoint,
                       read_paper_table, register_model)

BN_VARIANTS = ("fused", "bn")  # deploy form (BN folded into the conv) | training form


def table12_facts():
    return read_paper_table(TABLE12.filename, TABLE12.label)


_HERE = Path(__file__).resolve().parent
SOURCE_ID = "modbench:efficientmod-mobile@" + "".join(
    file_digest(_HERE / f)[:8] for f in ("efficientmod.py", "efficientmod_mobile.py"))


def _channels_first_of(name: str) -> PaperFacts:
    """The released model's facts (the name less `_cf`), labelled channels-first."""
    base = get_entry(name.removesuffix("_cf")).paper
    return replace(base, paper_name=base.paper_name + " (channels-first)")


def _xxs_without_ln(name: str) -> PaperFacts:
    return replace(get_entry("efficientmod_xxs").paper, paper_name="EfficientMod-xxs (no LN, BN)", top1=None)


def _xxs_conv_released_layout(name: str) -> PaperFacts:
    # The paper timed this network only after the rewrite; no iPhone figure for this form.
    return replace(TABLE12.facts("efficientmod_xxs_conv_cf"), paper_name="EfficientMod-xxs(conv), released layout",
                   iphone_ms=None)


def _cf(size: str, variant: str, checkpoint, norm: str = "layernorm"):
    if norm == "layernorm":
        model = efficientmod_cf(size, interaction=variant)
    else:
        model = efficientmod_cf(size, norm="batchnorm")
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    if norm == "batchnorm" and variant == "fused":
        model = fuse_batchnorm(model.eval())
    return model


# The released configurations, channels-first: same weights, same logits.
@register_model("efficientmod_xxs_cf", family="efficientmod", paper=_channels_first_of, source_id=SOURCE_ID,
                variants=INTERACTIONS, suites=("mobile",), tags=("hybrid", "channels-first"))
def efficientmod_xxs_cf(variant: str = "repeat", resolution: int = 224, checkpoint=None):
    return _cf("xxs", variant, checkpoint)


@register_model("efficientmod_xs_cf", family="efficientmod", paper=_channels_first_of, source_id=SOURCE_ID,
                variants=INTERACTIONS, suites=("mobile",), tags=("hybrid", "channels-first"))
def efficientmod_xs_cf(variant: str = "repeat", resolution: int = 224, checkpoint=None):
    return _cf("xs", variant, checkpoint)


@register_model("efficientmod_s_cf", family="efficientmod", paper=_channels_first_of, source_id=SOURCE_ID,
                variants=INTERACTIONS, suites=("mobile",), tags=("hybrid", "channels-first"))
def efficientmod_s_cf(variant: str = "repeat", resolution: int = 224, checkpoint=None):
    return _cf("s", variant, checkpoint)


@register_model("efficientmod_s_conv_cf", family="efficientmod", paper=_channels_first_of, source_id=SOURCE_ID,
                variants=INTERACTIONS, suites=("mobile",), tags=("conv", "channels-first"))
def efficientmod_s_conv_cf(variant: str = "repeat", resolution: int = 224, checkpoint=None):
    return _cf("s_conv", variant, checkpoint)


@register_model("efficientmod_xxs_bn", family="efficientmod", paper=_xxs_without_ln, source_id=SOURCE_ID,
                variants=BN_VARIANTS, suites=("mobile",), tags=("hybrid", "channels-first", "batchnorm"))
def efficientmod_xxs_bn(variant: str = "fused", resolution: int = 224, checkpoint=None):
    return _cf("xxs", variant, checkpoint, "batchnorm")


# Table 12 rows 9-11: xxs without attention.
@register_model("efficientmod_xxs_conv", family="efficientmod", paper=_xxs_conv_released_layout,
                source_id=SOURCE_ID, variants=INTERACTIONS, suites=("mobile",), tags=("conv",))
def efficientmod_xxs_conv(variant: str = "repeat", resolution: int = 224, checkpoint=None):
    model = EfficientMod(XXS_CONV, interaction=variant)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model


@register_model("efficientmod_xxs_conv_cf", family="efficientmod", paper=TABLE12, source_id=SOURCE_ID,
                variants=INTERACTIONS, suites=("mobile", "table12"), tags=("conv", "channels-first"))
def efficientmod_xxs_conv_cf(variant: str = "repeat", resolution: int = 224, checkpoint=None):
    return _cf("xxs_conv", variant, checkpoint)


@register_model("efficientmod_xxs_conv_bn", family="efficientmod", paper=TABLE12, source_id=SOURCE_ID,
                variants=BN_VARIANTS, suites=("mobile", "table12"), tags=("conv", "channels-first", "batchnorm"))
def efficientmod_xxs_conv_bn(variant: str = "fused", resolution: int = 224, checkpoint=None):
    return _cf("xxs_conv", variant, checkpoint, "batchnorm")


@register_model("efficientmod_xxs_conv_adj", family="efficientmod", paper=TABLE12, source_id=SOURCE_ID,
                suites=("table12",),
                unavailable="the paper does not give the adjusted channel and block numbers")
def efficientmod_xxs_conv_adj(variant: str = "default", resolution: int = 224, checkpoint=None):
    """Not built: registered so Table 12 shows the row the paper reports."""


# The Table 1 peers (timm_peers, edgevit) join Table 12 whenever they register.
for _name in table12_facts():
    add_to_suite(_name, "table12")
