"""One Measurement carries every per-iteration sample and derives every statistic.

Callers never recompute a median: they ask the Measurement. Load time and the
first inference are kept apart from the steady-state samples; warm-up iterations
are not samples at all.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# A row with fewer samples than this cannot support a p99 or a tight interval.
MIN_VALID_ITERS = 100
# Above this coefficient of variation the run was too disturbed to publish.
MAX_VALID_CV = 0.30


@dataclass
class Measurement:
    samples_ms: np.ndarray
    warmup: int = 0
    load_ms: float | None = None
    first_run_ms: float | None = None
    # Extra timings a runner reports apart (e.g. compile_ms, engine_build_ms).
    extra: dict = field(default_factory=dict)

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

    def percentile(self, q: float) -> float:
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

    def median_ci(self, confidence: float = 0.95) -> tuple[float, float]:
        """Distribution-free interval of the median from order statistics.

        The number of samples below the true median is Binomial(n, 1/2); the
        normal approximation gives the ranks that bracket it."""
        n = self.n
        if n < 2:
            return (self.median, self.median)
        z = _z(confidence)
        half = z * math.sqrt(n) / 2
        lo = max(int(math.floor(n / 2 - half)), 0)
        hi = min(int(math.ceil(n / 2 + half)), n - 1)
        s = np.sort(self.samples_ms)
        return (float(s[lo]), float(s[hi]))

    def validity(self, min_iters: int = MIN_VALID_ITERS, max_cv: float = MAX_VALID_CV) -> tuple[bool, str]:
        reasons = []
        if self.n < min_iters:
            reasons.append(f"too few iterations ({self.n} < {min_iters})")
        if self.n > 1 and self.cv > max_cv:
            reasons.append(f"CV {self.cv:.3f} above {max_cv}")
        return (not reasons, "; ".join(reasons))

    def summary(self, min_iters: int = MIN_VALID_ITERS, max_cv: float = MAX_VALID_CV) -> dict:
        """The statistics as result-row columns (milliseconds)."""
        lo, hi = self.median_ci()
        valid, reason = self.validity(min_iters, max_cv)
        return {
            "iters": self.n, "warmup": self.warmup,
            "mean_ms": self.mean, "std_ms": self.std, "median_ms": self.median,
            "median_ci_low_ms": lo, "median_ci_high_ms": hi,
            "p90_ms": self.percentile(90), "p99_ms": self.percentile(99),
            "min_ms": self.min, "max_ms": self.max, "cv": self.cv,
            "valid": valid, "invalid_reason": reason,
            "load_ms": self.load_ms, "first_run_ms": self.first_run_ms,
        }


def _z(confidence: float) -> float:
    from statistics import NormalDist
    return NormalDist().inv_cdf(0.5 + confidence / 2)
