"""Where a model's latency stepped: change points in its history, commit by commit.

A series is one measurement (model, variant, runtime, device, precision, batch,
resolution, threads) on one machine (its fingerprint), in commit order. Each commit
is one point: the geometric mean of the runs added at it. The figure is analysed on
the log scale, where a step is a ratio whatever the model's speed.

Method (docs/history.md):
1. Search: ruptures' PELT with a weighted least-squares cost over the log figures,
   scaled by the series' noise (a robust spread of commit-to-commit differences, never
   below the runs' own intervals); penalty `penalty * log(n)` per change point.
   INVALID rows take part with weight `invalid_weight` (they are evidence, weaker).
2. Confirmation: each candidate is tested against its neighbouring segments (Student t
   on the weighted log means, the residual spread of the fit); the weakest that fails
   `alpha` or is smaller than `min_effect` is removed and the rest tested again.
Each change point has its size (after/before), a 95% interval, and the commit range
(last commit before .. first commit after) that holds the change.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import ruptures as rpt
from ruptures.base import BaseCost
from scipy import stats as _st

from modbench.common.errors import UsageError

from ..report.headline import NOT_MEASURED
from .store import SERIES_FIELDS, Entry, Point


@dataclass(frozen=True)
class Params:
    penalty: float = 3.0         # PELT's penalty per change point, in units of log(n)
    alpha: float = 0.01          # confirmation: two-sided p below this
    min_effect: float = 0.01     # a step smaller than 1% is not reported
    invalid_weight: float = 0.25  # an INVALID row's weight against a valid one's 1
    # A row whose latency at normal speed was not measured (the host slowed too many of
    # its blocks) carries a slowed machine's median: weaker evidence still.
    unmeasured_weight: float = 0.05
    min_size: int = 2            # commits on each side of a change point


@dataclass(frozen=True)
class CommitPoint:
    commit: str
    date: str
    subject: str
    branch: str
    value_ms: float
    low_ms: float | None
    high_ms: float | None
    valid: bool
    invalid_reason: str | None
    runs: int
    measured: bool = True  # False: every run's figure is a slowed machine's median (not measured)


@dataclass(frozen=True)
class ChangePoint:
    index: int           # the first point after the change
    before: str          # the last commit before it
    after: str           # the first commit after it
    subject: str         # the first commit after it, its subject
    before_ms: float     # the level of the segment before and after (geometric means)
    after_ms: float
    ratio: float
    low: float
    high: float
    p: float
    n_before: int
    n_after: int
    invalid_before: int
    invalid_after: int

    @property
    def slower(self) -> bool:
        return self.ratio > 1

    @property
    def range(self) -> str:
        return f"{self.before[:10]}..{self.after[:10]}"

    @property
    def change_pct(self) -> float:
        return (self.ratio - 1) * 100


@dataclass
class Series:
    key: tuple
    points: list[CommitPoint]
    changes: list[ChangePoint] = field(default_factory=list)

    def field(self, name: str):
        return self.key[SERIES_FIELDS.index(name)]

    @property
    def label(self) -> str:
        k = dict(zip(SERIES_FIELDS, self.key))
        t = "" if k["threads"] is None else f" t{k['threads']}"
        return (f"{k['model']} {k['variant']} {k['runtime']}{t} b{k['batch']} r{k['resolution']} "
                f"{k['precision']} on {k['machine']}")

    def level_after(self, i: int) -> float:
        """The level (ms) of the segment that starts at point i."""
        starts = [0] + [c.index for c in self.changes] + [len(self.points)]
        for s, e in zip(starts, starts[1:]):
            if s <= i < e:
                return _level([p.value_ms for p in self.points[s:e]])
        raise IndexError(i)


def _level(values) -> float:
    return float(np.exp(np.mean(np.log(values))))


# --- series from entries ------------------------------------------------------------

def build_series(entries: list[Entry], *, branch: str | None = None, machine: str | None = None,
                 runtime: str | None = None, model: str | None = None) -> list[Series]:
    """The series of the entries (already in commit order), filtered: `branch` and
    `runtime` exactly, `machine` as a part of the fingerprint, `model` exactly."""
    grouped: dict[tuple, dict[str, list[tuple[Entry, Point]]]] = {}
    for e in entries:
        if branch is not None and e.branch != branch:
            continue
        for p in e.points:
            if (runtime is not None and p.runtime != runtime) or (machine is not None and machine not in p.machine) \
                    or (model is not None and p.model != model):
                continue
            grouped.setdefault(p.series, {}).setdefault(e.commit, []).append((e, p))
    out = []
    for key, by_commit in grouped.items():
        out.append(Series(key, [_commit_point(runs) for runs in by_commit.values()]))
    return sorted(out, key=lambda s: tuple(str(x) for x in s.key))


def _commit_point(runs: list[tuple[Entry, Point]]) -> CommitPoint:
    """Several runs at one commit: the geometric mean of the valid ones (of all when none
    is valid), the widest interval among them."""
    e = runs[0][0]
    valid = [p for _, p in runs if p.valid]
    use = valid or [p for _, p in runs]
    measured = [p for p in use if p.figure != NOT_MEASURED]
    use = measured or use
    lows = [p.low_ms for p in use if p.low_ms is not None]
    highs = [p.high_ms for p in use if p.high_ms is not None]
    reasons = "; ".join(dict.fromkeys(p.invalid_reason or "invalid" for _, p in runs if not p.valid))
    return CommitPoint(e.commit, e.commit_date, e.subject, e.branch, _level([p.value_ms for p in use]),
                       min(lows) if lows else None, max(highs) if highs else None, bool(valid),
                       None if valid else reasons, len(runs), bool(measured))


# --- detection ------------------------------------------------------------------------

class WeightedL2(BaseCost):
    """Weighted least squares of a segment around its weighted mean (ruptures' cost
    interface; cumulative sums make each segment O(1))."""

    model = "weighted_l2"
    min_size = 1

    def __init__(self, weights):
        self.weights = np.asarray(weights, dtype=np.float64)

    def fit(self, signal):
        self.signal = np.asarray(signal, dtype=np.float64).reshape(-1, 1)  # ruptures reads its shape
        y = self.signal[:, 0]
        w = self.weights
        self._w = np.concatenate([[0.0], np.cumsum(w)])
        self._wy = np.concatenate([[0.0], np.cumsum(w * y)])
        self._wyy = np.concatenate([[0.0], np.cumsum(w * y * y)])
        return self

    def error(self, start, end):
        sw = self._w[end] - self._w[start]
        swy = self._wy[end] - self._wy[start]
        return float(self._wyy[end] - self._wyy[start] - swy * swy / sw) if sw > 0 else 0.0


def _noise(y: np.ndarray, points: list[CommitPoint]) -> float:
    """The series' spread on the log scale: the robust spread of commit-to-commit
    differences (one step moves one difference), never below the runs' own intervals."""
    d = np.diff(y)
    mad = 1.4826 * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2) if d.size else 0.0
    widths = [(math.log(p.high_ms) - math.log(p.low_ms)) / (2 * 1.96) for p in points
              if p.low_ms is not None and p.high_ms is not None and p.high_ms > p.low_ms]
    within = float(np.median(widths)) if widths else 0.0
    return max(mad, within, 1e-4)


