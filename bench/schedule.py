"""How sessions share the machine while they are timed.

round-robin: every session runs one block in turn, round after round. On these VMs
  the machine's speed drifts ~10% between minutes; interleaving makes the drift hit
  every model alike, so ratios between them stay meaningful.
sequential: each session runs all its blocks before the next starts.

How many iterations: a fixed count (`iters`, the paper's protocol is 4000), or
precision-driven (`auto`): after `min_iters`, a session stops being timed once the
interval of its headline statistic is within the target precision; the others go
on, up to `iters` each, or until `time_budget_s` is spent.

The block-switch transient: after another session's block, the first iterations of
a block run slower (its weights and activations were evicted from the caches, and
ONNX Runtime's worker threads went to sleep). Each block therefore starts with
untimed iterations until an iteration is within `settle_tol` of the session's last
block median (at least `block_warmup`, at most `settle_max` more); the count each
block needed is recorded.

The machine's speed: with a `probe` (bench/machine_ref), a probe reading is taken
before every block (after a short pause, so the last session's spinning workers are
idle; the probe itself never spins) and one after the last; each block keeps the readings on both sides of it.
The stopping rule then counts only what the headline uses: the blocks that ran at
the machine's normal speed, against the reference that `reference(readings, final)`
gives for the readings so far.

A reference model (`relative_to`): a session timed beside a reference session in the
same rounds is judged, by the stopping rule, on its latency relative to that reference
(the figure a shared machine reproduces), not on its own headline; a reference is timed
for as long as any session relative to it is.

Every setting lives in one frozen `TimingProtocol`, built once from the command
line or the Python API and passed whole to `time_sessions`.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Protocol

import numpy as np

from modbench.common.errors import ModbenchError

from . import busy
from .machine_ref import Reference
from .measurement import DEFAULT_TARGET_CI, MIN_NORMAL_BLOCKS, Measurement, relative_figure
from .runners.base import Session
from .stats import STATS

SCHEDULES = ("round-robin", "sequential")
# A figure relative to a reference stops no sooner than this many rounds: on this
# project's VM, intervals of 6 rounds said ±0.9% while quiet runs moved 2.2% apart
# (tools.selfbench relative, December 2).
MIN_PAIRED_ROUNDS = 10


class ProtocolError(ModbenchError):
    """A timing setting out of range (one line, exit 2)."""


@dataclass(frozen=True)
class StoppingRule:
    """Precision-driven stopping: a session is done once its headline interval is
    within `target_ci` (relative 95% half-width) and it has `min_iters` iterations.
    `target_ci` and `stat` also judge every row's validity, fixed counts included."""

    target_ci: float = DEFAULT_TARGET_CI
    stat: str = "median"
    min_iters: int = 300

    def __post_init__(self):
        if not (isinstance(self.target_ci, (int, float)) and 0 < self.target_ci < 1):
            raise ProtocolError(f"--target-ci must be a fraction in (0, 1), e.g. 0.01 or 1%, not {self.target_ci}")
        if self.stat not in STATS:
            raise ProtocolError(f"--stat must be median or mean, not {self.stat!r}")
        if self.min_iters < 1:
            raise ProtocolError(f"--min-iters must be a positive integer, not {self.min_iters}")


