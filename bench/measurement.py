"""One Measurement carries every per-iteration sample and derives every statistic.

Callers never recompute a median: they ask the Measurement. Load time and the
first inference are kept apart from the steady-state samples; warm-up iterations
are not samples at all. The samples remember the blocks they were timed in and the
machine's other work during each block, which is what makes an interval honest and a
busy machine visible.

The headline, `latency_ms`, is this model's latency on this machine at its normal
speed. On a shared VM the host slows whole blocks (about a second) by 1.6-2x with
nothing visible inside the VM. A block ran at normal speed when a probe timed before
and after it (bench/machine_ref) reads within NORMAL_MAX of the machine's reference,
and its own median lies in the row's fast mode (within FAST_BAND of the lowest block
median that two others are close to; this model's fast figure from an earlier run on
this machine replaces that floor when the floor itself is slowed). With the default
statistic (`median`) the headline is the median of the normal-speed blocks' samples;
its interval comes from the spread of those blocks' medians (batch statistics). With
`mean` (the paper's protocol) the headline is the mean of all samples, and the slowed
share stands beside it. Without probe readings (GPU runners, rows timed before the
probe existed) the headline is the median or mean of all samples.

A row is VALID when
  (a) the 95% interval of its headline is within `target_ci` of it (±1% by
      default), the interval taken from block statistics so that drift inside the
      run widens it;
  (b) every percentile it prints has the samples to support it (LoadGen's counts:
      p90 needs 64, p99 662; below that the column is left empty); and
  (c) the machine was not busy: at most `max_disturbed` of its blocks had other
      processes using more than `busy_cores` cores; and
  (d) it is not a figure of a slowed machine: the median headline rests on at
      least MIN_NORMAL_BLOCKS normal-speed blocks; the all-samples mean on blocks
      of which at most `max_disturbed` were slowed.
The coefficient of variation is recorded; it measures the tail, not the precision
of the reported figure, and decides nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from scipy import stats as _st

from .busy import DEFAULT_BUSY_CORES, DEFAULT_MAX_DISTURBED, BlockBusy
from .machine_ref import NORMAL_MAX, PLAUSIBLE_RATIO, Reference, mode_floor
from .stats import (Interval, Ratio, block_interval, blocks, headline_interval, rel_half_width,
                    relative_latency, statistic)

DEFAULT_TARGET_CI = 0.01
# Samples a percentile needs before it is printed (MLPerf LoadGen's minimum counts).
PERCENTILE_MIN_SAMPLES = {90: 64, 99: 662}
# Block statistics spread wider than this are named in an imprecise row's reason.
DRIFT_NOTE = 0.05
# The normal-speed headline needs at least this many normal blocks when the host slowed
# any (an interval from fewer would be a guess about the machine, not a measurement
# of the model); a short row whose every block ran at normal speed needs no more.
MIN_NORMAL_BLOCKS = 4
# A block ran at the row's normal speed when its median is within this factor of the
# row's fast-mode floor: the lowest block median that two others are within MODE_TOL
# of (measured here: two back-to-back Table 1 runs agreed within 1% for 10 of 25
# models with 1.10, 4 with 1.20, 2 with 1.25, and 0 with the probe alone).
FAST_BAND = 1.10

# Why a row is INVALID, one code per check: written once here, stored with every row
# (the `invalid_codes` column), read by every table, report and the gate. Each has
# its short label for a table's validity cell ("INVALID ±4.8% busy") and its meaning.
IMPRECISE = "imprecise"
NO_INTERVAL = "no-interval"
TOO_FEW_NORMAL = "too-few-normal-blocks"
SLOWED = "slowed"
BUSY = "busy"
CODES = {
    IMPRECISE: ("±{rel}", "the headline's 95% interval is wider than the target (--target-ci)"),
    NO_INTERVAL: ("no CI", "fewer than two blocks: no interval"),
    TOO_FEW_NORMAL: ("slowed", "the host slowed too many blocks: the latency at normal speed was not measured"),
    SLOWED: ("slowed", "the all-samples mean includes blocks the host slowed"),
    BUSY: ("busy", "other processes used the CPU while it was timed (--busy-cores)"),
}


@dataclass(frozen=True)
class Headline:
    """The row's headline figure and what it rests on."""

    estimate: float
    low: float
    high: float
    stat: str           # how it was computed, in words (the latency_stat column)
    blocks_used: int
    blocks: int
    slowed_share: float | None   # share of blocks timed at a slowed speed (None: no probe)
    slowed_factor: float | None  # median probe slowdown of those blocks
    speed: float | None          # probe over the used blocks / reference (1.0 = normal)

    @property
    def rel_half_width(self) -> float:
        return rel_half_width(self.estimate, self.low, self.high)


