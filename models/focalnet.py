"""FocalNet@4M of the paper's Table 4, built from timm's FocalNet class.

The paper shrank FocalNet_Tiny_lrf "by reducing the channel number or the
blocks" and did not publish the result. The configuration here is an assumption
(shared/models/focalnet.md lists every candidate within 4.55-4.65M params and
0.65-0.75 GMACs): embed_dim 40 with depths 2-2-4-2 keeps FocalNet-T's stage
pattern and its large receptive field (3 focal levels, window 3), and comes to
4.63M / 0.685G against the paper's 4.6M / 0.7G.
"""
from __future__ import annotations

from importlib.metadata import version

from .registry import OTHER_TABLES, load_checkpoint, register_model

# As data: the keyword arguments handed to timm.models.focalnet.FocalNet.
CONFIG_4M = dict(embed_dim=40, depths=(2, 2, 4, 2), focal_levels=(3, 3, 3, 3),
                 focal_windows=(3, 3, 3, 3), mlp_ratio=4.0)
ASSUMPTION = ("config not published; assumed embed_dim 40, depths (2, 2, 4, 2), focal levels 3 "
              "(lrf), window 3 (4.63M / 0.685G vs the paper's 4.6M / 0.7G)")
# Paper facts (Table 4 row 2): paper_other.tsv.


def focalnet_4m_module():
    from timm.models.focalnet import FocalNet  # timm costs seconds: only when built

    return FocalNet(**CONFIG_4M, drop_path_rate=0.0)


@register_model("focalnet_4m", family="focalnet", paper=OTHER_TABLES,
                source_id=f"timm=={version('timm')}:focalnet{sorted(CONFIG_4M.items())}", suites=("table4",),
                tags=("conv", "modulation", "approximate"), assumption=ASSUMPTION)
def focalnet_4m(variant: str = "default", resolution: int = 224, checkpoint=None):
    model = focalnet_4m_module()
    if checkpoint is not None:
        load_checkpoint(model, checkpoint)
    return model
