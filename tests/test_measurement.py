"""Measurement statistics and the validity rule; precision-driven runs and the busy
machine detector on real ONNX Runtime sessions and a real competing process."""
import math
import multiprocessing as mp
import time

import numpy as np
import pytest
from conftest import open_cpu_sessions

from modbench.busy import BlockBusy
from modbench.measurement import PERCENTILE_MIN_SAMPLES, Measurement, Validity


def test_statistics_derive_from_samples():
    rng = np.random.default_rng(0)
    s = rng.lognormal(3.0, 0.1, size=1000)
    m = Measurement(s, warmup=10, load_ms=5.0, first_run_ms=40.0, block=50)
    assert m.n == 1000
    assert m.median == pytest.approx(np.median(s))
    assert m.mean == pytest.approx(s.mean())
    assert m.std == pytest.approx(s.std(ddof=1))
    assert m.percentile(99) == pytest.approx(np.percentile(s, 99))
    assert m.cv == pytest.approx(s.std(ddof=1) / s.mean())
    lo, hi = m.median_ci()
    assert lo < m.median < hi
    row = m.summary()
    assert row["median_ms"] == m.median and row["first_run_ms"] == 40.0 and row["warmup"] == 10
    assert row["mean_ci_low_ms"] < row["mean_ms"] < row["mean_ci_high_ms"]


def test_percentiles_need_loadgens_sample_counts():
    rng = np.random.default_rng(2)
    few = Measurement(rng.lognormal(3, 0.1, 200), block=50)
    assert few.percentile(90) is not None and few.percentile(99) is None
    assert few.summary()["p99_ms"] is None
    enough = Measurement(rng.lognormal(3, 0.1, PERCENTILE_MIN_SAMPLES[99]), block=50)
    assert enough.percentile(99) is not None
    assert Measurement(rng.lognormal(3, 0.1, 63), block=9).summary()["p90_ms"] is None


def test_batch_interval_covers_the_true_median_under_block_drift():
    """Each block runs at its own machine speed: the interval must still cover the
    centre at about its nominal rate (order statistics of pooled samples would not)."""
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(300):
        speed = np.repeat(rng.lognormal(0, 0.05, 20), 50)
        x = 10 * speed * rng.lognormal(0, 0.05, speed.size)
        iv = Measurement(x, block=50).interval("median")
        hits += iv.low <= 10.0 <= iv.high
    assert 0.90 <= hits / 300 <= 1.0


def test_validity_is_about_precision_percentiles_and_load_not_cv():
    rng = np.random.default_rng(3)
    tight = 10 + rng.exponential(0.05, 4000)
    # A heavy tail (CV far above the old 0.30 rule) and still a precise median: VALID.
    tailed = np.where(rng.random(4000) < 0.05, 80.0, 10.0) * rng.lognormal(0, 0.01, 4000)
    m = Measurement(tailed, block=50)
    assert m.cv > 0.3
    verdict = m.validity()
    ok, reason = verdict.valid, verdict.reason
    assert ok, reason
    verdict = Measurement(tight[:100], block=50).validity(Validity(target_ci=1e-5))
    ok, reason = verdict.valid, verdict.reason
    assert not ok and "median known to ±" in reason and "not ±0.0%" in reason
    quiet = [BlockBusy(0.01, 0.0, None)] * 80
    busy = [BlockBusy(0.9, 0.0, None)] * 40 + quiet[:40]
    assert Measurement(tight, block=50, busy=quiet).validity().valid
    verdict = Measurement(tight, block=50, busy=busy).validity()
    ok, reason = verdict.valid, verdict.reason
    assert not ok and "machine busy: 50% of blocks had other processes using > 0.2 cores" in reason


# --- real sessions -------------------------------------------------------------------

def _spin(stop_at: float) -> None:
    while time.monotonic() < stop_at:
        pass


@pytest.fixture(scope="module")
def sessions():
    yield from open_cpu_sessions(["mobilenetv2_100", "fasternet_t0"], 64)


def test_precision_driven_rows_stop_on_their_own(sessions):
    from modbench.schedule import StoppingRule, TimingProtocol, time_sessions

    auto = TimingProtocol(iters=3000, warmup=5, block=20, block_warmup=1,
                          stopping=StoppingRule(target_ci=0.05, min_iters=60))
    ms = time_sessions(sessions, auto)
    for m in ms:
        assert 60 <= m.n <= 3000 and m.n % 20 == 0
        if m.n < 3000:  # stopped early: because its interval was tight enough
            assert m.interval("median").rel_half_width <= 0.05
    # A target nobody reaches: every row runs to the ceiling.
    ms = time_sessions(sessions, TimingProtocol(iters=80, warmup=2, block=20, block_warmup=1,
                                                stopping=StoppingRule(target_ci=1e-6, min_iters=40)))
    assert [m.n for m in ms] == [80, 80]


def test_a_busy_loop_competitor_is_detected_and_quiet_is_not(sessions):
    """A real process spinning on a core while we time: the blocks are flagged."""
    from modbench.schedule import TimingProtocol, time_sessions

    def run():
        return time_sessions(sessions, TimingProtocol(iters=400, auto=False, warmup=5, block=20, block_warmup=1))

    ctx = mp.get_context("spawn")
    hogs = [ctx.Process(target=_spin, args=(time.monotonic() + 60,)) for _ in range(1)]
    for h in hogs:
        h.start()
    try:
        time.sleep(0.5)
        busy = run()
    finally:
        for h in hogs:
            h.terminate()
            h.join()
    time.sleep(0.5)
    quiet = run()
    for m in busy:
        verdict = m.validity(Validity(target_ci=0.5))
        ok, reason = verdict.valid, verdict.reason
        assert not ok and "machine busy" in reason, [b.others_cores for b in m.busy]
        assert max(b.others_cores for b in m.busy) > 0.5
    # Without it the others' load drops by about the competitor's core (in CI, where
    # only this test runs, to near zero and no block is disturbed).
    for b, q in zip(busy, quiet):
        mean = lambda m: np.mean([x.others_cores for x in m.busy])  # noqa: E731
        assert mean(q) < mean(b) - 0.5


def test_an_imprecise_row_says_when_the_machine_speed_moved():
    """A shared VM whose speed moves with its neighbours: the reason names the drift of
    the block medians; a steady but short row is imprecise without that note."""
    rng = np.random.default_rng(7)
    speed = np.repeat(np.where(rng.random(40) < 0.5, 1.0, 1.5), 50)  # per-block speed, bimodal
    drifting = Measurement(10 * speed * rng.lognormal(0, 0.02, speed.size), block=50)
    verdict = drifting.validity()
    ok, reason = verdict.valid, verdict.reason
    assert not ok and "the machine's speed changed while timing" in reason, reason
    steady = Measurement(10 * rng.lognormal(0, 0.05, 300), block=50)
    verdict = steady.validity(Validity(target_ci=1e-4))
    ok, reason = verdict.valid, verdict.reason
    assert not ok and "median known to" in reason and "speed changed" not in reason, reason
