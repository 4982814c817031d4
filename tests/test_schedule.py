"""The scheduler on scripted sessions and a fake clock: no ONNX Runtime, milliseconds
per test. Each ScriptedSession is a real bench.runners.base.Session whose iterations
take the times a script gives them; the fake clock advances by those times, so the
time budget and the ETA are exercised exactly."""
import math

import numpy as np
import pytest

from modbench.common.errors import ModbenchError
from modbench.machine_ref import Reference
from modbench.measurement import MIN_NORMAL_BLOCKS, Measurement
from modbench.pipeline import RunRequest
from modbench.runners.base import Session
from modbench.schedule import Clock, ProtocolError, StoppingRule, TimingProtocol, time_sessions


class FakeClock(Clock):
    """Time moves only when a session runs or the scheduler pauses."""

    def __init__(self):
        self.t = 0.0
        self.last = None  # the session that ran last (block switches)
        self.calls: list[tuple[str, int]] = []  # (session, iterations) of every run_block

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


class ScriptedSession(Session):
    """Iteration k (untimed ones included) takes times(k) ms; the first `cold`
    iterations after another session ran take `cold_factor` times as long (the
    block-switch transient)."""

    def __init__(self, clock: FakeClock, name: str, times, cold: int = 0, cold_factor: float = 3.0):
        self.clock, self.name, self.times = clock, name, times
        self.cold, self.cold_factor = cold, cold_factor
        self.k = 0
        self.since_switch = 0
        self.load_ms = 1.0

    def _run(self, n: int) -> np.ndarray:
        if self.clock.last is not self:
            self.since_switch = 0
            self.clock.last = self
        out = np.empty(n)
        for i in range(n):
            t = self.times(self.k)
            if self.since_switch < self.cold:
                t *= self.cold_factor
            out[i] = t
            self.k += 1
            self.since_switch += 1
        self.clock.t += out.sum() / 1000
        return out

    def first_run(self) -> float:
        return float(self._run(1)[0])

    def run_block(self, n: int) -> np.ndarray:
        self.clock.calls.append((self.name, n))
        return self._run(n)

    def describe(self) -> dict:
        return {"runtime": "scripted", "provider": "none", "device": "cpu", "threads": 1}


def noisy(ms: float, rel: float, seed: int):
    rng = np.random.default_rng(seed)
    cache: dict[int, float] = {}

    def times(k: int) -> float:
        while len(cache) <= k:
            cache[len(cache)] = ms * float(rng.lognormal(0.0, rel))
        return cache[k]
    return times


def constant(ms: float):
    return lambda k: ms


class FakeProbe:
    """Probe readings from a script (ms); the reference says 1.0 ms is normal."""

    def __init__(self, readings=None):
        self.script = list(readings or [])
        self.reads = 0

    def read(self) -> float:
        self.reads += 1
        return self.script.pop(0) if self.script else 1.0


def reference(readings, final):
    return Reference(1.0, "test")


# A protocol without the per-block warm-up and settling: run_block calls are the timed blocks.
BARE = dict(warmup=0, block_warmup=0, settle_max=0, settle_pause_s=0.0)


def timed_blocks(clock: FakeClock) -> list[str]:
    return [name for name, _ in clock.calls]


# --- the protocol object ----------------------------------------------------------------

@pytest.mark.parametrize("kw, words", [
    (dict(iters=0), "--iters must be a positive integer"),
    (dict(block=0), "--block >= 1"),
    (dict(warmup=-1), "--warmup"),
    (dict(schedule="random"), "--schedule must be one of round-robin, sequential"),
    (dict(iters=100, stopping=StoppingRule(min_iters=300)), "--min-iters 300 is more than --max-iters 100"),
    (dict(time_budget_s=0.0), "--time-budget"),
    (dict(settle_max=-1), "settling"),
])
def test_protocol_refuses_bad_values_in_one_line(kw, words):
    with pytest.raises(ProtocolError) as e:
        TimingProtocol(**kw)
    assert words in str(e.value) and "\n" not in str(e.value)
    assert isinstance(e.value, ModbenchError)


