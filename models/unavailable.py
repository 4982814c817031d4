"""Rows of the paper's tables that the suite has no implementation of yet.

They stay in the registry, with the paper's figures, so tables show them as not
measured and `run` can say plainly why it cannot time them.
"""
from __future__ import annotations

from .registry import ModelEntry, load_paper_table, register

MISSING = {
    "edgevit_xxs": "EdgeViT is not in timm and has no implementation here yet",
    "edgevit_xs": "EdgeViT is not in timm and has no implementation here yet",
    "edgevit_s": "EdgeViT is not in timm and has no implementation here yet",
    "mobileformer_508m": "MobileFormer is not in timm and has no implementation here yet",
}


def _register() -> None:
    table1 = load_paper_table("paper_table1.tsv", "Table 1")
    for name, reason in MISSING.items():
        register(ModelEntry(name=name, family=name.split("_")[0], builder=None,
                            paper=table1[name], unavailable_reason=reason, suites=("table1",)))


_register()
