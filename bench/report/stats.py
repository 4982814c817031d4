"""Statistics the reports need beyond one row's own: rank agreement (ratios live in bench.ratios).

scipy is not a dependency, so the rank correlations and the bootstrap are written
here with numpy. Every per-row statistic still comes from bench.measurement.
"""
from __future__ import annotations

import math

import numpy as np

from ..ratios import Ratio, blocks, paired_ratio, unpaired_ratio  # noqa: F401  (re-exported)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank."""
    x = np.asarray(x, dtype=float)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x, y) -> float:
    """Spearman's rho: Pearson correlation of the (tie-averaged) ranks."""
    rx, ry = _ranks(x), _ranks(y)
    if len(rx) < 2 or rx.std() == 0 or ry.std() == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def kendall(x, y) -> float:
    """Kendall's tau-b (ties in either list handled), by counting pairs."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    if n < 2:
        return math.nan
    i, j = np.triu_indices(n, k=1)
    dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    s = float(np.sum(dx * dy))
    tx, ty = float(np.sum(dx != 0)), float(np.sum(dy != 0))
    if tx == 0 or ty == 0:
        return math.nan
    return s / math.sqrt(tx * ty)
