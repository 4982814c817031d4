"""A deliberately slowed EfficientMod, for demonstrating the latency gate.

`efficientmod_xxs_slowed` is EfficientMod-xxs with the kind of mistake a pull
request can make: every modulation block runs an extra small MLP (dim -> 2 dim ->
dim) on its normalized input, ~27% more MACs. It is a real graph, exported and
timed like any other model, so the gate is shown catching a real slowdown. It is
in no paper table and in the `gate-demo` suite only.
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from .efficientmod import INTERACTIONS, EfficientModBlock, efficientmod
from .registry import ModelError, PaperFacts, file_digest, register_model


_HERE = Path(__file__).resolve().parent
# In no paper: the facts say so rather than leave the name unlabelled.
NOT_IN_PAPER = PaperFacts(paper_name="EfficientMod-xxs + extra MLP (gate demo, not in the paper)", source="none")


@register_model("efficientmod_xxs_slowed", family="efficientmod", paper=NOT_IN_PAPER,
                source_id="modbench:efficientmod_xxs_slowed@" + file_digest(_HERE / "efficientmod.py")
                          + file_digest(Path(__file__)),
                variants=INTERACTIONS, suites=("gate-demo",), tags=("demo",))
def efficientmod_xxs_slowed(variant: str = "repeat", resolution: int = 224, checkpoint=None) -> nn.Module:
    if checkpoint is not None:
        raise ModelError("efficientmod_xxs_slowed is a demonstration model; it takes no checkpoint")
    model = efficientmod("xxs", interaction=variant)
    for block in model.modules():
        if isinstance(block, EfficientModBlock):
            dim = block.norm.normalized_shape[0]
            block.norm = nn.Sequential(block.norm, nn.Linear(dim, 2 * dim), nn.GELU(),
                                       nn.Linear(2 * dim, dim))
    return model
