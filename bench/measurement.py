"""One Measurement carries every per-iteration sample and derives every statistic.

Callers never recompute a median: they ask the Measurement. Load time and the
first inference are kept apart from the steady-state samples; warm-up iterations
are not samples at all. The samples remember the blocks they were timed in and the
machine's load during each block, which is what makes an interval honest and a
busy machine visible.

A row is VALID when
  (a) the 95% interval of its headline statistic (median by default, or mean) is
      within `target_ci` of it (±1% by default), the interval taken from block
      statistics so that drift inside the run widens it;
  (b) every percentile it prints has the samples to support it (LoadGen's counts:
      p90 needs 64, p99 662; below that the column is left empty); and
  (c) the machine was not busy: at most `max_disturbed` of its blocks had other
      processes using more than `busy_cores` cores.
The coefficient of variation is recorded; it measures the tail, not the precision
of the reported figure, and decides nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .load import DEFAULT_BUSY_CORES, DEFAULT_MAX_DISTURBED, BlockLoad
from .stats import Interval, blocks, headline_interval, statistic

DEFAULT_TARGET_CI = 0.01
# Samples a percentile needs before it is printed (MLPerf LoadGen's minimum counts).
PERCENTILE_MIN_SAMPLES = {90: 64, 99: 662}
# Block statistics spread wider than this are named in an imprecise row's reason.
DRIFT_NOTE = 0.05


@dataclass(frozen=True)
class Validity:
    """The criteria a row is judged by; recorded with every row."""

    target_ci: float = DEFAULT_TARGET_CI
    stat: str = "median"
    busy_cores: float = DEFAULT_BUSY_CORES
    max_disturbed: float = DEFAULT_MAX_DISTURBED


@dataclass
class Measurement:
    samples_ms: np.ndarray
    warmup: int = 0
    load_ms: float | None = None
    first_run_ms: float | None = None
    # Extra timings a runner reports apart (e.g. compile_ms, engine_build_ms).
    extra: dict = field(default_factory=dict)
    # Iterations per timed block (None: one block); the load of each block; the
    # untimed iterations each block needed before its times settled.
    block: int | None = None
    loads: list[BlockLoad] = field(default_factory=list)
    settle: list[int] = field(default_factory=list)

    def __post_init__(self):
        self.samples_ms = np.asarray(self.samples_ms, dtype=np.float64).ravel()

    @property
    def n(self) -> int:
        return int(self.samples_ms.size)

    @property
    def mean(self) -> float:
        return float(np.mean(self.samples_ms))

    @property
    def std(self) -> float:
        return float(np.std(self.samples_ms, ddof=1)) if self.n > 1 else 0.0

    @property
    def median(self) -> float:
        return float(np.median(self.samples_ms))

    def percentile(self, q: float) -> float | None:
        """The q-th percentile, or None when there are too few samples to support it."""
        need = PERCENTILE_MIN_SAMPLES.get(int(q), 0)
        if self.n < need:
            return None
        return float(np.percentile(self.samples_ms, q))

    @property
    def min(self) -> float:
        return float(np.min(self.samples_ms))

    @property
    def max(self) -> float:
        return float(np.max(self.samples_ms))

    @property
    def cv(self) -> float:
        return self.std / self.mean if self.mean > 0 else math.inf

    @property
    def block_size(self) -> int:
        return int(self.block) if self.block else max(self.n, 1)

    def interval(self, stat: str = "median", confidence: float = 0.95) -> Interval:
        """The confidence interval of the median or mean, from block statistics."""
        return headline_interval(self.samples_ms, self.block_size, stat, confidence)

    def median_ci(self, confidence: float = 0.95) -> tuple[float, float]:
        iv = self.interval("median", confidence)
        return (iv.low, iv.high)

    def disturbed(self, busy_cores: float = DEFAULT_BUSY_CORES) -> int:
        return sum(b.others_cores > busy_cores for b in self.loads)

    def validity(self, v: Validity = Validity()) -> tuple[bool, str]:
        reasons = []
        iv = self.interval(v.stat)
        if math.isnan(iv.low):
            reasons.append(f"no interval: {iv.n_blocks} block (need 2 or more)")
        elif iv.rel_half_width > v.target_ci:
            reasons.append(f"{v.stat} known to ±{iv.rel_half_width:.1%}, not ±{v.target_ci:.1%} "
                           f"({iv.n_blocks} blocks, {self.n} iterations{self._drift(v.stat)})")
        if self.loads:
            d = self.disturbed(v.busy_cores)
            if d > v.max_disturbed * len(self.loads):
                worst = max(b.others_cores for b in self.loads)
                reasons.append(f"machine busy: {d / len(self.loads):.0%} of blocks had other processes "
                               f"using > {v.busy_cores:g} cores (up to {worst:.2f})")
        return (not reasons, "; ".join(reasons))

    def _drift(self, stat: str) -> str:
        """Why an interval is wide, in the user's terms: how far the block statistics
        moved. On a steady machine they agree within a few percent; on a shared VM whose
        speed moves with its neighbours they spread by tens of percent, and no number of
        iterations makes the row's figure reproducible."""
        f = statistic(stat)
        per_block = np.array([f(b) for b in blocks(self.samples_ms, self.block_size)])
        if per_block.size < 4:
            return ""
        lo, hi = np.percentile(per_block, [10, 90])
        if not lo > 0 or hi / lo < 1 + DRIFT_NOTE:
            return ""
        return (f"; its block {stat}s moved by {hi / lo - 1:.0%} (10th to 90th percentile): "
                "the machine's speed changed while timing")

    def summary(self, v: Validity = Validity()) -> dict:
        """The statistics as result-row columns (milliseconds)."""
        med, mean = self.interval("median"), self.interval("mean")
        valid, reason = self.validity(v)
        head = med if v.stat == "median" else mean
        loads = self.loads
        mhz = [b.mhz for b in loads if b.mhz]
        return {
            "iters": self.n, "warmup": self.warmup,
            "mean_ms": self.mean, "std_ms": self.std, "median_ms": self.median,
            "median_ci_low_ms": _num(med.low), "median_ci_high_ms": _num(med.high),
            "mean_ci_low_ms": _num(mean.low), "mean_ci_high_ms": _num(mean.high),
            "headline_stat": v.stat, "ci_rel_half_width": _num(head.rel_half_width),
            "target_ci": v.target_ci,
            "p90_ms": self.percentile(90), "p99_ms": self.percentile(99),
            "min_ms": self.min, "max_ms": self.max, "cv": self.cv,
            "valid": valid, "invalid_reason": reason,
            "load_ms": self.load_ms, "first_run_ms": self.first_run_ms,
            "blocks": len(loads) or None,
            "disturbed_blocks": self.disturbed(v.busy_cores) if loads else None,
            "others_cpu_max": max(b.others_cores for b in loads) if loads else None,
            "others_cpu_mean": float(np.mean([b.others_cores for b in loads])) if loads else None,
            "steal_pct": float(np.mean([b.steal_pct for b in loads])) if loads else None,
            "cpu_mhz": float(np.median(mhz)) if mhz else None,
            "settle_iters_mean": float(np.mean(self.settle)) if self.settle else None,
        }


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)