def _segments_test(y, w, bkps: list[int], floor: float):
    """For each change point of `bkps` (indices where a segment starts): (t, p, diff,
    half-width of the 95% interval) on the log scale. The weights are relative
    precisions: an INVALID point's variance is 1/invalid_weight times a valid one's,
    so a series of INVALID points only is judged as one of valid points, and a
    mixed one leans on its valid points."""
    edges = [0, *bkps, len(y)]
    means, weight = [], []
    resid = 0.0
    for s, e in zip(edges, edges[1:]):
        ws, ys = w[s:e], y[s:e]
        m = float(np.sum(ws * ys) / np.sum(ws))
        means.append(m)
        weight.append(float(np.sum(ws)))
        resid += float(np.sum(ws * (ys - m) ** 2))
    # Degrees of freedom in points of the heaviest weight: five INVALID points are not
    # five valid ones' worth of evidence about the spread either.
    df = max(float(np.sum(w) / np.max(w)) - len(means), 1.0)
    sigma = max(math.sqrt(resid / df), floor)  # of a valid point
    out = []
    for j in range(len(bkps)):
        se = sigma * math.sqrt(1 / weight[j] + 1 / weight[j + 1])
        diff = means[j + 1] - means[j]
        t = diff / se
        out.append((t, float(2 * _st.t.sf(abs(t), df)), diff, float(_st.t.ppf(0.975, df)) * se))
    return out


