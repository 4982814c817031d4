"""Ratios between two measured rows, paired when the rows were timed together."""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..stats import Ratio, paired_ratio, unpaired_ratio
from ..store import ResultsError
from .headline import headline
from .inputs import Column, Row


def timed_together(a: Row, b: Row) -> bool:
    """Same interleave group, round-robin, same blocks: block k of one ran beside block k
    of the other. (Precision-driven runs may stop rows at different counts; their
    common blocks are still paired.)"""
    return (a.source == b.source and a["interleave_group"] == b["interleave_group"]
            and a["block_size"] is not None and a["block_size"] == b["block_size"]
            and a.data.get("schedule") == "round-robin")


def _relative(r: Row) -> tuple[str, float, float, float] | None:
    """The row's figure relative to the reference timed beside it, if it has one with an interval."""
    figs = (r.get("rel_latency"), r.get("rel_ci_low"), r.get("rel_ci_high"))
    if not r.get("rel_reference") or not all(isinstance(x, (int, float)) and x == x and x > 0 for x in figs):
        return None
    return (r["rel_reference"], *figs)


def through_reference(a: Row, b: Row) -> Ratio | None:
    """A/B for rows timed in different interleave groups (or runs) beside the same
    reference: the ratio of their relative figures. Each was paired with the reference
    in its own rounds, so the host's speed cancels in each; the two are independent, so
    their log-interval half-widths add in quadrature."""
    ra, rb = _relative(a), _relative(b)
    if ra is None or rb is None or ra[0] != rb[0]:
        return None
    half = math.hypot(math.log(ra[3] / ra[2]) / 2, math.log(rb[3] / rb[2]) / 2)
    est = ra[1] / rb[1]
    return Ratio(est, est * math.exp(-half), est * math.exp(half), True, 0,
                 f"through the reference {ra[0]} (each row paired with it in its own rounds)", "median",
                 ra[1], rb[1])


def ratio(a: Row, b: Row, stat: str = "median") -> Ratio:
    """Paired when the rows were timed together; through the reference both were timed
    beside (median figures) when they were not; else unpaired."""
    if timed_together(a, b):
        return paired_ratio(a.samples(), b.samples(), a["block_size"], stat=stat)
    if stat == "median" and (via := through_reference(a, b)) is not None:
        return via
    return unpaired_ratio(a.samples(), b.samples(), stat=stat, block_size=a.get("block_size"))


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
    if r.paired and r.method.startswith("through the reference"):
        return r.method
    return f"paired, {r.n_blocks} interleaved blocks" if r.paired else "separate timing (not paired)"


@dataclass
class Comparison:
    column: Column
    a: Row
    b: Row
    ratio: Ratio  # a / b
    asked: bool   # named with --compare (else chosen: a user model's nearest paper models)


def nearest_peers(inp, col: Column, model: str, k: int = 2) -> list[Row]:
    """The paper's models nearest in latency to `model` in `col`: the closest one
    below and the closest one above, those timed together with it first."""
    me = col.find(model)
    if me is None:
        return []
    mine = headline(me).value
    peers = [r for m in col.models() if m != model and not inp.is_user(m) for r in [col.find(m)] if r is not None]
    if not peers:
        return []
    together = [r for r in peers if timed_together(me, r)]
    pool = together or peers
    below = sorted((r for r in pool if headline(r).value <= mine), key=lambda r: mine - headline(r).value)
    above = sorted((r for r in pool if headline(r).value > mine), key=lambda r: headline(r).value - mine)
    chosen = below[:1] + above[:1]
    # All peers on one side: the next nearest fill in, so there are k to compare with.
    rest = sorted((r for r in pool if r not in chosen), key=lambda r: abs(headline(r).value - mine))
    return (chosen + rest)[:k]


def comparisons(inp, pairs: list[tuple[str, str]] | None = None, stat: str = "median") -> list[Comparison]:
    """Ratios to report: each (A, B) asked, in every column that has both; and by
    default each user model against its nearest paper models."""
    out = []
    for a, b in pairs or []:
        found = False
        for col in inp.columns:
            ra, rb = col.find(a), col.find(b)
            if ra is not None and rb is not None:
                out.append(Comparison(col, ra, rb, ratio(ra, rb, stat), True))
                found = True
        if not found:
            known = ", ".join(inp.models())
            raise ResultsError(f"--compare {a}={b}: no column has both models measured; measured: {known}")
    asked = {(a, b) for a, b in pairs or []}
    for col in inp.columns:
        for model in col.models():
            if not inp.is_user(model):
                continue
            for peer in nearest_peers(inp, col, model):
                if (model, peer["model"]) in asked:
                    continue
                me = col.find(model)
                out.append(Comparison(col, me, peer, ratio(me, peer, stat), False))
    return out
