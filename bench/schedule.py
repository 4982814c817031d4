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
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import load
from .measurement import Measurement
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
    done: bool = False

    @property
    def n(self) -> int:
        return sum(c.size for c in self.chunks)

    def samples(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.empty(0)


class RoundStatus:
    """What the progress line shows after each round of a precision-driven run."""

    def __init__(self, active: int, worst: float, eta_s: float | None):
        self.active, self.worst, self.eta_s = active, worst, eta_s


def time_sessions(sessions: list[Session], iters: int, warmup: int, block: int, schedule: str,
                  block_warmup: int = 0,
                  progress: Callable[[int], None] = lambda n: None,
                  target: Target | None = None,
                  on_round: Callable[[RoundStatus], None] = lambda s: None) -> list[Measurement]:
    """Time every session; one Measurement each. `iters` is the count (fixed) or the
    ceiling (with a precision `target`)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}")
    states = [_State(s, [], [], []) for s in sessions]
    t_start = time.monotonic()

    def warm(st: _State) -> None:
        st.first = st.session.first_run()
        if warmup:
            w = st.session.run_block(warmup)
            st.last_median = float(np.median(w))
        progress(1 + warmup)

    def one_block(st: _State) -> None:
        n = min(block, iters - st.n)
        extra = _settle(st, block_warmup)
        progress(extra)
        a = load.take()
        x = st.session.run_block(n)
        b = load.take()
        st.chunks.append(x)
        st.marks.append((a, b))
        st.settle.append(extra)
        st.last_median = float(np.median(x))
        if target is not None:
            st.width = Measurement(st.samples(), block=block).interval(target.stat).rel_half_width
        progress(n)

    def finished(st: _State) -> bool:
        if st.n >= iters:
            return True
        if target is None or st.n < target.min_iters:
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
            budget = over_budget()
            for st in active:
                st.done = budget or finished(st)
            if target is not None:
                on_round(_status(states, target, block, iters, time.monotonic() - t_round))
    return [Measurement(st.samples(), warmup=warmup, load_ms=st.session.load_ms, first_run_ms=st.first,
                        block=block, loads=load.block_loads(st.marks), settle=st.settle)
            for st in states]


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


def _status(states: list[_State], target: Target, block: int, iters: int, round_s: float) -> RoundStatus:
    """Worst precision among sessions still timed, and an ETA: a half-width shrinks
    as 1/sqrt(n), so a session at width w after n iterations needs n (w/target)^2."""
    active = [st for st in states if not st.done]
    if not active:
        return RoundStatus(0, 0.0, 0.0)
    widths, rounds_left = [], 0.0
    for st in active:
        w = st.width
        widths.append(w)
        need = iters if not math.isfinite(w) else min(iters, max(target.min_iters, st.n * (w / target.target_ci) ** 2))
        rounds_left = max(rounds_left, (need - st.n) / block)
    eta = rounds_left * round_s
    if target.time_budget_s is not None:
        eta = min(eta, target.time_budget_s)
    return RoundStatus(len(active), max(widths), eta)


def total_work(n_sessions: int, iters: int, warmup: int, block: int, block_warmup: int) -> int:
    """Iterations the progress bar counts at most: first run, warm-up, timed and per-block warm-up."""
    blocks = -(-iters // block)
    return n_sessions * (1 + warmup + iters + blocks * block_warmup)
