"""The machine probe and the normal-speed headline, on real ONNX Runtime sessions with
a real competing process that slows the machine the way a host's other tenant does:
invisibly (the in-machine busy detector is off, as with --busy-cores 100), block by
block. No milliseconds are asserted: figures are compared within the test."""
import multiprocessing as mp
import os
import time

import numpy as np
import pytest
from conftest import open_cpu_sessions, retried

from modbench import machine_ref
from modbench.machine_ref import (Probe, Reference, fast_mode, read_model_figures, resolve_reference,
                               update_model_figures)
from modbench.measurement import Measurement, Validity

CPUS = sorted(os.sched_getaffinity(0))


def _compete(cpu: int, on_s: float, off_s: float, t0: float, stop_at: float, ready) -> None:
    """Spin on one CPU in phases counted from t0 (the same clock in every process, so
    all competitors switch together): on for on_s, off for off_s (0: always on)."""
    os.sched_setaffinity(0, {cpu})
    ready.set()
    period = on_s + off_s
    while (now := time.monotonic()) < stop_at:
        if off_s and (now - t0) % period >= on_s:
            time.sleep(min(0.01, stop_at - now))
        # else: spin


class Competitor:
    """One spinning process pinned to each CPU; switched on and off together."""

    def __init__(self, on_s: float, off_s: float = 0.0, seconds: float = 120):
        ctx = mp.get_context("spawn")
        t0 = time.monotonic() + 1.0
        stop = t0 + seconds
        self.ready = [ctx.Event() for _ in CPUS]
        self.procs = [ctx.Process(target=_compete, args=(c, on_s, off_s, t0, stop, r), daemon=True)
                      for c, r in zip(CPUS, self.ready)]
        self.t0 = t0

    def __enter__(self):
        for p in self.procs:
            p.start()
        # A spawned process on a loaded 2-core runner may take longer than t0's second to
        # start: timing begins only once every competitor spins.
        for r in self.ready:
            r.wait(timeout=60)
        time.sleep(max(self.t0 - time.monotonic(), 0) + 0.2)
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.terminate()
            p.join()
        time.sleep(0.3)


@pytest.fixture(scope="module")
def sessions():
    # One thread: a 2-thread session of so small a model changes speed by itself (its
    # threads' placement), which no probe can know; one thread is steady. The second
    # model is the first one's reference for the relative figure.
    yield from open_cpu_sessions(["mobilenetv2_100", "fasternet_t0"], 128)


@pytest.fixture()
def probe(tmp_path, monkeypatch):
    monkeypatch.setenv("MODBENCH_CACHE", str(tmp_path / "cache"))
    p = Probe()
    yield p
    p.close()


ENV = {"cpu_name": "test-cpu", "cpu_logical": len(CPUS)}


def _timed_all(sessions, probe, iters, known=None):
    """One Measurement per session, timed in the same interleaved rounds."""
    from modbench.schedule import TimingProtocol, time_sessions

    fixed = TimingProtocol(iters=iters, auto=False, warmup=5, block=BLOCK, block_warmup=1)
    return time_sessions(sessions, fixed, probe=probe, reference=lambda r, final: resolve_reference(r, ENV, probe.threads,
                                                                                   save=final),
                         known_ms=[known] + [None] * (len(sessions) - 1))


def _timed(sessions, probe, iters, known=None):
    """The first model alone."""
    return _timed_all(sessions[:1], probe, iters, known)[0]


BLOCK = 20


def _relative(pair, rounds: str = "normal") -> float:
    """The first model's latency relative to the second, paired round by round: over
    the rounds whose two blocks ran at normal speed, the row's own figure
    (measurement.relative_figure), or over all rounds."""
    from modbench.measurement import relative_figure
    from modbench.stats import relative_latency

    if rounds == "normal":
        return relative_figure(pair[0], pair[1], n_resamples=200).ratio.estimate
    return relative_latency(pair[0].samples_ms, pair[1].samples_ms, BLOCK, n_resamples=200).estimate


