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


def circular_block_bootstrap(stat: Callable[[np.ndarray], np.ndarray], values: np.ndarray, run: int,
                             confidence: float = 0.95, n_resamples: int = BOOTSTRAP_RESAMPLES,
                             seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile interval of stat(resampled) for a series whose neighbours are correlated:
    each resample strings together runs of `run` consecutive values from random starts,
    wrapping at the end, to the series' length. Wrapping gives every value the same
    weight (cutting the series into fixed runs would drop its tail; overlapping runs
    without wrapping would weigh its ends less)."""
    x = np.asarray(values, dtype=np.float64)
    k = x.size
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, k, size=(n_resamples, -(-k // run)))
    idx = ((starts[:, :, None] + np.arange(run)) % k).reshape(n_resamples, -1)[:, :k]
    lo, hi = np.quantile(stat(x[idx]), [(1 - confidence) / 2, (1 + confidence) / 2])
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
        return rel_half_width(self.estimate, self.low, self.high)


def rel_half_width(estimate: float, low: float, high: float) -> float:
    """Half an interval's width relative to its estimate (0.01 = ±1%); inf without one."""
    if not (estimate > 0) or math.isnan(low):
        return math.inf
    return (high - low) / 2 / estimate


def block_interval(per_block: np.ndarray, estimate: float, confidence: float = 0.95,
                   method: str = "batch statistics") -> Interval:
    """The one interval of a row's figure: Student t over the logs of its block
    statistics, centred on the pooled `estimate` and back-transformed.

    Batch statistics: blocks seconds apart carry the machine's drift, so their spread
    does; order statistics of the pooled samples would treat 4000 correlated
    iterations as 4000 independent ones. The log scale fits a positive quantity whose
    noise is multiplicative: the interval never reaches below zero (a symmetric one
    around a noisy median once read `22.9 [-4.23, 50.0]`). For the median this is
    conservative: the pooled median varies less than the mean of block medians."""
    per = np.asarray(per_block, dtype=np.float64)
    per = per[per > 0]
    k = per.size
    if k < 2 or not estimate > 0:
        return Interval(float(estimate), math.nan, math.nan, k, f"{method} (fewer than two blocks: no interval)")
    half = float(_st.t.ppf((1 + confidence) / 2, k - 1) * np.log(per).std(ddof=1) / math.sqrt(k))
    centre = math.log(estimate)
    return Interval(float(estimate), math.exp(centre - half), math.exp(centre + half), k,
                    f"{method} over {k} blocks, Student t on the log scale")


def full_blocks(samples: np.ndarray, block: int) -> list[np.ndarray]:
    """The timing blocks an interval rests on: a short last block is left out (its
    statistic is noisier than the rest)."""
    size = max(int(block), 1)
    bs = blocks(samples, size)
    return bs[:-1] if len(bs) > 1 and bs[-1].size < size // 2 else bs


def headline_interval(samples: np.ndarray, block: int, stat: str = "median",
                      confidence: float = 0.95) -> Interval:
    """Confidence interval of a row's median or mean over all its samples
    (`block_interval` of its blocks' statistics)."""
    x = np.asarray(samples, dtype=np.float64)
    f = statistic(stat)
    per = [f(b) for b in full_blocks(x, block)]
    return block_interval(np.array(per), float(f(x)), confidence, f"batch {stat}s")


# --- two rows: ratios -------------------------------------------------------------------

def verdict_at_most(low: float, high: float, goal: float) -> str:
    """Whether a quantity known to [low, high] is at most `goal`: a verdict only
    where the interval decides it (on a noisy machine it often cannot)."""
    return "met" if high <= goal else "NOT met" if low > goal else "undecided (the interval spans it)"


@dataclass(frozen=True)
class Ratio:
    """Latency of A over latency of B (below 1: A is faster), with a confidence interval,
    and the two figures it is the ratio of (a_ms / b_ms == estimate), so that a reader
    can check the printed ratio against the printed figures."""

    estimate: float
    low: float
    high: float
    paired: bool
    n_blocks: int  # paired: blocks compared; unpaired: 0
    method: str
    stat: str = "median"
    a_ms: float = math.nan
    b_ms: float = math.nan

    @property
    def change_pct(self) -> float:
        return (self.estimate - 1) * 100

    @property
    def change_ci_pct(self) -> tuple[float, float]:
        return ((self.low - 1) * 100, (self.high - 1) * 100)

    @property
    def rel_half_width(self) -> float:
        return rel_half_width(self.estimate, self.low, self.high)

    @property
    def figures_label(self) -> str:
        """What a_ms and b_ms are, for the column or note that prints them."""
        if self.paired:
            return f"geometric mean of the {self.n_blocks} paired block {self.stat}s"
        return f"{self.stat} of all samples"


def paired_ratio(a: np.ndarray, b: np.ndarray, block_size: int, confidence: float = 0.95,
                 seed: int = BOOTSTRAP_SEED, stat: str = "median",
                 n_resamples: int = BOOTSTRAP_RESAMPLES, block_size_b: int | None = None,
                 moving_block: bool = False, keep: np.ndarray | None = None) -> Ratio:
    """A/B from two rows timed in alternating blocks of one run.

    Block k of A and block k of B ran seconds apart, so the machine's slow drift
    cancels in their ratio. The estimate is the geometric mean of the per-block
    ratios, which is the ratio of the two rows' geometric means of their block
    statistics over the paired blocks (the figures it carries); its interval resamples
    whole block pairs. Rows that stopped at different counts (precision-driven runs)
    are compared over the blocks both have.

    moving_block: resample runs of about k^(1/3) neighbouring block pairs (circular
    block bootstrap) instead of single ones. The host's speed moves in phases longer than a round, so neighbouring
    rounds' ratios are correlated; single ones make the interval too narrow (a row's
    figure relative to its run's reference).

    keep: which of the paired blocks to use (e.g. the rounds the host left at normal
    speed); the rest are left out."""
    f = statistic(stat)
    ba = blocks(np.asarray(a), block_size)
    bb = blocks(np.asarray(b), block_size_b or block_size)
    k = min(len(ba), len(bb))
    la = np.log([f(x) for x in ba[:k]])
    lb = np.log([f(y) for y in bb[:k]])
    if keep is not None:
        mask = np.asarray(keep, dtype=bool)[:k]
        la, lb = la[mask], lb[mask]
        k = int(mask.sum())
    logs = la - lb
    est = float(np.exp(logs.mean()))
    a_ms, b_ms = float(np.exp(la.mean())), float(np.exp(lb.mean()))
    if k < 2:
        return Ratio(est, math.nan, math.nan, True, k, "paired blocks (one block: no interval)", stat, a_ms, b_ms)
    run = max(1, round(k ** (1 / 3))) if moving_block else 1
    lo, hi = circular_block_bootstrap(lambda d: np.exp(d.mean(axis=1)), logs, run, confidence=confidence,
                                      n_resamples=n_resamples, seed=seed)
    method = f"paired rounds, circular block bootstrap (runs of {run})" if moving_block \
        else "paired blocks, bootstrap over blocks"
    return Ratio(est, lo, hi, True, k, method, stat, a_ms, b_ms)


def relative_latency(a: np.ndarray, ref: np.ndarray, block_size: int, **kw) -> Ratio:
    """A row's latency relative to the reference timed beside it in the same rounds: the
    one definition of the relative figure (its row columns, its stopping rule, its tests)."""
    return paired_ratio(a, ref, block_size, moving_block=True, **kw)


def paired_rounds_ratio(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> Ratio:
    """A/B from a few paired figures (a profile's rounds: round k of A and of B ran
    seconds apart): the geometric mean of the per-round ratios, with Student's t on
    their logarithms. A bootstrap over five rounds would give an interval far too narrow."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = (a > 0) & (b > 0)
    logs = np.log(a[keep] / b[keep])
    k = logs.size
    if k == 0:
        return Ratio(math.nan, math.nan, math.nan, True, 0, "paired rounds (none with both)")
    est = float(np.exp(logs.mean()))
    if k < 2:
        return Ratio(est, math.nan, math.nan, True, k, "paired rounds (one round: no interval)")
    half = float(_st.t.ppf((1 + confidence) / 2, k - 1) * logs.std(ddof=1) / math.sqrt(k))
    return Ratio(est, float(np.exp(logs.mean() - half)), float(np.exp(logs.mean() + half)), True, k,
                 "paired rounds, Student t on log ratios")


def unpaired_ratio(a: np.ndarray, b: np.ndarray, confidence: float = 0.95, seed: int = BOOTSTRAP_SEED,
                   stat: str = "median", n_resamples: int = BOOTSTRAP_RESAMPLES,
                   block_size: int | None = None) -> Ratio:
    """A/B from rows not timed together: ratio of the statistics, block bootstrap of each.

    The interval covers the noise inside each row; drift of the machine between the
    two runs is not in it, which is why such ratios are labelled."""
    f = statistic(stat)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    a_ms, b_ms = float(f(a)), float(f(b))
    est = a_ms / b_ms
    length = min(boot_block_length(a.size, block_size), boot_block_length(b.size, block_size))
    lo, hi = block_bootstrap(lambda x, y: f(x, axis=1) / f(y, axis=1), a, b, block=length,
                             confidence=confidence, n_resamples=n_resamples, seed=seed)
    return Ratio(est, lo, hi, False, 0, "unpaired (separate timing), block bootstrap", stat, a_ms, b_ms)


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
