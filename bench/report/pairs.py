"""Ratios between two measured rows, paired when the rows were timed together."""
from __future__ import annotations

from dataclasses import dataclass

from .inputs import Column, Row
from ..stats import Ratio, paired_ratio, unpaired_ratio


def timed_together(a: Row, b: Row) -> bool:
    """Same interleave group, round-robin, same blocks: block k of one ran beside block k
    of the other. (Precision-driven runs may stop rows at different counts; their
    common blocks are still paired.)"""
    return (a.source == b.source and a["interleave_group"] == b["interleave_group"]
            and int(a["block_size"]) == int(b["block_size"])
            and str(a.data.get("schedule")) == "round-robin")


def ratio(a: Row, b: Row, stat: str = "median") -> Ratio:
    if timed_together(a, b):
        return paired_ratio(a.samples(), b.samples(), int(a["block_size"]), stat=stat)
    return unpaired_ratio(a.samples(), b.samples(), stat=stat, block_size=_block(a))


def _block(row: Row) -> int | None:
    try:
        return int(row["block_size"])
    except (TypeError, ValueError, KeyError):
        return None


@dataclass
class VariantChange:
    column: Column
    model: str
    resolution: int
    repeat: Row
    reshape: Row
    ratio: Ratio  # reshape / repeat


def repeat_vs_reshape(columns: list[Column]) -> list[VariantChange]:
    """Every model measured both ways in a column (paper Fig. 2 is EfficientMod-s)."""
    out = []
    for col in columns:
        for model in col.models():
            for res in sorted({int(r["resolution"]) for r in col.rows if r["model"] == model}):
                rep = col.find(model, "repeat", res)
                resh = col.find(model, "reshape", res)
                if rep is not None and resh is not None:
                    out.append(VariantChange(col, model, res, rep, resh, ratio(resh, rep)))
    return out


def pairing_label(r: Ratio) -> str:
    return f"paired, {r.n_blocks} interleaved blocks" if r.paired else "separate timing (not paired)"
