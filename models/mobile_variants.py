"""Registry entries for the paper's mobile EfficientMod (App. J, Table 12), and the
Table 12 suite, whose peers are already registered from Table 1."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .efficientmod import CONFIGS, INTERACTIONS, EfficientMod
from .efficientmod_mobile import XXS_CONV, efficientmod_cf, fuse_batchnorm
from .registry import (ModelEntry, add_to_suite, file_digest, get_entry, load_checkpoint,
                       load_paper_table, register)

BN_VARIANTS = ("fused", "bn")  # deploy form (BN folded into the conv) | training form


def table12_facts():
    return load_paper_table("paper_table12.tsv", "Table 12")


def _cf_builder(size: str, norm: str = "layernorm"):
    def build(variant: str, resolution: int, checkpoint=None):
        if norm == "layernorm":
            model = efficientmod_cf(size, interaction=variant)
        else:
            model = efficientmod_cf(size, norm="batchnorm")
        if checkpoint is not None:
            load_checkpoint(model, checkpoint)
        if norm == "batchnorm" and variant == "fused":
            model = fuse_batchnorm(model.eval())
        return model
    return build


def _xxs_conv_channels_last(variant: str, resolution: int, checkpoint=None):
    model = EfficientMod(XXS_CONV, interaction=variant)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model


def _register() -> None:
    here = Path(__file__).resolve().parent
    source_id = "modbench:efficientmod-mobile@" + "".join(
        file_digest(here / f)[:8] for f in ("efficientmod.py", "efficientmod_mobile.py"))
    t12 = table12_facts()

    # The released configurations, channels-first: same weights, same logits.
    for size in CONFIGS:
        base = get_entry(f"efficientmod_{size}")
        register(ModelEntry(
            name=f"efficientmod_{size}_cf", family="efficientmod", builder=_cf_builder(size),
            paper=replace(base.paper, paper_name=base.paper.paper_name + " (channels-first)"),
            variants=INTERACTIONS, source_id=source_id, suites=("mobile",),
            tags=base.tags + ("channels-first",)))
    register(ModelEntry(
        name="efficientmod_xxs_bn", family="efficientmod", builder=_cf_builder("xxs", "batchnorm"),
        paper=replace(get_entry("efficientmod_xxs").paper, paper_name="EfficientMod-xxs (no LN, BN)",
                      top1=None),
        variants=BN_VARIANTS, source_id=source_id, suites=("mobile",),
        tags=("hybrid", "channels-first", "batchnorm")))

    # Table 12 rows 9-11: xxs without attention.
    row9 = t12["efficientmod_xxs_conv_cf"]
    register(ModelEntry(
        name="efficientmod_xxs_conv", family="efficientmod", builder=_xxs_conv_channels_last,
        # The paper timed this network only after the rewrite; no iPhone figure for this form.
        paper=replace(row9, paper_name="EfficientMod-xxs(conv), released layout", iphone_ms=None),
        variants=INTERACTIONS, source_id=source_id, suites=("mobile",), tags=("conv",)))
    register(ModelEntry(
        name="efficientmod_xxs_conv_cf", family="efficientmod", builder=_cf_builder("xxs_conv"),
        paper=row9, variants=INTERACTIONS, source_id=source_id, suites=("mobile", "table12"),
        tags=("conv", "channels-first")))
    register(ModelEntry(
        name="efficientmod_xxs_conv_bn", family="efficientmod",
        builder=_cf_builder("xxs_conv", "batchnorm"), paper=t12["efficientmod_xxs_conv_bn"],
        variants=BN_VARIANTS, source_id=source_id, suites=("mobile", "table12"),
        tags=("conv", "channels-first", "batchnorm")))
    register(ModelEntry(
        name="efficientmod_xxs_conv_adj", family="efficientmod", builder=None,
        paper=t12["efficientmod_xxs_conv_adj"], source_id=source_id, suites=("table12",),
        unavailable_reason="the paper does not give the adjusted channel and block numbers"))

    # The Table 1 peers (timm_peers, edgevit) join Table 12 whenever they register.
    for name in t12:
        add_to_suite(name, "table12")


_register()