@dataclass(frozen=True)
class Validity:
    """The criteria a row is judged by; recorded with every row."""

    target_ci: float = DEFAULT_TARGET_CI
    stat: str = "median"
    busy_cores: float = DEFAULT_BUSY_CORES
    max_disturbed: float = DEFAULT_MAX_DISTURBED


@dataclass(frozen=True)
class RowValidity:
    """A row's verdict: the codes of the checks it failed (none: VALID) and, for each,
    the sentence that says why in the row's own numbers."""

    codes: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.codes

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def split_codes(text) -> tuple[str, ...]:
    """The codes of a row's `invalid_codes` cell."""
    return tuple(c for c in str(text or "").split(",") if c)


def short_codes(codes, rel_half_width: float | None = None) -> str:
    """'VALID', or 'INVALID' and each code's short label (the full reasons are the
    row's invalid_reason)."""
    if not codes:
        return "VALID"
    rel = rel_half_width if isinstance(rel_half_width, (int, float)) and math.isfinite(rel_half_width) else None
    labels = []
    for code in codes:
        label = CODES.get(code, (code, ""))[0]
        label = label.format(rel=f"{rel:.1%}") if "{rel}" in label and rel is not None else label
        if "{rel}" not in label and label not in labels:
            labels.append(label)
    return " ".join(["INVALID", *labels])


def codes_of_reason(reason: str | None, valid: bool | None) -> tuple[str, ...]:
    """The codes of a row written before the `invalid_codes` column (results schema
    1 and 2), from its reason's sentences as this code wrote them then. Read once,
    when such a file is read; nothing else looks into a reason's text."""
    if valid or not reason:
        return ()
    text = str(reason)
    found = [code for code, words in ((TOO_FEW_NORMAL, "latency at normal speed not measured"),
                                      (NO_INTERVAL, "no interval"), (IMPRECISE, " known to ±"),
                                      (SLOWED, "the all-samples mean includes"), (BUSY, "machine busy"))
             if words in text]
    return tuple(found) or (IMPRECISE,)