@dataclass(frozen=True)
class TimingProtocol:
    """How a group is timed: everything that changes the numbers but not what is run."""

    iters: int = 4000            # the count (fixed), or the ceiling (auto)
    auto: bool = True            # precision-driven: stop each session once `stopping` says so
    stopping: StoppingRule = field(default_factory=StoppingRule)
    time_budget_s: float | None = None  # seconds per group; None: no budget
    warmup: int = 50             # untimed iterations after the first run
    block: int = 50              # timed iterations per block
    block_warmup: int = 2        # untimed iterations at the start of every block
    schedule: str = "round-robin"
    # Lets ONNX Runtime's spinning workers of the previous session go idle before
    # the next session's block (and before a probe reading), so they do not steal its cores.
    settle_pause_s: float = 0.005
    # An untimed iteration within this of the last block's median ends a block's warm-up...
    settle_tol: float = 0.10
    # ...or this many extra ones, whichever comes first.
    settle_max: int = 10

    def __post_init__(self):
        if isinstance(self.stopping, dict):  # from JSON
            object.__setattr__(self, "stopping", StoppingRule(**self.stopping))
        if self.iters < 1:
            raise ProtocolError(f"--iters must be a positive integer, not {self.iters}")
        if self.warmup < 0 or self.block < 1 or self.block_warmup < 0:
            raise ProtocolError("--warmup and --block-warmup must be >= 0 and --block >= 1")
        if self.schedule not in SCHEDULES:
            raise ProtocolError(f"--schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")
        if self.auto and self.stopping.min_iters > self.iters:
            raise ProtocolError(f"--min-iters {self.stopping.min_iters} is more than --max-iters {self.iters}")
        if self.time_budget_s is not None and not (self.time_budget_s > 0 and math.isfinite(self.time_budget_s)):
            raise ProtocolError(f"--time-budget must be a positive number of seconds, not {self.time_budget_s}")
        if self.settle_pause_s < 0 or self.settle_tol < 0 or self.settle_max < 0:
            raise ProtocolError("settling pause, tolerance and extra iterations must be >= 0")

    @property
    def rule(self) -> StoppingRule | None:
        """The stopping rule in force: None for a fixed count."""
        return self.stopping if self.auto else None

    def total_work(self, n_sessions: int) -> int:
        """Iterations the progress bar counts at most: first run, warm-up, timed and per-block warm-up."""
        blocks = -(-self.iters // self.block)
        return n_sessions * (1 + self.warmup + self.iters + blocks * self.block_warmup)

    def describe(self) -> str:
        """The timing part of the protocol line printed with the numbers."""
        r = self.stopping
        count = (f"until the 95% CI of the {r.stat} is within ±{r.target_ci:.1%} "
                 f"({r.min_iters}..{self.iters} iterations"
                 + (f", at most {self.time_budget_s:g} s" if self.time_budget_s else "") + ")"
                 if self.auto else f"{self.iters} iterations (fixed)")
        return f"{self.schedule} blocks of {self.block}, warm-up {self.warmup}, timing {count}"

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "TimingProtocol":
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    @classmethod
    def from_flat(cls, d: dict) -> "TimingProtocol":
        """The protocol of a request stored before it had one (run.json's flat fields)."""
        auto = bool(d.get("auto", False))  # requests before precision-driven runs had a fixed count
        iters = int(d.get("iters", cls.iters))
        rule = StoppingRule(d.get("target_ci", StoppingRule.target_ci), d.get("stat", StoppingRule.stat),
                            # the old stopping rule clipped its minimum to the ceiling
                            min(int(d.get("min_iters", StoppingRule.min_iters)), iters))
        kw = {k: d[k] for k in ("warmup", "block", "block_warmup", "schedule") if k in d}
        return cls(iters=iters, auto=auto, stopping=rule,
                   time_budget_s=d.get("time_budget") if auto else None, **kw)


class Clock:
    """The scheduler's wall time: budgets, ETAs and the pauses between blocks.
    Tests pass a fake one; sessions time their own iterations."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class ProbeReader(Protocol):
    """What the scheduler needs of a machine probe (bench/machine_ref.Probe)."""

    def read(self) -> float: ...


@dataclass
class _State:
    session: Session
    chunks: list = field(default_factory=list)
    marks: list = field(default_factory=list)
    settle: list = field(default_factory=list)
    probe_pairs: list = field(default_factory=list)
    first: float | None = None
    last_median: float | None = None
    # Relative half-width of the interval of the figure the stopping rule judges (the
    # headline, or the latency relative to `ref`) after the last block (precision-driven
    # runs only): the stopping rule and the progress line both read it.
    width: float = math.inf
    ref: "_State | None" = None       # the reference session this one is relative to
    is_reference: bool = False
    # Iterations in the blocks the headline uses (all blocks without a probe).
    used: int = 0
    blocks_used: int = 0
    done: bool = False

    @property
    def n(self) -> int:
        return sum(c.size for c in self.chunks)

    def samples(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else np.empty(0)


@dataclass(frozen=True)
class RoundStatus:
    """What the progress line shows after each round of a precision-driven run:
    sessions still timed, the loosest interval among them, the time still needed
    (never more than the budget left), the time spent and the budget."""

    active: int
    worst: float
    eta_s: float | None
    elapsed_s: float = 0.0
    budget_s: float | None = None


class _ProbeLog:
    """Probe readings in time order; each block gets the reading before it and the
    next one after it (in round-robin, the reading after one block is the reading
    before the next)."""

    def __init__(self, probe: ProbeReader | None, pause_s: float, clock: Clock):
        self.probe, self.pause_s, self.clock = probe, pause_s, clock
        self.readings: list[float] = []
        self._fresh: float | None = None
        self._pending: list[list] = []

    def reading(self) -> float | None:
        """A reading taken now, unless one was taken with no block since."""
        if self.probe is None:
            return None
        if self._fresh is None:
            # The last block's spinning workers go idle first (the probe never spins).
            self.clock.sleep(self.pause_s)
            self._fresh = self.probe.read()
            self.readings.append(self._fresh)
            for pair in self._pending:
                pair[1] = self._fresh
            self._pending = []
        return self._fresh

    def block(self, st: _State, before: float | None) -> None:
        if self.probe is None:
            return
        pair = [before, math.nan]
        st.probe_pairs.append(pair)
        self._pending.append(pair)
        self._fresh = None


def time_sessions(sessions: list[Session], protocol: TimingProtocol, *,
                  progress: Callable[[int], None] = lambda n: None,
                  on_round: Callable[[RoundStatus], None] = lambda s: None,
                  probe: ProbeReader | None = None,
                  reference: Callable[[list[float], bool], Reference | None] | None = None,
                  known_ms: list[float | None] | None = None,
                  relative_to: dict[int, int] | None = None,
                  clock: Clock | None = None) -> list[Measurement]:
    """Time every session by `protocol`; one Measurement each. With a `probe` and a
    `reference`, every Measurement carries its blocks' probe readings and the
    machine's reference; `known_ms` gives each session's model its fast figure from
    earlier runs, if any. `relative_to` maps a session's index to the index of the
    reference model's session timed beside it (round-robin only). `on_round` gets a
    RoundStatus after every round of a precision-driven round-robin run."""
    if probe is not None and reference is None:
        raise ValueError("a probe needs a reference function")
    p = protocol
    rule = p.rule
    clock = clock or Clock()
    states = [_State(s) for s in sessions]
    for i, j in (relative_to or {}).items():
        if p.schedule != "round-robin":
            raise ValueError("a figure relative to a reference needs the round-robin schedule")
        states[i].ref, states[j].is_reference = states[j], True
    known = list(known_ms) if known_ms is not None else [None] * len(sessions)
    probes = _ProbeLog(probe, p.settle_pause_s, clock)
    t_start = clock.now()

    def probe_ms(st: _State):
        return np.array(st.probe_pairs) if probe is not None else None

    def measured(st: _State, ref: Reference | None, k: float | None) -> Measurement:
        return Measurement(st.samples(), warmup=p.warmup, load_ms=st.session.load_ms, first_run_ms=st.first,
                           block=p.block, busy=busy.block_busy(st.marks), settle=st.settle,
                           probe_ms=probe_ms(st), reference=ref, known_ms=k)

    def update_precision(active: list[_State]) -> None:
        """The headline's precision and what it rests on, for the stopping rule."""
        if rule is None:
            return
        probes.reading()  # closes the blocks just timed
        ref = reference(probes.readings, False) if probe is not None else None

        measured_now: dict[int, Measurement] = {}  # a reference's, once for all rows beside it

        def now(st: _State) -> Measurement:
            i = states.index(st)
            if i not in measured_now:
                measured_now[i] = Measurement(st.samples(), block=p.block, probe_ms=probe_ms(st), reference=ref,
                                              known_ms=known[i])
            return measured_now[i]

        for st in active:
            if st.is_reference:  # it follows the rows beside it: its own precision stops nothing
                continue
            if st.ref is not None:  # judged on its latency relative to the reference
                rel = relative_figure(now(st), now(st.ref))
                st.width = math.inf if rel.slowed else rel.ratio.rel_half_width
                st.used = st.n
                # Rounds the figure rests on: those at normal speed, where a probe tells.
                st.blocks_used = len(st.chunks) if rel.normal_rounds is None else rel.normal_rounds
                continue
            m = now(st)
            st.width = m.headline(rule.stat).rel_half_width
            normal = m.normal_blocks()
            if normal is None or rule.stat == "mean":
                st.used, st.blocks_used = st.n, len(st.chunks)
            else:
                st.used = int(sum(c.size for c, ok in zip(st.chunks, normal) if ok))
                st.blocks_used = int(normal.sum())

    def warm(st: _State) -> None:
        st.first = st.session.first_run()
        if p.warmup:
            st.last_median = float(np.median(st.session.run_block(p.warmup)))
        progress(1 + p.warmup)

    def one_block(st: _State) -> None:
        n = min(p.block, p.iters - st.n)
        before = probes.reading()
        extra = _settle(st, p)
        progress(extra)
        a = busy.take()
        x = st.session.run_block(n)
        b = busy.take()
        st.chunks.append(x)
        st.marks.append((a, b))
        st.settle.append(extra)
        probes.block(st, before)
        st.last_median = float(np.median(x))
        progress(n)

    def finished(st: _State) -> bool:
        if st.n >= p.iters:
            return True
        if st.is_reference:  # timed while any session relative to it is
            return all(o.done for o in states if o.ref is st)
        if rule is None or st.used < rule.min_iters:
            return False
        if st.ref is not None and st.blocks_used < MIN_PAIRED_ROUNDS:
            return False
        if st.ref is None and probe is not None and rule.stat == "median" and st.blocks_used < MIN_NORMAL_BLOCKS:
            return False
        return st.width <= rule.target_ci

    def over_budget() -> bool:
        return p.time_budget_s is not None and clock.now() - t_start > p.time_budget_s

    if p.schedule == "sequential":
        for st in states:
            warm(st)
            while not st.done:
                one_block(st)
                update_precision([st])
                st.done = finished(st) or over_budget()
    else:
        for st in states:
            warm(st)
            clock.sleep(p.settle_pause_s)
        while not all(st.done for st in states):
            t_round = clock.now()
            active = [st for st in states if not st.done]
            for st in active:
                one_block(st)
                if len(sessions) > 1:
                    clock.sleep(p.settle_pause_s)
            update_precision(active)
            spent = over_budget()
            # The references last: they follow the sessions relative to them.
            for st in sorted(active, key=lambda st: st.is_reference):
                st.done = spent or finished(st)
            if rule is not None:
                now = clock.now()
                on_round(_status(states, p, now - t_round, now - t_start))
    probes.reading()  # the reading after the last block
    ref = reference(probes.readings, True) if probe is not None else None
    return [measured(st, ref, k) for st, k in zip(states, known)]


def _settle(st: _State, p: TimingProtocol) -> int:
    """Untimed iterations until the block's times have settled; returns how many."""
    if p.block_warmup:
        st.session.run_block(p.block_warmup)
    if st.last_median is None:
        return p.block_warmup
    extra = 0
    while extra < p.settle_max:
        t = float(st.session.run_block(1)[0])
        extra += 1
        if t <= st.last_median * (1 + p.settle_tol):
            break
    return p.block_warmup + extra


def _status(states: list[_State], p: TimingProtocol, round_s: float, elapsed_s: float) -> RoundStatus:
    """Worst precision among sessions still timed, and an ETA: a half-width shrinks
    as 1/sqrt(n), so a session at width w after n used iterations needs n (w/target)^2.
    The ETA never exceeds the budget left."""
    rule, budget = p.stopping, p.time_budget_s
    active = [st for st in states if not st.done]
    if not active:
        return RoundStatus(0, 0.0, 0.0, elapsed_s, budget)
    widths, rounds_left = [], 0.0
    for st in active:
        if st.is_reference:  # its own width stops nothing
            continue
        w = st.width
        widths.append(w)
        # Blocks still needed, scaled by the share of blocks the headline could use.
        share = st.blocks_used / len(st.chunks) if st.chunks and st.blocks_used else 1.0
        need = p.iters if not math.isfinite(w) else min(p.iters, max(rule.min_iters,
                                                                     st.used * (w / rule.target_ci) ** 2))
        mine = min(max(need - st.used, 0) / p.block / max(share, 0.05), max(p.iters - st.n, 0) / p.block)
        rounds_left = max(rounds_left, mine)
    eta = rounds_left * round_s
    if budget is not None:
        eta = min(eta, max(budget - elapsed_s, 0.0))
    return RoundStatus(len(active), max(widths, default=0.0), eta, elapsed_s, budget)