@pytest.mark.parametrize("kw, words", [(dict(target_ci=0.0), "--target-ci"), (dict(target_ci=1.5), "--target-ci"),
                                       (dict(stat="p50"), "--stat must be median or mean"),
                                       (dict(min_iters=0), "--min-iters")])
def test_stopping_rule_refuses_bad_values(kw, words):
    with pytest.raises(ProtocolError, match=words):
        StoppingRule(**kw)


def test_a_fixed_count_may_be_below_the_stopping_rules_minimum():
    # --iters 12 with the default --min-iters 300: the rule is not in force, nothing to refuse.
    p = TimingProtocol(iters=12, auto=False)
    assert p.rule is None and p.stopping.min_iters == 300


def test_requests_round_trip_and_old_flat_requests_convert():
    p = TimingProtocol(iters=2000, stopping=StoppingRule(0.02, "mean", 100), time_budget_s=60.0, block=25)
    req = RunRequest(models=["m"], protocol=p)
    assert RunRequest.from_json(req.to_json()) == req
    old = {"models": ["m"], "runtime": "ort-cpu", "iters": 12, "auto": False, "target_ci": 0.02,
           "stat": "median", "min_iters": 300, "time_budget": 480, "warmup": 2, "block": 4,
           "block_warmup": 1, "schedule": "sequential", "interleave": 0, "spinning": True}
    back = RunRequest.from_json(old)
    assert back.protocol == TimingProtocol(iters=12, auto=False, stopping=StoppingRule(0.02, "median", 12),
                                           time_budget_s=None, warmup=2, block=4, block_warmup=1,
                                           schedule="sequential")
    assert back.validity.target_ci == 0.02
    # Before precision-driven runs, a stored request had no `auto`: a fixed count.
    assert RunRequest.from_json({"models": ["m"], "iters": 50}).protocol.rule is None
    auto = RunRequest.from_json(dict(old, auto=True, iters=400, min_iters=100)).protocol
    assert auto.rule == StoppingRule(0.02, "median", 100) and auto.time_budget_s == 480


# --- fixed counts and order -------------------------------------------------------------

def test_fixed_count_times_every_session_to_the_count_whatever_its_precision():
    clock = FakeClock()
    sessions = [ScriptedSession(clock, "a", constant(2.0)), ScriptedSession(clock, "b", noisy(3.0, 0.3, 1))]
    seen = []
    p = TimingProtocol(iters=130, auto=False, block=50, warmup=5, block_warmup=1)
    ms = time_sessions(sessions, p, progress=seen.append, clock=clock)
    assert [m.n for m in ms] == [130, 130]
    assert np.all(ms[0].samples_ms == 2.0)
    assert all(len(m.settle) == 3 for m in ms)  # 50 + 50 + 30
    assert sum(seen) == sum(1 + 5 + 130 + sum(m.settle) for m in ms)
    assert sum(seen) <= p.total_work(2) + sum(p.settle_max * len(m.settle) for m in ms)


def test_round_robin_alternates_blocks_and_sequential_does_not():
    for schedule, want in (("round-robin", ["a", "b", "a", "b", "a", "b"]),
                           ("sequential", ["a", "a", "a", "b", "b", "b"])):
        clock = FakeClock()
        sessions = [ScriptedSession(clock, n, constant(1.0)) for n in ("a", "b")]
        p = TimingProtocol(iters=30, auto=False, block=10, schedule=schedule, **BARE)
        ms = time_sessions(sessions, p, clock=clock)
        assert timed_blocks(clock) == want, schedule
        assert [m.n for m in ms] == [30, 30]


# --- precision-driven stopping ----------------------------------------------------------