@dataclass
class Measurement:
    samples_ms: np.ndarray
    warmup: int = 0
    load_ms: float | None = None
    first_run_ms: float | None = None
    # Extra timings a runner reports apart (e.g. compile_ms, engine_build_ms).
    extra: dict = field(default_factory=dict)
    # Iterations per timed block (None: one block); how busy the machine was in each block; the
    # untimed iterations each block needed before its times settled.
    block: int | None = None
    busy: list[BlockBusy] = field(default_factory=list)
    settle: list[int] = field(default_factory=list)
    # Probe readings (ms) before and after each timed block, shape (blocks, 2), and the
    # machine's reference probe time they are judged against (bench/machine_ref).
    probe_ms: np.ndarray | None = None
    reference: Reference | None = None
    # This model's fast-mode latency on this machine from earlier runs (bench/machine_ref
    # model_figures): what tells a row slowed from its first block to its last.
    known_ms: float | None = None

    def __post_init__(self):
        self.samples_ms = np.asarray(self.samples_ms, dtype=np.float64).ravel()
        if self.probe_ms is not None:
            self.probe_ms = np.asarray(self.probe_ms, dtype=np.float64).reshape(-1, 2)

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
        """The confidence interval of the median or mean of all samples, from block
        statistics (stats.block_interval, the one interval of every figure)."""
        return headline_interval(self.samples_ms, self.block_size, stat, confidence)

    def median_ci(self, confidence: float = 0.95) -> tuple[float, float]:
        iv = self.interval("median", confidence)
        return (iv.low, iv.high)

    def disturbed(self, busy_cores: float = DEFAULT_BUSY_CORES) -> int:
        return sum(b.others_cores > busy_cores for b in self.busy)

    # --- the headline: this model's latency at the machine's normal speed -----------
    # Derived once from the samples and probe readings (a Measurement is not changed
    # after it is made): every statistic below reads these.

    @cached_property
    def _blocks(self) -> list[np.ndarray]:
        return blocks(self.samples_ms, self.block_size)

    @cached_property
    def _block_medians(self) -> np.ndarray:
        return np.array([np.median(b) for b in self._blocks])

    @cached_property
    def _speeds(self) -> np.ndarray | None:
        probe = self.probe_ms
        if probe is None or self.reference is None or probe.shape[0] != len(self._blocks):
            return None
        return probe.max(axis=1) / self.reference.ms

    def block_speeds(self) -> np.ndarray | None:
        """Each block's slowdown against the machine's reference (1.0 = normal speed):
        the slower of the probe readings before and after it. None without a probe."""
        return self._speeds

    @cached_property
    def _floor(self) -> float | None:
        if self._speeds is None:
            return None
        floor = mode_floor(self._block_medians[self._speeds <= NORMAL_MAX])
        if floor is not None and self._known is not None and floor > NORMAL_MAX * self._known:
            return self._known
        return floor

    @cached_property
    def _known(self) -> float | None:
        """This model's stored fast figure, where it is believable for this row: within
        PLAUSIBLE_RATIO of the row's fastest normal-speed block (a host slows 1.6-2x;
        a figure further off is another machine's or a damaged one)."""
        if not self.known_ms or self._speeds is None:
            return None
        fastest = self._block_medians[self._speeds <= NORMAL_MAX]
        if fastest.size == 0 or not 1 / PLAUSIBLE_RATIO <= float(fastest.min()) / self.known_ms <= PLAUSIBLE_RATIO:
            return None
        return float(self.known_ms)

    def fast_floor(self) -> float | None:
        """The row's fast-mode floor: the lowest block median (among blocks the probe
        calls normal) that two others are within MODE_TOL of (machine_ref.mode_floor);
        this model's stored fast figure instead when even that floor is a slowed
        machine's."""
        return self._floor

    @cached_property
    def _normal(self) -> np.ndarray | None:
        if self._speeds is None:
            return None
        ok = self._speeds <= NORMAL_MAX
        if self._floor is not None:
            ok &= self._block_medians <= FAST_BAND * self._floor
        return ok

    def normal_blocks(self) -> np.ndarray | None:
        """Which blocks ran at normal speed: the probe says so on both sides, and the
        block's own median is within FAST_BAND of the row's fast-mode floor. (The probe
        runs on one thread; the host slows two-thread work it does not see, which the
        block medians show as a second mode 1.6-2x above the first.)"""
        return self._normal

    @cached_property
    def _headlines(self) -> dict:
        return {}

    def headline(self, stat: str = "median", confidence: float = 0.95) -> Headline:
        """The row's headline figure (see the module docstring), derived once per statistic."""
        key = (stat, confidence)
        if key not in self._headlines:
            self._headlines[key] = self._headline(stat, confidence)
        return self._headlines[key]

    def _headline(self, stat: str, confidence: float) -> Headline:
        bs, speeds, normal = self._blocks, self._speeds, self._normal
        if speeds is None:
            iv = self.interval(stat, confidence)
            return Headline(iv.estimate, iv.low, iv.high, f"{stat} of all samples (no machine probe)",
                            iv.n_blocks, len(bs), None, None, None)
        probe = self.probe_ms
        slowed = ~normal
        share = float(slowed.mean()) if slowed.size else 0.0
        factor = None
        if slowed.any():
            # How much slower the set-aside blocks ran: by the probe, or by their own
            # time against the normal blocks where the probe missed the slowdown.
            own = self._block_medians / self._floor if self._floor else np.ones_like(self._block_medians)
            factor = float(np.median(np.maximum(speeds, own)[slowed]))
        if stat == "mean":
            iv = self.interval("mean", confidence)
            speed = float(np.median(probe.mean(axis=1)) / self.reference.ms)
            return Headline(iv.estimate, iv.low, iv.high, "mean of all samples (paper protocol)",
                            iv.n_blocks, len(bs), share, factor, speed)
        used = [b for b, ok in zip(bs, normal) if ok]
        if len(used) < min(MIN_NORMAL_BLOCKS, len(bs)) or not used:
            # Too few blocks at normal speed to say anything about it: no figure at all
            # rather than one that may be a slowed machine's.
            return Headline(math.nan, math.nan, math.nan, "median at normal speed (not measured)",
                            len(used), len(bs), share, factor, None)
        level = float(np.median(probe.mean(axis=1)[normal]))
        est = float(np.median(np.concatenate(used)))
        # The one interval (stats.block_interval) over the used blocks' medians; a
        # short last block is left out as everywhere.
        size = max(self.block_size // 2, 1)
        iv = block_interval(np.array([np.median(b) for b in used if b.size >= size]), est, confidence,
                            "batch medians of the normal-speed blocks")
        return Headline(est, iv.low, iv.high, "median of the normal-speed blocks",
                        len(used), len(bs), share, factor, level / self.reference.ms)

    def headline_samples(self, stat: str = "median") -> np.ndarray:
        """The samples the headline rests on: the normal-speed blocks' samples (their
        median is the headline); all samples for the mean or without a probe. What the
        gate compares."""
        normal = self._normal
        if normal is None or stat == "mean" or not normal.any():
            return self.samples_ms
        return np.concatenate([b for b, ok in zip(self._blocks, normal) if ok])

    def validity(self, v: Validity = Validity()) -> RowValidity:
        """The row's verdict: a code and a sentence for each check it fails."""
        found: list[tuple[str, str]] = []
        h = self.headline(v.stat)
        if h.slowed_share is not None and v.stat == "median" and math.isnan(h.estimate):
            # At this run's share of normal blocks, how many iterations would give enough.
            normal_share = max(1 - h.slowed_share, 0.1)
            enough = math.ceil(MIN_NORMAL_BLOCKS / normal_share) * self.block_size
            found.append((TOO_FEW_NORMAL,
                          f"host slowed for {h.slowed_share:.0%} of blocks ({h.slowed_factor or 0:.1f}x); "
                          f"latency at normal speed not measured ({h.blocks_used} normal "
                          f"block{'s' if h.blocks_used != 1 else ''}, need {MIN_NORMAL_BLOCKS}: at this share, "
                          f"--iters {max(enough, self.n + self.block_size)} or a quieter machine)"))
        elif math.isnan(h.low):
            found.append((NO_INTERVAL, f"no interval: {h.blocks_used} block (need 2 or more)"))
        elif h.rel_half_width > v.target_ci:
            used = (f"{h.blocks_used} of {h.blocks} blocks at normal speed"
                    if h.slowed_share is not None and v.stat == "median" else f"{h.blocks_used} blocks")
            found.append((IMPRECISE, f"{v.stat} known to ±{h.rel_half_width:.1%}, not ±{v.target_ci:.1%} "
                                     f"({used}, {self.n} iterations{self._drift(v.stat)})"))
        if v.stat == "mean" and h.slowed_share is not None and h.slowed_share > v.max_disturbed:
            found.append((SLOWED, f"host slowed for {h.slowed_share:.0%} of blocks ({h.slowed_factor or 0:.1f}x): "
                                  "the all-samples mean includes them"))
        if self.busy:
            d = self.disturbed(v.busy_cores)
            if d > v.max_disturbed * len(self.busy):
                worst = max(b.others_cores for b in self.busy)
                found.append((BUSY, f"machine busy: {d / len(self.busy):.0%} of blocks had other processes "
                                    f"using > {v.busy_cores:g} cores (up to {worst:.2f})"))
        return RowValidity(tuple(c for c, _ in found), tuple(r for _, r in found))

    def _drift(self, stat: str) -> str:
        """Why an interval is wide, in the user's terms: how far the block statistics
        moved. On a steady machine they agree within a few percent; on a shared VM whose
        speed moves with its neighbours they spread by tens of percent, and no number of
        iterations makes the row's figure reproducible."""
        f = statistic(stat)
        per_block = np.array([f(b) for b in self._blocks])
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
        verdict = self.validity(v)
        head = self.headline(v.stat)
        ref = self.reference if self.probe_ms is not None else None
        busy_blocks = self.busy
        mhz = [b.mhz for b in busy_blocks if b.mhz]
        return {
            "iters": self.n, "warmup": self.warmup,
            "latency_ms": _finite(head.estimate), "latency_ci_low_ms": _finite(max(head.low, 0.0)),
            "latency_ci_high_ms": _finite(head.high), "latency_stat": head.stat,
            "blocks_used": head.blocks_used, "slowed_share": head.slowed_share,
            "slowed_factor": head.slowed_factor, "machine_speed": head.speed,
            "machine_ref_ms": ref.ms if ref else None, "machine_ref_source": ref.source if ref else None,
            "model_ref_ms": self._known if ref else None,
            "mean_ms": self.mean, "std_ms": self.std, "median_ms": self.median,
            "median_ci_low_ms": _finite(med.low), "median_ci_high_ms": _finite(med.high),
            "mean_ci_low_ms": _finite(mean.low), "mean_ci_high_ms": _finite(mean.high),
            "headline_stat": v.stat, "ci_rel_half_width": _finite(head.rel_half_width),
            "target_ci": v.target_ci,
            "p90_ms": self.percentile(90), "p99_ms": self.percentile(99),
            "min_ms": self.min, "max_ms": self.max, "cv": self.cv,
            "valid": verdict.valid, "invalid_reason": verdict.reason,
            "invalid_codes": ",".join(verdict.codes),
            "load_ms": self.load_ms, "first_run_ms": self.first_run_ms,
            "blocks": len(busy_blocks) or None,
            "disturbed_blocks": self.disturbed(v.busy_cores) if busy_blocks else None,
            "others_cpu_max": max(b.others_cores for b in busy_blocks) if busy_blocks else None,
            "others_cpu_mean": float(np.mean([b.others_cores for b in busy_blocks])) if busy_blocks else None,
            "steal_pct": float(np.mean([b.steal_pct for b in busy_blocks])) if busy_blocks else None,
            "cpu_mhz": float(np.median(mhz)) if mhz else None,
            "settle_iters_mean": float(np.mean(self.settle)) if self.settle else None,
        }


def from_row(row, samples, probe=None) -> Measurement:
    """A stored row's Measurement again: its samples in their blocks, and, where the row
    was probed, the probe readings and the reference it was judged against.
    row: a typed row as the store reads it (bench/schema.py: None where empty)."""
    ref_ms = row.get("machine_ref_ms")
    ref = Reference(ref_ms, row.get("machine_ref_source") or "") if probe is not None and ref_ms else None
    return Measurement(samples, block=row.get("block_size") or None,
                       probe_ms=probe if ref is not None else None, reference=ref,
                       known_ms=row.get("model_ref_ms"))


def _finite(x: float) -> float | None:
    """A figure as a row stores it: None when it is not a finite number."""
    return None if x is None or not math.isfinite(x) else float(x)


@dataclass(frozen=True)
class Relative:
    """A row's latency relative to the reference timed beside it in the same rounds."""

    ratio: Ratio
    normal_rounds: int | None   # rounds whose two blocks ran at normal speed (None: no probe)
    slowed: bool                # too few of them: the figure is of all rounds, a slowed host's

    @property
    def codes(self) -> tuple[str, ...]:
        """The checks it fails whatever the target (its precision is judged apart)."""
        return (SLOWED,) if self.slowed else ()


def relative_rounds(m: Measurement, ref: Measurement) -> tuple[np.ndarray | None, int | None, bool]:
    """The rounds a figure of `m` relative to `ref` rests on: (which rounds, None for
    all; how many had both blocks at normal speed, None without probe readings; whether
    too few did, MIN_NORMAL_BLOCKS, so that the figure is a slowed host's). The row's
    relative figure and the gate's relative comparison both choose them here."""
    na, nb = m.normal_blocks(), ref.normal_blocks()
    if na is None or nb is None:
        return None, None, False
    k = min(len(na), len(nb))
    both = na[:k] & nb[:k]
    normal = int(both.sum())
    if normal < MIN_NORMAL_BLOCKS:
        return None, normal, True
    return both, normal, False


def relative_figure(m: Measurement, ref: Measurement, **kw) -> Relative:
    """`m` over `ref`, paired round by round, over the rounds in which both blocks ran at
    normal speed (the probe and each row's fast mode say so). The host's slow phase does
    not slow every model alike: on this project's VM the relative figures of three
    models fell 4-9% in slowed runs, with tight intervals, so pairing alone does not
    cancel it. With fewer than MIN_NORMAL_BLOCKS such rounds the figure is of all
    rounds and says so (`slowed`)."""
    keep, normal, slowed = relative_rounds(m, ref)
    r = relative_latency(m.samples_ms, ref.samples_ms, m.block_size, keep=keep, **kw)
    return Relative(r, normal, slowed)