def test_quiet_machine_headline_is_the_median_of_all_samples(sessions, probe, tmp_path, monkeypatch):
    # The host may slow most of a short run (then there are too few normal-speed blocks
    # for a figure): such a run is timed again, at most twice more, each time as the
    # machine's first (a calibration of its own).
    def first_run_on(attempt):
        monkeypatch.setenv("MODBENCH_CACHE", str(tmp_path / f"cache-{attempt}"))
        return _timed(sessions, probe, 400)

    m = retried(first_run_on, lambda m: m.headline("median").blocks_used >= 4)
    h = m.headline("median")
    assert m.reference is not None and m.probe_ms.shape == (20, 2)
    assert h.blocks == 20 and h.blocks_used >= 4, m.block_speeds()
    if h.slowed_share == 0:  # a quiet machine: the headline is the plain median
        assert h.low <= m.median <= h.high, (h, m.median)
    used = np.concatenate([b for b, ok in zip(np.split(m.samples_ms, 20), m.normal_blocks()) if ok])
    assert h.low <= np.median(used) * h.estimate / np.median(m.headline_samples()) <= h.high
    row = m.summary(Validity(busy_cores=100))
    assert row["latency_ms"] == pytest.approx(h.estimate) and row["machine_ref_ms"] == m.reference.ms
    assert "no calibration for this machine yet" in row["machine_ref_source"]
    # The run stored what it found: the next run is judged against it.
    assert machine_ref.read_calibration(ENV, probe.threads)["probe_ms"] == pytest.approx(m.reference.ms)


def _mixed_attempt(sessions, probe):
    """Quiet, competitor switched on and off, quiet again, each run timing the model
    beside its reference: (checks passed, details)."""
    quiet = _timed_all(sessions, probe, 500)
    with Competitor(on_s=0.6, off_s=0.9):
        mixed = _timed_all(sessions, probe, 1000)
    quiet_after = _timed_all(sessions, probe, 300)
    # The host of a shared VM may slow a whole short run too: such a run has no figure
    # (NaN), and the other quiet run is the comparison.
    quiets = [q for q in (quiet[0].headline().estimate, quiet_after[0].headline().estimate) if q == q]
    m = mixed[0]
    hm = m.headline()
    # How far all samples together are from the quiet figure: the headline must be far
    # nearer. Not a fixed tolerance: the shared host may also slow the blocks the probe
    # reads as normal by 10-20% (seen on CI), which no in-machine measure can tell apart.
    off_all = max(m.median, m.mean) / max(quiets) - 1 if quiets else 0.0
    rel_quiet = [_relative(quiet), _relative(quiet_after)]
    rel_mixed = _relative(mixed)
    checks = {
        "a quiet run saw normal speed": bool(quiets),
        "both kinds of block were seen": 0.1 <= hm.slowed_share <= 0.9,
        "the set-aside blocks were slowed": (hm.slowed_factor or 0) > 1.25,
        # all samples together are far from the quiet figure ...
        "all samples are off": bool(quiets) and (m.median > 1.1 * max(quiets) or m.mean > 1.2 * max(quiets)),
        # ... the headline is not
        "the headline is far nearer": bool(quiets) and min(abs(hm.estimate / q - 1) for q in quiets) < off_all / 2,
        # The row's figure relative to the reference timed beside it stays where a quiet
        # run put it. It rests on the rounds whose two blocks ran at normal speed: the
        # competitor does not slow the two models alike, and a round it starts or stops in
        # has one block slowed (seen on CI: the all-rounds figure moved 5.4%).
        "the relative figure stays": min(abs(rel_mixed / r - 1) for r in rel_quiet) < 0.05,
    }
    return checks, (quiets, hm, m.median, m.mean, rel_quiet, rel_mixed, _relative(mixed, "all"), m.block_speeds())


def test_a_slowed_host_is_set_aside_and_a_wholly_slowed_run_is_never_valid(sessions, probe):
    # The VM's own host slows whole phases too (1.6-2x, invisible): a phase that swamps
    # the competitor's off periods is measured again, at most twice more.
    checks, details = retried(lambda _: _mixed_attempt(sessions, probe), lambda cd: all(cd[0].values()))
    assert all(checks.values()), (checks, details)
    quiets = details[0]
    # The host's scheduler may still hand the run whole quiet stretches while the
    # competitors spin (seen on CI: 4 of 15 blocks at normal speed): such a run is not
    # wholly slowed, and is timed again, at most twice more.
    def slowed_run(_):
        with Competitor(on_s=60):  # this model's fast figure known from the quiet runs, as a run has it
            return _timed(sessions, probe, 300, known=min(quiets))

    slowed = retried(slowed_run, lambda m: m.headline().slowed_share >= 0.8)
    hs = slowed.headline()
    assert hs.slowed_share >= 0.8, (slowed.block_speeds(), hs)
    for target in (0.01, 0.5):  # however loose the precision asked for
        verdict = slowed.validity(Validity(target_ci=target, busy_cores=100))
        ok, reason = verdict.valid, verdict.reason
        assert not ok and "host slowed for" in reason and "not measured" in reason, reason
    # The paper's protocol keeps the all-samples mean, and says what it includes.
    verdict = slowed.validity(Validity(target_ci=0.5, stat="mean", busy_cores=100))
    ok, reason = verdict.valid, verdict.reason
    assert not ok and "the all-samples mean includes them" in reason
    assert slowed.headline("mean").estimate == pytest.approx(slowed.mean)


