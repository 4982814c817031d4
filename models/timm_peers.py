"""Peer networks of the paper's tables that timm already implements.

Weights are random: latency does not depend on their values, and the suite must
run without reaching a model hub. A checkpoint file can still be given.
"""
from __future__ import annotations

from importlib.metadata import version

from .registry import TABLE1, load_checkpoint, register_model

# Every peer is built by timm under its registered name, with random weights.
SOURCE_ID = f"timm=={version('timm')}"


def _build(timm_name: str, checkpoint, *, img_size: int | None = None, reparam: bool = False):
    """img_size: the model bakes the resolution into its graph (position embeddings,
    attention biases), so it is built for the requested one. reparam: timed in deploy
    form, branches fused, as the paper timed MobileOne."""
    import timm  # costs seconds; only when a peer is built

    kwargs = {"img_size": img_size} if img_size is not None else {}
    model = timm.create_model(timm_name, pretrained=False, **kwargs)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    model.eval()
    if reparam:
        from timm.utils import reparameterize_model  # as timm above
        model = reparameterize_model(model)
    return model


@register_model("mobilenetv2_100", family="mobilenetv2", paper=TABLE1, source_id=SOURCE_ID, suites=("table1",))
def mobilenetv2_100(variant: str = "default", resolution: int = 224, checkpoint=None):
    return _build("mobilenetv2_100", checkpoint)


@register_model("mobilenetv2_140", family="mobilenetv2", paper=TABLE1, source_id=SOURCE_ID, suites=("table1",))
def mobilenetv2_140(variant: str = "default", resolution: int = 224, checkpoint=None):
    return _build("mobilenetv2_140", checkpoint)


@register_model("fasternet_t0", family="fasternet_t", paper=TABLE1, source_id=SOURCE_ID, suites=("table1",))
def fasternet_t0(variant: str = "default", resolution: int = 224, checkpoint=None):
    return _build("fasternet_t0", checkpoint)


@register_model("fasternet_t1", family="fasternet_t", paper=TABLE1, source_id=SOURCE_ID, suites=("table1",))
def fasternet_t1(variant: str = "default", resolution: int = 224, checkpoint=None):
    return _build("fasternet_t1", checkpoint)


@register_model("fasternet_t2", family="fasternet_t", paper=TABLE1, source_id=SOURCE_ID, suites=("table1",))
def fasternet_t2(variant: str = "default", resolution: int = 224, checkpoint=None):
    return _build("fasternet_t2", checkpoint)


@register_model("mobileone_s1", family="mobileone_s", paper=TABLE1, source_id=SOURCE_ID, suites=("table1",),
                tags=("reparameterized",))
def mobileone_s1(variant: str = "default", resolution: int = 224, checkpoint=None):
    return _build("mobileone_s1", checkpoint, reparam=True)


@register_model("mobileone_s2", family="mobileone_s", paper=TABLE1, source_id=SOURCE_ID, suites=("table1",),
                tags=("reparameterized",))
def mobileone_s2(variant: str = "default", resolution: int = 224, checkpoint=None):
    return _build("mobileone_s2", checkpoint, reparam=True)


@register_model("mobileone_s4", family="mobileone_s", paper=TABLE1, source_id=SOURCE_ID, suites=("table1",),
                tags=("reparameterized",))
def mobileone_s4(variant: str = "default", resolution: int = 224, checkpoint=None):
    return _build("mobileone_s4", checkpoint, reparam=True)


@register_model("mobilevit_xs", family="mobilevit_xs", paper=TABLE1, source_id=SOURCE_ID, suites=("table1",))
def mobilevit_xs(variant: str = "default", resolution: int = 224, checkpoint=None):
    return _build("mobilevit_xs", checkpoint)


@register_model("mobilevitv2_100", family="mobilevitv2", paper=TABLE1, source_id=SOURCE_ID, suites=("table1",))
def mobilevitv2_100(variant: str = "default", resolution: int = 224, checkpoint=None):
    return _build("mobilevitv2_100", checkpoint)


@register_model("mobilevitv2_150", family="mobilevitv2", paper=TABLE1, source_id=SOURCE_ID, suites=("table1",))
def mobilevitv2_150(variant: str = "default", resolution: int = 224, checkpoint=None):
    return _build("mobilevitv2_150", checkpoint)


@register_model("efficientformerv2_s0", family="efficientformerv2_s", paper=TABLE1, source_id=SOURCE_ID,
                suites=("table1",))
def efficientformerv2_s0(variant: str = "default", resolution: int = 224, checkpoint=None):
    return _build("efficientformerv2_s0", checkpoint, img_size=resolution)


@register_model("efficientformerv2_s1", family="efficientformerv2_s", paper=TABLE1, source_id=SOURCE_ID,
                suites=("table1",))
def efficientformerv2_s1(variant: str = "default", resolution: int = 224, checkpoint=None):
    return _build("efficientformerv2_s1", checkpoint, img_size=resolution)


@register_model("efficientformerv2_s2", family="efficientformerv2_s", paper=TABLE1, source_id=SOURCE_ID,
                suites=("table1",))
def efficientformerv2_s2(variant: str = "default", resolution: int = 224, checkpoint=None):
    return _build("efficientformerv2_s2", checkpoint, img_size=resolution)


@register_model("efficientformer_l1", family="efficientformer_l", paper=TABLE1, source_id=SOURCE_ID, suites=("table1",))
def efficientformer_l1(variant: str = "default", resolution: int = 224, checkpoint=None):
    return _build("efficientformer_l1", checkpoint, img_size=resolution)


# The paper's DeiT-T (5.9M params, 74.5% top-1) is the distilled DeiT-Tiny.
@register_model("deit_tiny_distilled_patch16_224", family="deit_tiny_distilled_patch16", paper=TABLE1,
                source_id=SOURCE_ID, suites=("table1",))
def deit_tiny_distilled_patch16_224(variant: str = "default", resolution: int = 224, checkpoint=None):
    return _build("deit_tiny_distilled_patch16_224", checkpoint, img_size=resolution)


@register_model("efficientnet_b0", family="efficientnet_b", paper=TABLE1, source_id=SOURCE_ID, suites=("table1",))
def efficientnet_b0(variant: str = "default", resolution: int = 224, checkpoint=None):
    return _build("efficientnet_b0", checkpoint)


@register_model("poolformer_s12", family="poolformer_s", paper=TABLE1, source_id=SOURCE_ID, suites=("table1",))
def poolformer_s12(variant: str = "default", resolution: int = 224, checkpoint=None):
    return _build("poolformer_s12", checkpoint)
