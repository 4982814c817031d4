"""Every statistic beyond one row's own summary: intervals, ratios, tests, rank agreement.

One bootstrap engine (`block_bootstrap`) serves the reports, the claims and the gate,
with one resample count and one seed unless a caller asks otherwise. Tests and rank
correlations come from scipy.stats.

Latency samples are not independent: the machine's speed drifts, so consecutive
iterations share it. Intervals therefore come from blocks of consecutive iterations
(the round-robin blocks they were timed in), never from order statistics that assume
independent samples. Two rows timed in alternating blocks are compared block k with
block k, so drift common to both cancels in their ratio.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import stats as _st

BOOTSTRAP_RESAMPLES = 2000
# Fixed so that a report or a verdict made twice from the same files prints the same intervals.
BOOTSTRAP_SEED = 20240101
# Fewer bootstrap blocks than this make a bootstrap interval coarse and too narrow.
MIN_BOOT_BLOCKS = 20
STATS = ("median", "mean")


def statistic(name: str) -> Callable[..., np.ndarray]:
    if name not in STATS:
        raise ValueError(f"statistic must be one of {STATS}, not {name!r}")
    return np.median if name == "median" else np.mean


def blocks(samples: np.ndarray, block_size: int) -> list[np.ndarray]:
    """The samples of one row cut back into the blocks they were timed in."""
    x = np.asarray(samples, dtype=np.float64)
    return [x[i:i + block_size] for i in range(0, len(x), block_size)]


def _even_blocks(x: np.ndarray, length: int) -> np.ndarray:
    k = x.size // length
    return x[: k * length].reshape(k, length)


def boot_block_length(n: int, block_size: int | None) -> int:
    """Length of resampled blocks: the schedule's block, shortened so that at least
    MIN_BOOT_BLOCKS of them exist (300 iterations in blocks of 50 are only 6 blocks,
    and a 6-block bootstrap cannot see its own tails)."""
    block = int(block_size) if block_size and block_size > 0 else n
    return max(1, min(block, n // MIN_BOOT_BLOCKS))


def block_bootstrap(stat: Callable[..., np.ndarray], *samples: np.ndarray, block: int,
                    confidence: float = 0.95, n_resamples: int = BOOTSTRAP_RESAMPLES,
                    seed: int = BOOTSTRAP_SEED, paired: bool = False) -> tuple[float, float]:
    """Percentile interval of stat(*resampled) by resampling whole blocks.

    Each sample set is cut into blocks of `block` iterations; a resample draws as many
    blocks with replacement. paired: the sets were timed in the same blocks, so one
    draw of block indices serves all (drift common to them cancels). `stat` takes one
    (n_resamples, m) array per sample set and returns n_resamples values."""
    rng = np.random.default_rng(seed)
    cut = [_even_blocks(np.asarray(x, dtype=np.float64), block) for x in samples]
    draws = []
    idx = None
    for b in cut:
        if idx is None or not paired or b.shape[0] != idx.shape[1]:
            idx = rng.integers(0, b.shape[0], size=(n_resamples, b.shape[0]))
        draws.append(b[idx].reshape(n_resamples, -1))
    values = stat(*draws)
    lo, hi = np.quantile(values, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(lo), float(hi)


# --- one row: the interval of its headline statistic ----------------------------------

@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    n_blocks: int
    method: str

    @property
    def rel_half_width(self) -> float:
        """Half the interval's width relative to the estimate (0.01 = ±1%)."""
        if not (self.estimate > 0) or math.isnan(self.low):
            return math.inf
        return (self.high - self.low) / 2 / self.estimate


def headline_interval(samples: np.ndarray, block: int, stat: str = "median",
                      confidence: float = 0.95) -> Interval:
    """Confidence interval of a row's median or mean, honest under drift.

    Batch statistics: the row's samples are cut into its timing blocks; the spread of
    the per-block statistic over k blocks, through Student's t with k-1 degrees of
    freedom, bounds the pooled statistic. Blocks seconds apart carry the machine's
    drift, so the interval does; order statistics of the pooled samples would treat
    4000 correlated iterations as 4000 independent ones. (For the median this is
    conservative: the pooled median varies less than the mean of block medians.)"""
    x = np.asarray(samples, dtype=np.float64)
    f = statistic(stat)
    est = float(f(x))
    bs = blocks(x, max(int(block), 1))
    if len(bs) > 1 and bs[-1].size < max(int(block), 1) // 2:
        bs = bs[:-1]  # a short tail block's statistic is noisier than the rest
    k = len(bs)
    if k < 2:
        return Interval(est, math.nan, math.nan, k, "batch statistics (one block: no interval)")
    per_block = np.array([f(b) for b in bs])
    half = float(_st.t.ppf((1 + confidence) / 2, k - 1) * per_block.std(ddof=1) / math.sqrt(k))
    return Interval(est, est - half, est + half, k, f"batch {stat}s over {k} blocks, Student t")


