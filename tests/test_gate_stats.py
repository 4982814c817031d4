"""The gate's statistics on samples drawn from known distributions."""
import itertools
import math

import numpy as np
import pytest

from bench.gate.compare import judge
from bench.gate.stats import boot_block_length, mann_whitney, ratio_ci
from bench.gate.synthetic import block_speed, detection_rate, latency_samples, synthetic_run


def test_mann_whitney_matches_the_textbook_value():
    # n1 = n2 = 3, U = 0: mu 4.5, var 5.25, continuity-corrected z = 4 / sqrt(5.25).
    t = mann_whitney([1, 2, 3], [4, 5, 6])
    assert t.u == 0
    assert t.p == pytest.approx(math.erfc(4 / math.sqrt(5.25) / math.sqrt(2)), rel=1e-12)
    assert t.p == pytest.approx(0.0808556, abs=1e-6)


def test_mann_whitney_counts_pairs_and_ties():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 5, 40).astype(float), rng.integers(1, 6, 30).astype(float)
    brute = sum((x > y) + 0.5 * (x == y) for x, y in itertools.product(a, b))
    assert mann_whitney(a, b).u == pytest.approx(brute)
    assert mann_whitney(a, a).p == pytest.approx(1.0)
    assert mann_whitney(np.ones(5), np.ones(7)).p == 1.0


def test_bootstrap_interval_covers_a_known_ratio():
    rng = np.random.default_rng(2)
    speed = block_speed(rng, 16)
    base = latency_samples(rng, speed, 25, 20.0)
    cur = latency_samples(rng, speed, 25, 22.0)  # 10% slower, same machine minutes
    lo, hi = ratio_ci(base, cur, block_size=25, paired=True, n_boot=500)
    assert lo < 1.10 < hi and lo > 1.0


def test_pairing_cancels_drift_shared_by_both_rows():
    rng = np.random.default_rng(3)
    speed = block_speed(rng, 20, drift_sd=0.08)
    base, cur = latency_samples(rng, speed, 20, 20.0), latency_samples(rng, speed, 20, 20.0)
    lo_p, hi_p = ratio_ci(base, cur, block_size=20, paired=True, n_boot=500)
    lo_u, hi_u = ratio_ci(base, cur, block_size=20, paired=False, n_boot=500)
    assert hi_p - lo_p < hi_u - lo_u


def test_block_length_keeps_enough_blocks():
    assert boot_block_length(300, 50) == 15
    assert boot_block_length(4000, 50) == 50
    assert boot_block_length(10, 50) == 1


def test_identical_distributions_are_not_flagged():
    # 60 seeds at the default settings; over 1000 seeds the rate is 1.6% (docs/regression-gate.md).
    assert detection_rate(1.0, seeds=60, n=400, n_boot=300) <= 1 / 60


def test_a_known_slowdown_is_flagged():
    assert detection_rate(1.15, seeds=30, n=400, n_boot=300) == 1.0


def test_speedup_is_faster_not_slower():
    rng = np.random.default_rng(4)
    b, _ = synthetic_run(rng, 400)
    c, _ = synthetic_run(rng, 400, slowdown=0.8)
    assert judge(b, c, block_size=50, n_boot=300)["verdict"] == "faster"


def test_a_slower_machine_needs_the_reference_to_pass():
    # The whole current run 20% slower (another minute on a shared VM), code unchanged.
    rng = np.random.default_rng(5)
    b, rb = synthetic_run(rng, 400, reference_ms=9.0)
    c, rc = synthetic_run(rng, 400, machine=1.2, reference_ms=9.0)
    assert judge(b, c, block_size=50, n_boot=300)["verdict"] == "slower"
    med = lambda x: np.repeat([np.median(x[i:i + 50]) for i in range(0, 400, 50)], 50)  # noqa: E731
    assert judge(b / med(rb), c / med(rc), block_size=50, n_boot=300)["verdict"] == "unchanged"
