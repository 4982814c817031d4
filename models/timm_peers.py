"""Peer networks of the paper's tables that timm already implements.

Weights are random: latency does not depend on their values, and the suite must
run without reaching a model hub. A checkpoint file can still be given.
"""
from __future__ import annotations

from importlib.metadata import version

from .registry import ModelEntry, load_checkpoint, load_paper_table, register

# name in the registry -> (timm model name, options)
#   img_size: the model bakes the resolution into its graph (position embeddings,
#             attention biases), so it is built for the requested one.
#   reparam:  timed in deploy form, branches fused, as the paper timed MobileOne.
PEERS: dict[str, dict] = {
    "mobilenetv2_100": {},
    "mobilenetv2_140": {},
    "fasternet_t0": {},
    "fasternet_t1": {},
    "fasternet_t2": {},
    "mobileone_s1": {"reparam": True},
    "mobileone_s2": {"reparam": True},
    "mobileone_s4": {"reparam": True},
    "mobilevit_xs": {},
    "mobilevitv2_100": {},
    "mobilevitv2_150": {},
    "efficientformerv2_s0": {"img_size": True},
    "efficientformerv2_s1": {"img_size": True},
    "efficientformerv2_s2": {"img_size": True},
    "efficientformer_l1": {"img_size": True},
    # The paper's DeiT-T (5.9M params, 74.5% top-1) is the distilled DeiT-Tiny.
    "deit_tiny_distilled_patch16_224": {"img_size": True},
    "efficientnet_b0": {},
    "poolformer_s12": {},
}


def _builder(timm_name: str, opts: dict):
    def build(variant: str, resolution: int, checkpoint=None):
        import timm  # costs seconds; only when a peer is built

        kwargs = {"img_size": resolution} if opts.get("img_size") else {}
        model = timm.create_model(timm_name, pretrained=False, **kwargs)
        if checkpoint is not None:
            load_checkpoint(model, checkpoint)
        model.eval()
        if opts.get("reparam"):
            from timm.utils import reparameterize_model
            model = reparameterize_model(model)
        return model
    return build


def _register() -> None:
    table1 = load_paper_table("paper_table1.tsv", "Table 1")
    source_id = f"timm=={version('timm')}"
    for name, opts in PEERS.items():
        register(ModelEntry(
            name=name, family=name.rstrip("0123456789").rstrip("_"),
            builder=_builder(opts.get("timm_name", name), opts),
            paper=table1[name], source_id=source_id, suites=("table1",),
            tags=("reparameterized",) if opts.get("reparam") else (),
        ))


_register()