# --- two rows: ratios -------------------------------------------------------------------

def verdict_at_most(low: float, high: float, goal: float) -> str:
    """Whether a quantity known to [low, high] is at most `goal`: a verdict only
    where the interval decides it (on a noisy machine it often cannot)."""
    return "met" if high <= goal else "NOT met" if low > goal else "undecided (the interval spans it)"


@dataclass(frozen=True)
class Ratio:
    """Latency of A over latency of B (below 1: A is faster), with a confidence interval."""

    estimate: float
    low: float
    high: float
    paired: bool
    n_blocks: int  # paired: blocks compared; unpaired: 0
    method: str
    stat: str = "median"

    @property
    def change_pct(self) -> float:
        return (self.estimate - 1) * 100

    @property
    def change_ci_pct(self) -> tuple[float, float]:
        return ((self.low - 1) * 100, (self.high - 1) * 100)


def paired_ratio(a: np.ndarray, b: np.ndarray, block_size: int, confidence: float = 0.95,
                 seed: int = BOOTSTRAP_SEED, stat: str = "median",
                 n_resamples: int = BOOTSTRAP_RESAMPLES, block_size_b: int | None = None) -> Ratio:
    """A/B from two rows timed in alternating blocks of one run.

    Block k of A and block k of B ran seconds apart, so the machine's slow drift
    cancels in their ratio. The estimate is the geometric mean of the per-block
    ratios; its interval resamples whole block pairs. Rows that stopped at different
    counts (precision-driven runs) are compared over the blocks both have."""
    f = statistic(stat)
    ba = blocks(np.asarray(a), block_size)
    bb = blocks(np.asarray(b), block_size_b or block_size)
    k = min(len(ba), len(bb))
    logs = np.log([f(x) / f(y) for x, y in zip(ba[:k], bb[:k])])
    est = float(np.exp(logs.mean()))
    if k < 2:
        return Ratio(est, math.nan, math.nan, True, k, "paired blocks (one block: no interval)", stat)
    lo, hi = block_bootstrap(lambda d: np.exp(d.mean(axis=1)), logs, block=1, confidence=confidence,
                             n_resamples=n_resamples, seed=seed)
    return Ratio(est, lo, hi, True, k, "paired blocks, bootstrap over blocks", stat)


def unpaired_ratio(a: np.ndarray, b: np.ndarray, confidence: float = 0.95, seed: int = BOOTSTRAP_SEED,
                   stat: str = "median", n_resamples: int = BOOTSTRAP_RESAMPLES,
                   block_size: int | None = None) -> Ratio:
    """A/B from rows not timed together: ratio of the statistics, block bootstrap of each.

    The interval covers the noise inside each row; drift of the machine between the
    two runs is not in it, which is why such ratios are labelled."""
    f = statistic(stat)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    est = float(f(a) / f(b))
    length = min(boot_block_length(a.size, block_size), boot_block_length(b.size, block_size))
    lo, hi = block_bootstrap(lambda x, y: f(x, axis=1) / f(y, axis=1), a, b, block=length,
                             confidence=confidence, n_resamples=n_resamples, seed=seed)
    return Ratio(est, lo, hi, False, 0, "unpaired (separate timing), block bootstrap", stat)


def mann_whitney(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p of Mann-Whitney's U test (samples treated as independent: reported
    beside the bootstrap interval, never deciding alone)."""
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if a.size == 0 or b.size == 0:
        raise ValueError("Mann-Whitney needs samples on both sides")
    if np.all(a == a[0]) and np.all(b == a[0]):
        return 1.0
    return float(_st.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic").pvalue)


# --- rank agreement ----------------------------------------------------------------------

def spearman(x, y) -> float:
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return math.nan
    return float(_st.spearmanr(x, y).statistic)


def kendall(x, y) -> float:
    """Kendall's tau-b (ties in either list handled)."""
    if len(x) < 2 or np.std(x) == 0 or np.std(y) == 0:
        return math.nan
    return float(_st.kendalltau(x, y).statistic)
