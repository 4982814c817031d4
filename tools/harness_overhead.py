"""Harness overhead benchmark: the suite's timed loop against a bare
`session.run` loop on the same ONNX file, interleaved block by block in one
process so machine drift hits both alike.

    python -m tools.harness_overhead [--model efficientmod_xxs] [--threads 2] [--blocks 40] [--block 50]

Prints the ratios of medians and of means (suite / bare), each with a 95%
interval over paired blocks. Targets: medians at most 1.01, means at most 1.015.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import onnxruntime as ort

from modbench.measurement import Measurement
from modbench.pipeline import RunRequest, plan, prepare
from modbench.runners import RunSettings, get_runner
from modbench.runners.ort_cpu import cpu_session_options
from modbench.stats import paired_ratio, verdict_at_most
from tools.selfbench import SUITE_VS_BARE_GOALS


def bare_loop(sess, feed: dict, n: int) -> np.ndarray:
    """What a user would write by hand: perf_counter around session.run."""
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        sess.run(None, feed)
        out[i] = (time.perf_counter() - t0) * 1e3
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="efficientmod_xxs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--blocks", type=int, default=40)
    ap.add_argument("--block", type=int, default=50)
    ap.add_argument("--spinning", choices=("on", "off"), default="on")
    ap.add_argument("--same-session", action="store_true",
                    help="time the bare loop on the suite's own InferenceSession: isolates the "
                         "loop itself from differences between two sessions")
    args = ap.parse_args(argv)

    req = RunRequest(models=[args.model], threads=[args.threads])
    prepared = prepare(plan(req)[0], req, "onnx")
    art = prepared.artifact
    settings = RunSettings(threads=args.threads, spinning=args.spinning == "on")
    suite = get_runner("ort-cpu").open(art, art.input_shape, settings)
    if args.same_session:
        bare = suite._sess
    else:
        bare = ort.InferenceSession(str(art.path), cpu_session_options(settings),
                                    providers=["CPUExecutionProvider"])
    feed = {art.input_name: np.random.default_rng(0).standard_normal(art.input_shape, dtype=np.float32)}

    suite.run_block(args.block)
    bare_loop(bare, feed, args.block)
    suite_blocks, bare_blocks = [], []
    for k in range(args.blocks):
        # Alternate which goes first so neither always follows the other.
        first, second = (("suite", "bare") if k % 2 == 0 else ("bare", "suite"))
        for who in (first, second):
            if who == "suite":
                suite_blocks.append(suite.run_block(args.block))
            else:
                bare_blocks.append(bare_loop(bare, feed, args.block))
    s_all = Measurement(np.concatenate(suite_blocks))
    b_all = Measurement(np.concatenate(bare_blocks))
    how = "one shared session" if args.same_session else "two sessions on the same file"
    print(f"model {args.model}, ORT CPU, {args.threads} threads, {args.blocks} x {args.block} "
          f"iterations each, interleaved, {how}, spinning {args.spinning}")

    def summary(m) -> str:
        p90 = m.percentile(90)  # None below the samples a p90 needs
        return f"median {m.median:.3f} ms, mean {m.mean:.3f} ms" + (f" (p90 {p90:.3f})" if p90 is not None else "")

    print(f"suite {summary(s_all)}; bare {summary(b_all)}")
    for stat, goal in SUITE_VS_BARE_GOALS:
        r = paired_ratio(s_all.samples_ms, b_all.samples_ms, args.block, stat=stat)
        print(f"overhead ratio (suite/bare) of {stat}s: paired over {r.n_blocks} blocks {r.estimate:.4f} "
              f"(95% CI {r.low:.4f}-{r.high:.4f}); target <= {goal}: {verdict_at_most(r.low, r.high, goal)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