def test_precision_driven_stops_once_within_target_and_not_before_min_iters():
    clock = FakeClock()
    sessions = [ScriptedSession(clock, "tight", noisy(2.0, 0.01, 2)),
                ScriptedSession(clock, "loose", noisy(2.0, 0.4, 3))]
    rule = StoppingRule(target_ci=0.02, min_iters=100)
    p = TimingProtocol(iters=3000, stopping=rule, block=20, **BARE)
    rounds = []
    tight, loose = time_sessions(sessions, p, on_round=rounds.append, clock=clock)
    # The tight one reaches the target at once, yet is timed up to min_iters, and not one block more.
    assert tight.n == 100
    assert tight.headline("median").rel_half_width <= 0.02
    # The loose one goes on alone, and stops at the first block where its interval is tight enough.
    assert 100 < loose.n < 3000
    assert loose.headline("median").rel_half_width <= 0.02
    before = Measurement(loose.samples_ms[:loose.n - 20], block=20).headline("median")
    assert before.rel_half_width > 0.02
    assert timed_blocks(clock).count("loose") == loose.n // 20
    # A round's status counts the sessions still timed after it.
    assert [r.active for r in rounds][:4] == [2, 2, 2, 2] and rounds[4].active == 1 and rounds[-1].active == 0


def test_a_target_nobody_reaches_runs_to_the_ceiling():
    clock = FakeClock()
    sessions = [ScriptedSession(clock, n, noisy(2.0, 0.1, s)) for n, s in (("a", 4), ("b", 5))]
    p = TimingProtocol(iters=80, stopping=StoppingRule(target_ci=1e-6, min_iters=40), block=20, **BARE)
    assert [m.n for m in time_sessions(sessions, p, clock=clock)] == [80, 80]


def test_with_a_probe_the_median_needs_four_normal_blocks():
    """A perfectly steady session: its interval is tight after two blocks, so without
    a probe it stops at min_iters; with one, only after MIN_NORMAL_BLOCKS normal blocks,
    and a block the probe saw slowed does not count."""
    p = TimingProtocol(iters=1000, stopping=StoppingRule(target_ci=0.01, min_iters=40), block=20, **BARE)

    def run(probe):
        clock = FakeClock()
        s = ScriptedSession(clock, "a", constant(2.0))
        kw = dict(probe=probe, reference=reference) if probe else {}
        return time_sessions([s], p, clock=clock, **kw)[0]

    assert run(None).n == 40
    normal = run(FakeProbe())
    assert normal.n == MIN_NORMAL_BLOCKS * 20
    assert normal.probe_ms.shape == (MIN_NORMAL_BLOCKS, 2) and np.all(normal.probe_ms == 1.0)
    assert normal.reference == Reference(1.0, "test")
    # The probe reads 2x slow before (so around) the first block: that block is set aside.
    slowed = run(FakeProbe([2.0]))
    assert slowed.n == (MIN_NORMAL_BLOCKS + 1) * 20
    assert int(slowed.normal_blocks().sum()) == MIN_NORMAL_BLOCKS


def test_a_probe_needs_a_reference():
    clock = FakeClock()
    with pytest.raises(ValueError):
        time_sessions([ScriptedSession(clock, "a", constant(1.0))], TimingProtocol(iters=10, auto=False),
                      probe=FakeProbe(), clock=clock)


# --- settling ---------------------------------------------------------------------------

def test_settling_runs_untimed_iterations_until_within_tolerance_at_most_settle_max():
    """After a switch, a session's first 3 iterations run 3x slower: each block starts
    with block_warmup untimed iterations, then single ones until one is within
    settle_tol of the last block's median (here the 3 cold ones and the first warm one)."""
    def run(settle_max, n_sessions=2):
        clock = FakeClock()
        sessions = [ScriptedSession(clock, n, constant(2.0), cold=3) for n in "ab"[:n_sessions]]
        p = TimingProtocol(iters=60, auto=False, block=20, warmup=10, block_warmup=1, settle_max=settle_max,
                           settle_pause_s=0.0)
        return time_sessions(sessions, p, clock=clock)

    for m in run(settle_max=10):
        # 1 block warm-up (cold) + 2 cold + 1 within tolerance, for every block.
        assert m.settle == [4, 4, 4]
        assert np.all(m.samples_ms == 2.0)  # no cold iteration was timed
    for m in run(settle_max=1):
        # At most settle_max extra: the block starts with the last cold iteration timed.
        assert m.settle == [2, 2, 2]
        assert [b[0] for b in np.split(m.samples_ms, 3)] == [6.0, 6.0, 6.0]
    # One session, no switch: block_warmup and one iteration that is already within tolerance.
    assert run(settle_max=10, n_sessions=1)[0].settle == [2, 2, 2]


