"""The one number a report prints for a row, and its interval, read in one place.

Rows carry `latency_ms` (the model's latency at the machine's normal speed) with its
interval, both derived once when the row was measured (bench/measurement.py) and read
here as stored. Rows older than the machine-speed probe have only `median_ms`; rows
whose latency at normal speed was not measured (the host slowed too many blocks)
leave `latency_ms` empty. Every table, plot, ratio label and claim reads a row's
headline through `headline()`, which says which figure it used, so a report never
mixes them silently.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..measurement import from_row

LATENCY = "latency_ms"
MEDIAN = "median_ms"
NOT_MEASURED = "median_ms (not measured)"
MEAN = "mean"

# How each figure is named where a report says what it printed.
DESCRIBE = {
    LATENCY: "latency_ms (the model's latency at the machine's normal speed)",
    MEDIAN: "median_ms (median of the timed iterations; rows older than latency_ms)",
    NOT_MEASURED: "median_ms (median of all timed iterations, for rows whose latency at normal speed "
                  "was not measured: the host slowed too many of their blocks)",
    MEAN: "mean of the timed iterations (the paper's statistic)",
}
# The first results schema whose rows store latency_ms with its interval.
LATENCY_SINCE = 2


@dataclass(frozen=True)
class Headline:
    value: float
    low: float | None   # None: no interval (a single block)
    high: float | None
    figure: str         # LATENCY, MEDIAN, NOT_MEASURED or MEAN

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None


def _stored(row, value: str, low: str, high: str, figure: str) -> Headline | None:
    v, lo, hi = row.get(value), row.get(low), row.get(high)
    if v is None or not v > 0:
        return None
    if lo is not None and hi is not None and 0 < lo <= v <= hi:
        return Headline(v, lo, hi, figure)
    return Headline(v, None, None, figure)


def _from_samples(row, stat: str, figure: str) -> Headline:
    """A figure the row does not store (a file older than it): the row's Measurement
    derives it from the samples, with the one interval every figure has."""
    iv = from_row(row, row.samples()).interval(stat)
    ok = iv.low == iv.low and iv.low > 0
    return Headline(iv.estimate, iv.low if ok else None, iv.high if ok else None, figure)


def headline(row, stat: str = "median") -> Headline:
    """The row's headline latency (ms) and its 95% interval.

    stat 'median' (default): `latency_ms` and its stored interval when the row has
    them, else `median_ms` and its stored interval. stat 'mean': the mean of the
    samples and its stored interval (the paper's tables print means). Rows written
    before a figure was stored get it from their samples."""
    current = (row.get("schema_version") or 1) >= 3
    if stat == "mean":
        return (_stored(row, "mean_ms", "mean_ci_low_ms", "mean_ci_high_ms", MEAN) if current else None) \
            or _from_samples(row, "mean", MEAN)
    lat = _stored(row, LATENCY, "latency_ci_low_ms", "latency_ci_high_ms", LATENCY)
    if lat is not None:
        return lat
    figure = NOT_MEASURED if (row.get("schema_version") or 1) >= LATENCY_SINCE else MEDIAN
    return (_stored(row, MEDIAN, "median_ci_low_ms", "median_ci_high_ms", figure) if current else None) \
        or _from_samples(row, "median", figure)


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
