"""How sessions share the machine while they are timed.

round-robin: every session runs one block in turn, round after round. On these VMs
  the machine's speed drifts ~10% between minutes; interleaving makes the drift hit
  every model alike, so ratios between them stay meaningful.
sequential: each session runs all its blocks before the next starts.

How many iterations: a fixed count (`iters`, the paper's protocol is 4000), or
precision-driven (`target` given): after `min_iters`, a session stops being timed
once the interval of its headline statistic is within the target precision; the
others go on, up to `iters` each, or until `time_budget_s` is spent.

The block-switch transient: after another session's block, the first iterations of
a block run slower (its weights and activations were evicted from the caches, and
ONNX Runtime's worker threads went to sleep). Each block therefore starts with
untimed iterations until an iteration is within SETTLE_TOL of the session's last
block median (at least `block_warmup`, at most SETTLE_MAX more); the count each
block needed is recorded.

The machine's speed: with a `probe` (bench/machine_ref), a probe reading is taken
before every block (after a short pause, so the last session's spinning workers are
idle; the probe itself never spins) and one after the last; each block keeps the readings on both sides of it.
The stopping rule then counts only what the headline uses: the blocks that ran at
the machine's normal speed, against the reference that `reference(readings, final)`
gives for the readings so far.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import load
from .machine_ref import Probe, Reference
from .measurement import MIN_NORMAL_BLOCKS, Measurement
from .runners.base import Session

SCHEDULES = ("round-robin", "sequential")
# Lets ONNX Runtime's spinning workers of the previous session go idle before the
# next session's block starts, so they do not steal its cores.
SETTLE_S = 0.005
# An untimed iteration within this of the last block's median ends a block's warm-up.
SETTLE_TOL = 0.10
SETTLE_MAX = 10


@dataclass(frozen=True)
class Target:
    """Precision-driven stopping: stop a session once its headline interval is this tight."""

    target_ci: float = 0.01
    stat: str = "median"
    min_iters: int = 300
    time_budget_s: float | None = None


@dataclass
class _State:
    session: Session
    chunks: list
    marks: list
    settle: list
    first: float | None = None
    last_median: float | None = None
    # Relative half-width of the headline interval after the last block (precision-driven
    # runs only): the stopping rule and the progress line both read it.
    width: float = math.inf
    # Iterations in the blocks the headline uses (all blocks without a probe).
    used: int = 0
    blocks_used: int = 0
    done: bool = False
    probe_pairs: list = None

    def __post_init__(self):
        self.probe_pairs = []

    @property
    def n(self) -> int:
        return sum(c.size for c in self.chunks)

    def samples(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.empty(0)


class RoundStatus:
    """What the progress line shows after each round of a precision-driven run:
    sessions still timed, the loosest interval among them, the time still needed
    (never more than the budget left), the time spent and the budget."""

    def __init__(self, active: int, worst: float, eta_s: float | None, elapsed_s: float = 0.0,
                 budget_s: float | None = None):
        self.active, self.worst, self.eta_s = active, worst, eta_s
        self.elapsed_s, self.budget_s = elapsed_s, budget_s


class _ProbeLog:
    """Probe readings in time order; each block gets the reading before it and the
    next one after it (in round-robin, the reading after one block is the reading
    before the next)."""

    def __init__(self, probe: Probe | None):
        self.probe = probe
        self.readings: list[float] = []
        self._fresh: float | None = None
        self._pending: list[list] = []

    def reading(self) -> float | None:
        """A reading taken now, unless one was taken with no block since."""
        if self.probe is None:
            return None
        if self._fresh is None:
            # The last block's spinning workers go idle first (the probe never spins).
            time.sleep(SETTLE_S)
            self._fresh = self.probe.read()
            self.readings.append(self._fresh)
            for pair in self._pending:
                pair[1] = self._fresh
            self._pending = []
        return self._fresh

    def block(self, st: "_State", before: float | None) -> None:
        if self.probe is None:
            return
        pair = [before, math.nan]
        st.probe_pairs.append(pair)
        self._pending.append(pair)
        self._fresh = None


def time_sessions(sessions: list[Session], iters: int, warmup: int, block: int, schedule: str,
                  block_warmup: int = 0,
                  progress: Callable[[int], None] = lambda n: None,
                  target: Target | None = None,
                  on_round: Callable[[RoundStatus], None] = lambda s: None,
                  probe: Probe | None = None,
                  reference: Callable[[list[float], bool], Reference | None] | None = None,
                  known_ms: list[float | None] | None = None) -> list[Measurement]:
    """Time every session; one Measurement each. `iters` is the count (fixed) or the
    ceiling (with a precision `target`). With a `probe` and a `reference`, every
    Measurement carries its blocks' probe readings and the machine's reference;
    `known_ms` gives each session's model its fast figure from earlier runs, if any."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}")
    if probe is not None and reference is None:
        raise ValueError("a probe needs a reference function")
    states = [_State(s, [], [], []) for s in sessions]
    known = list(known_ms) if known_ms is not None else [None] * len(sessions)
    probes = _ProbeLog(probe)
    t_start = time.monotonic()

    def measured(st: _State, ref: Reference | None, k: float | None) -> Measurement:
        return Measurement(st.samples(), warmup=warmup, load_ms=st.session.load_ms, first_run_ms=st.first,
                           block=block, loads=load.block_loads(st.marks), settle=st.settle,
                           probe_ms=np.array(st.probe_pairs) if probe is not None else None,
                           reference=ref, known_ms=k)

    def update_precision(active: list[_State]) -> None:
        """The headline's precision and what it rests on, for the stopping rule."""
        if target is None:
            return
        probes.reading()  # closes the blocks just timed
        ref = reference(probes.readings, False) if probe is not None else None
        for st in active:
            m = Measurement(st.samples(), block=block,
                            probe_ms=np.array(st.probe_pairs) if probe is not None else None, reference=ref,
                            known_ms=known[states.index(st)])
            h = m.headline(target.stat)
            st.width = h.rel_half_width
            normal = m.normal_blocks()
            if normal is None or target.stat == "mean":
                st.used, st.blocks_used = st.n, len(st.chunks)
            else:
                st.used = int(sum(c.size for c, ok in zip(st.chunks, normal) if ok))
                st.blocks_used = int(normal.sum())

    def warm(st: _State) -> None:
        st.first = st.session.first_run()
        if warmup:
            w = st.session.run_block(warmup)
            st.last_median = float(np.median(w))
        progress(1 + warmup)

    def one_block(st: _State) -> None:
        n = min(block, iters - st.n)
        before = probes.reading()
        extra = _settle(st, block_warmup)
        progress(extra)
        a = load.take()
        x = st.session.run_block(n)
        b = load.take()
        st.chunks.append(x)
        st.marks.append((a, b))
        st.settle.append(extra)
        probes.block(st, before)
        st.last_median = float(np.median(x))
        progress(n)

    def finished(st: _State) -> bool:
        if st.n >= iters:
            return True
        if target is None or st.used < target.min_iters:
            return False
        if probe is not None and target.stat == "median" and st.blocks_used < MIN_NORMAL_BLOCKS:
            return False
        return st.width <= target.target_ci

    def over_budget() -> bool:
        return (target is not None and target.time_budget_s is not None
                and time.monotonic() - t_start > target.time_budget_s)

    if schedule == "sequential":
        for st in states:
            warm(st)
            while not st.done:
                one_block(st)
                update_precision([st])
                st.done = finished(st) or over_budget()
    else:
        for st in states:
            warm(st)
            time.sleep(SETTLE_S)
        while not all(st.done for st in states):
            t_round = time.monotonic()
            active = [st for st in states if not st.done]
            for st in active:
                one_block(st)
                if len(sessions) > 1:
                    time.sleep(SETTLE_S)
            update_precision(active)
            budget = over_budget()
            for st in active:
                st.done = budget or finished(st)
            if target is not None:
                on_round(_status(states, target, block, iters, time.monotonic() - t_round,
                                 time.monotonic() - t_start))
    probes.reading()  # the reading after the last block
    ref = reference(probes.readings, True) if probe is not None else None
    return [measured(st, ref, k) for st, k in zip(states, known)]