# --- the time budget --------------------------------------------------------------------

def test_the_budget_stops_timing_and_the_eta_never_exceeds_what_is_left():
    clock = FakeClock()
    # 10 ms iterations, blocks of 50: half a second per block, a second per round.
    sessions = [ScriptedSession(clock, n, noisy(10.0, 0.3, s)) for n, s in (("a", 6), ("b", 7))]
    p = TimingProtocol(iters=100_000, stopping=StoppingRule(target_ci=1e-4, min_iters=50), time_budget_s=3.5,
                       block=50, **BARE)
    rounds = []
    ms = time_sessions(sessions, p, on_round=rounds.append, clock=clock)
    assert ms[0].n == ms[1].n and ms[0].n < 100_000
    round_s = 2 * 50 * 10.0 / 1000
    # Stopped at the first round that ended past the budget: at most one round past it.
    assert 3.5 < clock.t <= 3.5 + round_s + 0.01
    assert len(rounds) == ms[0].n // 50
    for r in rounds:
        assert r.budget_s == 3.5
        assert 0.0 <= r.eta_s <= max(3.5 - r.elapsed_s, 0.0)
    # Before the budget ran out, the ETA was the budget left (the target is out of reach).
    assert rounds[0].eta_s == pytest.approx(3.5 - rounds[0].elapsed_s)
    assert rounds[-1].active == 0 and math.isfinite(rounds[-2].worst)


def _host_phases(clock: FakeClock, ms: float, seed: int):
    """A shared host's speed, the same for every session at a given moment: normal and
    twice as slow in turns of 1 s, plus 1% noise per iteration."""
    rng = np.random.default_rng(seed)
    return lambda k: ms * (2.0 if int(clock.t) % 2 else 1.0) * float(rng.lognormal(0.0, 0.01))


def test_a_row_beside_a_reference_stops_on_its_relative_figure_and_the_reference_follows_it():
    """The host slows both sessions alike: each one's own headline stays wide, its ratio
    to the reference timed in the same rounds does not. With the reference the row stops
    once the ratio is precise, and the reference was timed exactly as long; without
    it, the row runs to the ceiling."""
    rule = StoppingRule(target_ci=0.01, min_iters=600)
    p = TimingProtocol(iters=4000, stopping=rule, block=20, **BARE)

    def run(relative_to):
        clock = FakeClock()
        sessions = [ScriptedSession(clock, "row", _host_phases(clock, 3.0, 1)),
                    ScriptedSession(clock, "ref", _host_phases(clock, 2.0, 2))]
        return time_sessions(sessions, p, clock=clock, relative_to=relative_to)

    row, ref = run({0: 1})
    assert 600 <= row.n < 4000 and ref.n == row.n
    from modbench.stats import relative_latency
    r = relative_latency(row.samples_ms, ref.samples_ms, 20)
    assert r.rel_half_width <= 0.01 and r.low <= 1.5 <= r.high
    assert row.headline("median").rel_half_width > 0.01  # its own figure could not have stopped it
    alone, _ = run(None)
    assert alone.n == 4000


def test_a_reference_needs_the_round_robin_schedule():
    clock = FakeClock()
    sessions = [ScriptedSession(clock, n, constant(1.0)) for n in "ab"]
    with pytest.raises(ValueError, match="round-robin"):
        time_sessions(sessions, TimingProtocol(iters=40, auto=False, schedule="sequential", **BARE), clock=clock,
                      relative_to={0: 1})
