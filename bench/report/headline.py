"""The one number a report prints for a row, and its interval, read in one place.

Rows written since the machine-speed probe carry `latency_ms` (the model's latency at
the machine's normal speed) with its interval; older rows have only `median_ms`. Every
table, plot, ratio label and claim reads a row's headline through `headline()`, which
says which figure it used, so a report never mixes the two silently.

Intervals are computed on the log scale (latency is a positive quantity whose noise is
multiplicative): back-transformed, they can never reach below zero, where a symmetric
interval around a noisy median once printed `22.9 [-4.23, 50.0]`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

from ..stats import blocks, statistic

LATENCY = "latency_ms"
MEDIAN = "median_ms"
MEAN = "mean"

# How each figure is named where a report says what it printed.
DESCRIBE = {
    LATENCY: "latency_ms (the model's latency at the machine's normal speed)",
    MEDIAN: "median_ms (median of the timed iterations; rows older than latency_ms)",
    MEAN: "mean of the timed iterations (the paper's statistic)",
}


@dataclass(frozen=True)
class Headline:
    value: float
    low: float | None   # None: no interval (a single block)
    high: float | None
    figure: str         # LATENCY, MEDIAN or MEAN

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None


def log_interval(samples, block: int, stat: str = "median", confidence: float = 0.95) -> tuple:
    """(estimate, low, high) of a row's median or mean: Student t over the logs of its
    block statistics, back-transformed (always > 0). None bounds with one block."""
    x = np.asarray(samples, dtype=np.float64)
    f = statistic(stat)
    est = float(f(x))
    size = max(int(block or x.size), 1)
    bs = blocks(x, size)
    if len(bs) > 1 and bs[-1].size < size // 2:
        bs = bs[:-1]  # a short tail block is noisier than the rest
    per = np.array([f(b) for b in bs], dtype=np.float64)
    per = per[per > 0]
    k = per.size
    if k < 2 or not est > 0:
        return est, None, None
    logs = np.log(per)
    half = float(_st.t.ppf((1 + confidence) / 2, k - 1) * logs.std(ddof=1) / math.sqrt(k))
    # Centred on the pooled estimate, as the linear interval was; spread from the blocks.
    centre = math.log(est)
    return est, math.exp(centre - half), math.exp(centre + half)


def _block(row) -> int | None:
    b = row.get("block_size")
    return b if b and b > 0 else None


def headline(row, stat: str = "median") -> Headline:
    """The row's headline latency (ms) and its 95% interval.

    stat 'median' (default): `latency_ms` and its stored interval when the row has
    them, else `median_ms` with an interval on the log scale from the row's samples. stat 'mean': the mean of the
    samples, log-scale interval (the paper's tables print means)."""
    if stat == "mean":
        est, lo, hi = log_interval(row.samples(), _block(row), "mean")
        return Headline(est, lo, hi, MEAN)
    lat = row.get(LATENCY)
    if lat is not None and lat > 0:
        lo, hi = row.get("latency_ci_low_ms"), row.get("latency_ci_high_ms")
        if lo is not None and hi is not None and 0 < lo <= lat <= hi:
            return Headline(lat, lo, hi, LATENCY)
        return Headline(lat, None, None, LATENCY)
    # An older row: its median, with the interval recomputed from its samples on the
    # log scale (the stored median_ci_* are symmetric: 26.0 [2.43, 49.6] on a busy machine).
    med = row.get(MEDIAN)
    est, lo, hi = log_interval(row.samples(), _block(row), "median")
    return Headline(med if med is not None else est, lo, hi, MEDIAN)


def figures_used(rows, stat: str = "median") -> list[str]:
    """The figures `headline` takes from these rows, for a report's note."""
    return sorted({headline(r, stat).figure for r in rows})


def describe(rows, stat: str = "median") -> str:
    used = figures_used(rows, stat)
    if not used:
        return ""
    return "Headline figure: " + "; ".join(DESCRIBE[f] for f in used) + "."


def is_valid(row) -> bool:
    return row.get("valid") is True


def validity_code(row) -> str:
    """A short mark for tables: '' for a valid row, else 'INVALID' and why in a word."""
    if is_valid(row):
        return ""
    reason = str(row.get("invalid_reason") or "").lower()
    words = [w for w, key in (("imprecise", "ci"), ("busy", "busy"), ("busy", "disturbed"),
                              ("drift", "drift")) if key in reason]
    return "INVALID" + (f" ({', '.join(dict.fromkeys(words))})" if words else "")