def detect(series: Series, params: Params = Params()) -> list[ChangePoint]:
    pts = series.points
    n = len(pts)
    if n < 2 * params.min_size:
        return []
    y = np.log([p.value_ms for p in pts])
    w = np.array([1.0 if p.valid else params.invalid_weight if p.measured else params.unmeasured_weight
                  for p in pts])
    sigma = _noise(y, pts)
    # The search sees the series in units of its noise, so the penalty means the same
    # for a 0.1 ms model and a 100 ms one.
    algo = rpt.Pelt(custom_cost=WeightedL2(w), min_size=params.min_size, jump=1).fit((y - y.mean()) / sigma)
    bkps = [b for b in algo.predict(pen=params.penalty * math.log(n)) if b < n]
    floor = _noise(np.zeros(0), pts)  # the runs' own intervals only
    while bkps:
        tests = _segments_test(y, w, bkps, floor)
        failing = [j for j, (t, p, diff, _) in enumerate(tests)
                   if p >= params.alpha or abs(math.exp(diff) - 1) < params.min_effect]
        if not failing:
            break
        bkps.pop(min(failing, key=lambda j: abs(tests[j][0])))  # the weakest goes first
    if not bkps:
        return []
    edges = [0, *bkps, n]
    out = []
    for j, (t, p, diff, half) in enumerate(_segments_test(y, w, bkps, floor)):
        s, b, e = edges[j], edges[j + 1], edges[j + 2]
        out.append(ChangePoint(index=b, before=pts[b - 1].commit, after=pts[b].commit, subject=pts[b].subject,
                               before_ms=_level([q.value_ms for q in pts[s:b]]),
                               after_ms=_level([q.value_ms for q in pts[b:e]]),
                               ratio=math.exp(diff), low=math.exp(diff - half), high=math.exp(diff + half), p=p,
                               n_before=b - s, n_after=e - b,
                               invalid_before=sum(not q.valid for q in pts[s:b]),
                               invalid_after=sum(not q.valid for q in pts[b:e])))
    return out


def analyse(series: list[Series], params: Params = Params()) -> list[Series]:
    for s in series:
        s.changes = detect(s, params)
    return series


# --- regressions ------------------------------------------------------------------------

@dataclass(frozen=True)
class Regression:
    series: Series
    change: ChangePoint
    latest_ratio: float   # the latest level against the level before the change
    threshold: float


def commit_order(entries: list[Entry]) -> list[str]:
    return list(dict.fromkeys(e.commit for e in entries))


def resolve_commit(entries: list[Entry], rev: str) -> str:
    """A recorded commit named by its id or a prefix of it (one line otherwise)."""
    known = commit_order(entries)
    hits = [c for c in known if c == rev] or [c for c in known if c.startswith(rev)]
    if len(hits) != 1:
        what = "is not a commit recorded in the history" if not hits else f"names {len(hits)} recorded commits"
        raise UsageError(f"--since {rev!r} {what}")
    return hits[0]


def open_regressions(series: list[Series], order: list[str], *, threshold: float, per_model: dict[str, float],
                     since: str | None = None) -> list[Regression]:
    """Slowdowns past the model's threshold whose change came after `since` (a recorded
    commit) and that the latest figures still show (the latest level against the level
    before the change)."""
    pos = {c: i for i, c in enumerate(order)}
    out = []
    for s in series:
        limit = per_model.get(s.field("model"), threshold)
        latest = s.level_after(len(s.points) - 1)
        for c in s.changes:
            if not c.slower or c.ratio < 1 + limit:
                continue
            if since is not None and pos[c.after] <= pos[since]:
                continue
            if latest / c.before_ms >= 1 + limit:
                out.append(Regression(s, c, latest / c.before_ms, limit))
    return out
