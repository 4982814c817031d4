"""Two-sample statistics for latency samples, with numpy only (no scipy here).

Latency samples are not independent: the machine's speed drifts, so consecutive
iterations share it. The bootstrap therefore resamples whole blocks of consecutive
iterations, and when two rows were timed interleaved in the same blocks it draws
the same block indices for both, so drift common to both cancels in the ratio.
Mann-Whitney treats samples as independent; it is reported beside the bootstrap
interval and a verdict needs both, never the U test alone.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Fewer bootstrap blocks than this make the interval coarse and too narrow.
MIN_BOOT_BLOCKS = 20


@dataclass(frozen=True)
class UTest:
    u: float
    z: float
    p: float  # two-sided


def mann_whitney(a: np.ndarray, b: np.ndarray) -> UTest:
    """Two-sided Mann-Whitney U test, normal approximation with tie and continuity correction.

    U counts pairs (a_i, b_j) with a_i > b_j (ties count one half)."""
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    n1, n2 = a.size, b.size
    if n1 == 0 or n2 == 0:
        raise ValueError("Mann-Whitney needs samples on both sides")
    both = np.concatenate([a, b])
    n = both.size
    order = np.argsort(both, kind="mergesort")
    sorted_vals = both[order]
    # Average ranks of tied runs: every value of a run gets the mean of its positions.
    _, first, counts = np.unique(sorted_vals, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks = np.empty(n)
    ranks[order] = np.repeat(avg, counts)
    u = float(ranks[:n1].sum() - n1 * (n1 + 1) / 2.0)
    mu = n1 * n2 / 2.0
    tie = float(np.sum(counts.astype(np.float64) ** 3 - counts)) / (n * (n - 1)) if n > 1 else 0.0
    var = n1 * n2 / 12.0 * ((n + 1) - tie)
    if var <= 0:  # every value identical
        return UTest(u, 0.0, 1.0)
    d = u - mu
    d = math.copysign(max(abs(d) - 0.5, 0.0), d)
    z = d / math.sqrt(var)
    return UTest(u, z, math.erfc(abs(z) / math.sqrt(2.0)))


def boot_block_length(n: int, block_size: int | None) -> int:
    """Length of the resampled blocks: the schedule's block, shortened so that at
    least MIN_BOOT_BLOCKS of them exist (a run of 300 iterations in blocks of 50
    has only 6, and a 6-block bootstrap cannot see its own tails)."""
    block = int(block_size) if block_size and block_size > 0 else n
    return max(1, min(block, n // MIN_BOOT_BLOCKS))


def _blocks(x: np.ndarray, length: int) -> np.ndarray:
    k = x.size // length
    return x[: k * length].reshape(k, length)


def ratio_ci(base: np.ndarray, cur: np.ndarray, *, block_size: int | None = None,
             paired: bool = False, n_boot: int = 1000, confidence: float = 0.99,
             seed: int = 0) -> tuple[float, float]:
    """Percentile interval of median(cur) / median(base) by a block bootstrap.

    paired: the two rows were timed in the same interleaved blocks (same length),
    so one draw of block indices serves both."""
    base = np.asarray(base, dtype=np.float64).ravel()
    cur = np.asarray(cur, dtype=np.float64).ravel()
    rng = np.random.default_rng(seed)
    if paired and base.size == cur.size:
        length = boot_block_length(base.size, block_size)
        bb, cb = _blocks(base, length), _blocks(cur, length)
        idx = rng.integers(0, bb.shape[0], size=(n_boot, bb.shape[0]))
        mb = np.median(bb[idx].reshape(n_boot, -1), axis=1)
        mc = np.median(cb[idx].reshape(n_boot, -1), axis=1)
    else:
        mb = _boot_medians(base, block_size, n_boot, rng)
        mc = _boot_medians(cur, block_size, n_boot, rng)
    ratios = mc / mb
    tail = (1.0 - confidence) / 2.0 * 100.0
    lo, hi = np.percentile(ratios, [tail, 100.0 - tail])
    return float(lo), float(hi)


def _boot_medians(x: np.ndarray, block_size: int | None, n_boot: int, rng) -> np.ndarray:
    blocks = _blocks(x, boot_block_length(x.size, block_size))
    idx = rng.integers(0, blocks.shape[0], size=(n_boot, blocks.shape[0]))
    return np.median(blocks[idx].reshape(n_boot, -1), axis=1)