def test_fast_mode_needs_company_and_the_calibration_decides_a_slowed_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MODBENCH_CACHE", str(tmp_path))
    # One lucky reading is not the mode; three close ones are.
    assert fast_mode([0.5, 1.0, 1.02, 1.05, 1.9, 2.0])[0] == pytest.approx(1.02)
    ref = resolve_reference([1.0, 1.01, 1.02, 1.0, 0.99, 1.9], ENV, 2)
    assert ref.source.startswith("this run") and ref.ms == pytest.approx(1.0, abs=0.01)
    # A later run slowed throughout is judged against the stored calibration.
    later = resolve_reference([1.8, 1.85, 1.9, 1.82, 1.81], ENV, 2)
    assert later.source.startswith("calibration") and later.ms == pytest.approx(ref.ms)
    # A run clearly faster than the calibration replaces it.
    faster = resolve_reference([0.9, 0.9, 0.91, 0.9, 0.89], ENV, 2)
    assert faster.ms == pytest.approx(0.9, abs=0.01) and "faster than the calibration" in faster.source
    assert resolve_reference([1.0, 1.0, 1.0], ENV, 2).ms == pytest.approx(faster.ms)


def test_a_models_fast_figure_is_kept_and_never_replaced_by_a_slower_one(tmp_path, monkeypatch):
    monkeypatch.setenv("MODBENCH_CACHE", str(tmp_path))
    update_model_figures(ENV, {"a": 4.0, "b": float("nan")})
    update_model_figures(ENV, {"a": 6.5})  # a slowed run
    assert read_model_figures(ENV) == {"a": {"ms": 4.0, "date": read_model_figures(ENV)["a"]["date"]}}
    update_model_figures(ENV, {"a": 3.8})  # the machine got faster
    assert read_model_figures(ENV)["a"]["ms"] == 3.8


def test_headline_rests_on_normal_blocks():
    """Synthetic but exact: blocks timed at twice the time when the probe said 2x."""
    rng = np.random.default_rng(0)
    slow = rng.random(40) < 0.4
    speed = np.where(slow, 2.0, 1.0) * rng.uniform(0.98, 1.05, 40)
    x = np.repeat(speed, 50) * 10 * rng.lognormal(0, 0.01, 2000)
    probe = np.stack([speed, speed], axis=1) * 0.3
    m = Measurement(x, block=50, probe_ms=probe, reference=Reference(0.3, "test"))
    h = m.headline()
    assert h.blocks_used == int((~slow).sum()) and h.slowed_share == pytest.approx(slow.mean())
    assert 1.9 < h.slowed_factor < 2.2
    assert h.estimate == pytest.approx(np.median(x[np.repeat(~slow, 50)]))
    assert abs(h.estimate / 10 - 1) < 0.03 and h.low <= h.estimate <= h.high
    assert m.mean > 13  # what the all-samples mean would have published
    assert np.median(m.headline_samples()) == pytest.approx(h.estimate)
    # No normal block at all: no headline, and INVALID whatever the precision asked.
    allslow = Measurement(x[slow.repeat(50)], block=50, probe_ms=probe[slow],
                          reference=Reference(0.3, "test"))
    verdict = allslow.validity(Validity(target_ci=0.9))
    ok, reason = verdict.valid, verdict.reason
    assert not ok and "host slowed for 100% of blocks (2.0x)" in reason


