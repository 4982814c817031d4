"""The gate's statistics on samples drawn from known distributions."""
import math

import numpy as np
import pytest

from modbench.gate.verdicts import judge_samples
from modbench.stats import boot_block_length, headline_interval, kendall, mann_whitney, paired_ratio, spearman, \
    unpaired_ratio
from tools.gate_error_rates import block_speed, detection_rate, latency_samples, synthetic_run


def test_mann_whitney_is_scipys_two_sided_asymptotic_test():
    # n1 = n2 = 3, U = 0: mu 4.5, var 5.25, continuity-corrected z = 4 / sqrt(5.25).
    assert mann_whitney([1, 2, 3], [4, 5, 6]) == pytest.approx(math.erfc(4 / math.sqrt(5.25) / math.sqrt(2)))
    assert mann_whitney(np.ones(5), np.ones(7)) == 1.0


def test_bootstrap_interval_covers_a_known_ratio():
    rng = np.random.default_rng(2)
    speed = block_speed(rng, 16)
    base = latency_samples(rng, speed, 25, 20.0)
    cur = latency_samples(rng, speed, 25, 22.0)  # 10% slower, same machine minutes
    r = paired_ratio(cur, base, 25, n_resamples=500)
    assert r.low < 1.10 < r.high and r.low > 1.0


def test_pairing_cancels_drift_shared_by_both_rows():
    rng = np.random.default_rng(3)
    speed = block_speed(rng, 20, drift_sd=0.08)
    base, cur = latency_samples(rng, speed, 20, 20.0), latency_samples(rng, speed, 20, 20.0)
    p = paired_ratio(cur, base, 20, n_resamples=500)
    u = unpaired_ratio(cur, base, n_resamples=500, block_size=20)
    assert p.high - p.low < u.high - u.low


def test_paired_ratio_uses_the_blocks_both_rows_have():
    rng = np.random.default_rng(6)
    speed = block_speed(rng, 30)
    a, b = latency_samples(rng, speed, 10, 11.0), latency_samples(rng, speed, 10, 10.0)
    r = paired_ratio(a[:120], b, 10)
    assert r.n_blocks == 12 and r.low < 1.1 < r.high


def test_headline_interval_widens_with_drift_that_order_statistics_ignore():
    """Correlated samples: blocks that drift together. The batch interval sees the
    drift; an interval that trusted 4000 independent samples would be far narrower."""
    rng = np.random.default_rng(7)
    speed = block_speed(rng, 80, drift_sd=0.05)
    x = latency_samples(rng, speed, 50, 10.0)
    iv = headline_interval(x, 50)
    # The distribution-free interval of the median from order statistics (ranks
    # n/2 -+ 1.96 sqrt(n)/2), valid only for independent samples.
    s, n = np.sort(x), x.size
    lo, hi = s[int(n / 2 - 0.98 * math.sqrt(n))], s[int(n / 2 + 0.98 * math.sqrt(n))]
    assert iv.rel_half_width > 2 * (hi - lo) / 2 / np.median(x)
    quiet = latency_samples(rng, np.ones(80), 50, 10.0)
    assert headline_interval(quiet, 50).rel_half_width < iv.rel_half_width


def test_rank_correlations():
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert kendall([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert kendall([1, 1, 2], [1, 2, 2]) == pytest.approx(0.5)  # tau-b with a tie on each side
    assert math.isnan(kendall([1, 1], [2, 3]))


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
    assert judge_samples(b, c, block_size=50, n_boot=300)["verdict"] == "faster"


def test_a_slower_machine_needs_the_reference_to_pass():
    # The whole current run 20% slower (another minute on a shared VM), code unchanged.
    rng = np.random.default_rng(5)
    b, rb = synthetic_run(rng, 400, reference_ms=9.0)
    c, rc = synthetic_run(rng, 400, machine=1.2, reference_ms=9.0)
    assert judge_samples(b, c, block_size=50, n_boot=300)["verdict"] == "slower"
    med = lambda x: np.repeat([np.median(x[i:i + 50]) for i in range(0, 400, 50)], 50)  # noqa: E731
    assert judge_samples(b / med(rb), c / med(rc), block_size=50, n_boot=300)["verdict"] == "unchanged"
