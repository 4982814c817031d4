"""Runs drawn from known distributions, to measure what the gate gets wrong.

The model of a run follows what MEASURING.md saw here: per-iteration noise with a
right tail (lognormal plus rare 1.5-3x spikes from steal time), and a machine speed
that wanders from block to block inside a run (an AR(1) walk on the log scale).
`machine` multiplies a whole run: the between-invocation drift that only a reference
model timed in the same run (or the interleaved mode) can remove.

    python -m tools.gate_error_rates --seeds 200     # false positives and power
"""
from __future__ import annotations

import argparse

import numpy as np

from modbench.gate.verdicts import DEFAULT_ALPHA, DEFAULT_THRESHOLD, judge_samples
from modbench.measurement import Measurement


def block_speed(rng, n_blocks: int, drift_sd: float = 0.02, rho: float = 0.8) -> np.ndarray:
    """Machine speed factor per block: a stationary AR(1) walk in log space."""
    e = rng.standard_normal(n_blocks) * drift_sd * np.sqrt(1 - rho ** 2)
    log = np.empty(n_blocks)
    log[0] = rng.standard_normal() * drift_sd
    for k in range(1, n_blocks):
        log[k] = rho * log[k - 1] + e[k]
    return np.exp(log)


def latency_samples(rng, speed: np.ndarray, block: int, median_ms: float,
                    noise_sd: float = 0.05, spike_p: float = 0.02) -> np.ndarray:
    n = speed.size * block
    x = median_ms * np.repeat(speed, block) * np.exp(rng.standard_normal(n) * noise_sd)
    spikes = rng.random(n) < spike_p
    x[spikes] *= rng.uniform(1.5, 3.0, spikes.sum())
    return x


def synthetic_run(rng, n: int = 400, block: int = 50, median_ms: float = 20.0,
                  slowdown: float = 1.0, machine: float = 1.0, reference_ms: float | None = None,
                  **kw) -> tuple[np.ndarray, np.ndarray | None]:
    """(model samples, reference samples or None) of one run; both share the block speeds."""
    speed = block_speed(rng, n // block) * machine
    x = latency_samples(rng, speed, block, median_ms * slowdown, **kw)
    ref = latency_samples(rng, speed, block, reference_ms, **kw) if reference_ms else None
    return x, ref


def detection_rate(slowdown: float, seeds: int, n: int = 400, block: int = 50,
                   threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA,
                   n_boot: int = 500, machine_sd: float = 0.0, reference: bool = False,
                   first_seed: int = 0) -> float:
    """Share of seeds whose current run (slowed by `slowdown`) is judged slower."""
    hits = 0
    for seed in range(first_seed, first_seed + seeds):
        rng = np.random.default_rng(seed)
        machines = np.exp(rng.standard_normal(2) * machine_sd)
        b, rb = synthetic_run(rng, n, block, machine=machines[0], reference_ms=9.0 if reference else None)
        c, rc = synthetic_run(rng, n, block, slowdown=slowdown, machine=machines[1],
                              reference_ms=9.0 if reference else None)
        if reference:
            b, c = b / _block_medians(rb, block), c / _block_medians(rc, block)
        r = judge_samples(b, c, threshold=threshold, alpha=alpha, block_size=block, n_boot=n_boot, seed=seed)
        hits += r["verdict"] == "slower"
    return hits / seeds


def _block_medians(x: np.ndarray, block: int) -> np.ndarray:
    meds = [Measurement(x[i:i + block]).median for i in range(0, x.size, block)]
    return np.repeat(meds, block)[: x.size]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--iters", type=int, default=400)
    ap.add_argument("--slowdowns", default="1.0,1.04,1.05,1.06,1.07,1.08,1.10,1.15")
    ap.add_argument("--machine-sd", type=float, default=0.0,
                    help="log-sd of the whole-run machine speed (0.10 is what MEASURING.md saw)")
    ap.add_argument("--boot", type=int, default=1000, help="bootstrap resamples (check's default)")
    ap.add_argument("--reference", action="store_true", help="judge relative to a reference model")
    a = ap.parse_args(argv)
    print(f"iters {a.iters}, seeds {a.seeds}, machine sd {a.machine_sd}, reference {a.reference}, "
          f"threshold {DEFAULT_THRESHOLD:.0%}, alpha {DEFAULT_ALPHA}")
    for s in (float(v) for v in a.slowdowns.split(",")):
        rate = detection_rate(s, a.seeds, n=a.iters, machine_sd=a.machine_sd, reference=a.reference,
                              n_boot=a.boot)
        label = "false positives" if s == 1.0 else "detected"
        print(f"slowdown {s - 1:+6.1%}: {label} {rate:6.1%}")


if __name__ == "__main__":
    main()