def test_a_slowdown_the_probe_misses_shows_in_the_blocks_and_the_models_own_figure():
    """Two-thread work slowed while the one-thread probe reads normal (the host of this
    project's VMs does that): the row's own fast mode sets the slowed blocks aside, and
    a row slowed throughout is caught by this model's fast figure from an earlier run."""
    rng = np.random.default_rng(1)
    slow = rng.random(30) < 0.5
    x = np.repeat(np.where(slow, 1.7, 1.0), 50) * 4 * rng.lognormal(0, 0.01, 1500)
    probe = np.full((30, 2), 0.3)
    m = Measurement(x, block=50, probe_ms=probe, reference=Reference(0.3, "test"))
    h = m.headline()
    assert h.blocks_used == int((~slow).sum()) and abs(h.estimate / 4 - 1) < 0.01
    assert 1.6 < h.slowed_factor < 1.8
    wholly = Measurement(x[np.repeat(slow, 50)], block=50, probe_ms=probe[slow],
                         reference=Reference(0.3, "test"))
    assert wholly.validity(Validity(target_ci=0.5)).valid  # nothing in the row itself can tell
    known = Measurement(x[np.repeat(slow, 50)], block=50, probe_ms=probe[slow],
                        reference=Reference(0.3, "test"), known_ms=4.0)
    verdict = known.validity(Validity(target_ci=0.5))
    ok, reason = verdict.valid, verdict.reason
    assert not ok and "host slowed for 100% of blocks (1.7x)" in reason, reason


# --- the gate judges latency_ms --------------------------------------------------------------

def _probed_run(path, slowed_share: float, seed: int, ref_ms: float = 0.3, model_ms: float = 20.0):
    """A results file written by the real store: one row whose blocks the host slowed
    1.8x in `slowed_share` of them, with the probe readings that saw it."""
    from modbench.store import PROBE_KEY, SAMPLES_KEY, ResultsWriter

    rng = np.random.default_rng(seed)
    k, block = 40, 50
    slow = np.zeros(k, bool)
    slow[rng.choice(k, int(round(slowed_share * k)), replace=False)] = True
    speed = np.where(slow, 1.8, 1.0) * rng.uniform(0.99, 1.02, k)
    x = np.repeat(speed, block) * model_ms * rng.lognormal(0, 0.01, k * block)
    probe = np.stack([speed, speed], axis=1) * ref_ms
    m = Measurement(x, block=block, probe_ms=probe, reference=Reference(ref_ms, "calibration 2026-11-30"))
    row = {"row_id": "a.default.ort-cpu.t2.b1.r224", "run_id": "r", "model": "a", "variant": "default",
           "runtime": "ort-cpu", "provider": "CPUExecutionProvider", "device": "cpu", "precision": "fp32",
           "batch": 1, "resolution": 224, "threads": 2, "threads_requested": 2, "schedule": "single",
           "interleave_group": "r:0", "block_size": block, "exporter": "torchscript", "opset": 17,
           "artifact_format": "onnx", "checkpoint": "random-init", "cpu_name": "Test CPU", "cpu_logical": 2,
           "device_name": "Test CPU", **m.summary(Validity(busy_cores=100))}
    with ResultsWriter.create(path, {"models": ["a"]}) as w:
        w.append(row, {SAMPLES_KEY: x, PROBE_KEY: probe})
    return path


def test_the_gate_compares_latency_at_normal_speed_and_refuses_other_speeds(tmp_path, capsys):
    from modbench.cli import main
    from modbench.store import read_rows

    base = _probed_run(tmp_path / "base.csv", 0.0, seed=1)
    half = _probed_run(tmp_path / "half.csv", 0.5, seed=2)
    r = read_rows(half)[0]
    assert r["median_ms"] > 1.3 * r["latency_ms"]  # the all-samples median saw the slowed host
    assert main(["check", str(half), "--against", str(base)]) == 0
    out = capsys.readouterr().out
    assert "latency gate: OK" in out and "slower" not in out.split("latency gate")[0]
    other = _probed_run(tmp_path / "other.csv", 0.0, seed=3, ref_ms=0.3 * 1.31)
    assert main(["check", str(other), "--against", str(base)]) == 0
    out = capsys.readouterr().out
    assert "not comparable: the machine ran at different speeds (reference 1.00 vs 1.31)" in out
    assert main(["check", str(other), "--against", str(base), "--strict"]) == 1
    # A real regression at normal speed is still caught through a slowed host.
    slower = _probed_run(tmp_path / "slower.csv", 0.5, seed=4, model_ms=24.0)
    assert main(["check", str(slower), "--against", str(base)]) == 1