def _settle(st: _State, minimum: int) -> int:
    """Untimed iterations until the block's times have settled; returns how many."""
    if minimum:
        st.session.run_block(minimum)
    if st.last_median is None:
        return minimum
    extra = 0
    while extra < SETTLE_MAX:
        t = float(st.session.run_block(1)[0])
        extra += 1
        if t <= st.last_median * (1 + SETTLE_TOL):
            break
    return minimum + extra


def _status(states: list[_State], target: Target, block: int, iters: int, round_s: float,
            elapsed_s: float = 0.0) -> RoundStatus:
    """Worst precision among sessions still timed, and an ETA: a half-width shrinks
    as 1/sqrt(n), so a session at width w after n used iterations needs n (w/target)^2.
    The ETA never exceeds the budget left."""
    budget = target.time_budget_s
    active = [st for st in states if not st.done]
    if not active:
        return RoundStatus(0, 0.0, 0.0, elapsed_s, budget)
    widths, rounds_left = [], 0.0
    for st in active:
        w = st.width
        widths.append(w)
        # Blocks still needed, scaled by the share of blocks the headline could use.
        share = st.blocks_used / len(st.chunks) if st.chunks and st.blocks_used else 1.0
        need = iters if not math.isfinite(w) else min(iters, max(target.min_iters, st.used * (w / target.target_ci) ** 2))
        mine = min(max(need - st.used, 0) / block / max(share, 0.05), max(iters - st.n, 0) / block)
        rounds_left = max(rounds_left, mine)
    eta = rounds_left * round_s
    if budget is not None:
        eta = min(eta, max(budget - elapsed_s, 0.0))
    return RoundStatus(len(active), max(widths), eta, elapsed_s, budget)


def total_work(n_sessions: int, iters: int, warmup: int, block: int, block_warmup: int) -> int:
    """Iterations the progress bar counts at most: first run, warm-up, timed and per-block warm-up."""
    blocks = -(-iters // block)
    return n_sessions * (1 + warmup + iters + blocks * block_warmup)
