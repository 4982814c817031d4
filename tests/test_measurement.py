import numpy as np
import pytest

from bench.measurement import Measurement


def test_statistics_derive_from_samples():
    rng = np.random.default_rng(0)
    s = rng.lognormal(3.0, 0.1, size=1000)
    m = Measurement(s, warmup=10, load_ms=5.0, first_run_ms=40.0)
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


def test_median_ci_covers_true_median_and_narrows():
    rng = np.random.default_rng(1)
    true_median = np.exp(3.0)
    covered = sum(lo <= true_median <= hi for lo, hi in
                  (Measurement(rng.lognormal(3.0, 0.2, 200)).median_ci() for _ in range(400)))
    assert 0.90 <= covered / 400 <= 0.99
    small = Measurement(rng.lognormal(3.0, 0.2, 100)).median_ci()
    large = Measurement(rng.lognormal(3.0, 0.2, 10000)).median_ci()
    assert (large[1] - large[0]) < (small[1] - small[0]) / 4


def test_validity_flags_few_iterations_and_high_cv():
    ok, reason = Measurement(np.full(200, 10.0) + np.arange(200) * 1e-3).validity()
    assert ok and reason == ""
    ok, reason = Measurement(np.full(20, 10.0)).validity(min_iters=100)
    assert not ok and "too few iterations (20 < 100)" in reason
    noisy = np.concatenate([np.full(150, 10.0), np.full(50, 40.0)])
    ok, reason = Measurement(noisy).validity(max_cv=0.3)
    assert not ok and "CV" in reason
