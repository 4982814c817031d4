"""Latency ratios between two rows, with confidence intervals.

Shared by the reports (paper comparisons) and the regression gate (verdicts):
rows timed in alternating blocks of one run are compared block by block, so the
machine's drift cancels; rows from separate runs only by their medians.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models.errors import ModbenchError

from .measurement import Measurement


class RatioError(ModbenchError):
    """Two rows that cannot be compared block by block (not timed together)."""


BOOTSTRAP_RESAMPLES = 2000
# Fixed so that a report or a verdict made twice from the same files prints the same intervals.
BOOTSTRAP_SEED = 20240101


@dataclass(frozen=True)
class Ratio:
    """Latency of A over latency of B (below 1: A is faster), with a confidence interval."""

    estimate: float
    low: float
    high: float
    paired: bool
    n_blocks: int  # paired: blocks compared; unpaired: 0
    method: str

    @property
    def change_pct(self) -> float:
        return (self.estimate - 1) * 100

    @property
    def change_ci_pct(self) -> tuple[float, float]:
        return ((self.low - 1) * 100, (self.high - 1) * 100)


def blocks(samples: np.ndarray, block_size: int) -> list[np.ndarray]:
    """The samples of one row cut back into the round-robin blocks they were timed in."""
    return [samples[i:i + block_size] for i in range(0, len(samples), block_size)]


def paired_ratio(a: np.ndarray, b: np.ndarray, block_size: int, confidence: float = 0.95,
                 seed: int = BOOTSTRAP_SEED) -> Ratio:
    """A/B from two rows timed in alternating blocks of one run.

    Block k of A and block k of B ran seconds apart, so the machine's slow drift
    cancels in their ratio. The estimate is the geometric mean of the per-block
    ratios of medians; its interval resamples whole blocks (the unit that is
    independent), which keeps any within-block correlation inside the resample."""
    ba, bb = blocks(np.asarray(a), block_size), blocks(np.asarray(b), block_size)
    if len(ba) != len(bb):
        raise RatioError(f"rows have {len(ba)} and {len(bb)} blocks; they were not timed together")
    logs = np.log([Measurement(x).median / Measurement(y).median for x, y in zip(ba, bb)])
    est = float(np.exp(logs.mean()))
    if len(logs) < 2:
        return Ratio(est, math.nan, math.nan, True, len(logs), "paired blocks (one block: no interval)")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(logs), size=(BOOTSTRAP_RESAMPLES, len(logs)))
    boot = np.exp(logs[idx].mean(axis=1))
    lo, hi = np.quantile(boot, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Ratio(est, float(lo), float(hi), True, len(logs), "paired blocks, bootstrap over blocks")


def unpaired_ratio(a: np.ndarray, b: np.ndarray, confidence: float = 0.95,
                   seed: int = BOOTSTRAP_SEED) -> Ratio:
    """A/B from rows not timed together: ratio of medians, independent bootstrap.

    The interval only covers sampling noise inside each row; drift of the machine
    between the two runs is not in it, which is why such ratios are labelled."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    est = Measurement(a).median / Measurement(b).median
    rng = np.random.default_rng(seed)
    # The bootstrap's medians are of resamples, not of a row: np.median over the
    # resample matrix is the statistic itself, not a second definition of a row's median.
    ma = np.median(a[rng.integers(0, a.size, size=(BOOTSTRAP_RESAMPLES, a.size))], axis=1)
    mb = np.median(b[rng.integers(0, b.size, size=(BOOTSTRAP_RESAMPLES, b.size))], axis=1)
    lo, hi = np.quantile(ma / mb, [(1 - confidence) / 2, (1 + confidence) / 2])
    return Ratio(float(est), float(lo), float(hi), False, 0, "unpaired (separate timing), bootstrap of medians")
