"""How small a step the history's change-point detector finds, and how often it finds
one where nothing changed, on this machine with the default short run.

Commits are simulated by timing the same model again (`modbench run`, one run per
commit, the short run's settings); a planted step is a real extra layer: half of a
series is the base model, the other half the model with the layer. Each extra layer
is a different step size (a ReLU or a depthwise convolution is a small one, a 3x3 convolution a large one); its
true size is measured from the runs themselves.

    python -m tools.history_detection --commits 20 --trials 10          # full size (alone)
    python -m tools.history_detection --commits 6 --trials 1 --layers 3x3   # a smoke run

Prints, per planted layer: its measured step, the share of series where the detector
named the planted commit (and nothing else), and the false change points per 100
unchanged commits (series of the base model only)."""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from modbench import cli
from modbench.history import changes as C
from modbench.history.store import point_of
from modbench.store import read_rows

NET = '''from torch import nn


def build():
    layers = [nn.Conv2d(3, 24, 3, padding=1), nn.ReLU()]
    for _ in range(2):
        layers += [nn.Conv2d(24, 24, 3, padding=1), nn.ReLU()]
    layers += {extra}
    return nn.Sequential(*layers)
'''
EXTRA = {"base": "[]", "relu": "[nn.ReLU()]", "dw3x3": "[nn.Conv2d(24, 24, 3, padding=1, groups=24)]", "1x1": "[nn.Conv2d(24, 24, 1)]", "3x3": "[nn.Conv2d(24, 24, 3, padding=1)]",
         "2x3x3": "[nn.Conv2d(24, 24, 3, padding=1), nn.Conv2d(24, 24, 3, padding=1)]"}


def time_once(folder: Path, kind: str, n: int, args) -> C.CommitPoint:
    """One `modbench run` of the model with `kind` of extra layer: one commit's point."""
    out = folder / f"{kind}-{n}.csv"
    argv = ["run", f"{kind}.py:build", "--iters", str(args.iters), "--warmup", "2", "--block", str(args.block),
            "--resolution", "32", "--threads", "1", "--out", str(out)]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = cli.main(argv)
    if code != 0:
        raise SystemExit(f"modbench {' '.join(argv)} exited {code}")
    p = point_of(read_rows(out)[0])
    return C.CommitPoint(f"{kind}{n}", "2026-01-01T00:00:00+00:00", kind, "main", p.value_ms, p.low_ms, p.high_ms,
                         p.valid, p.invalid_reason, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--commits", type=int, default=20, help="commits per series (the step in the middle)")
    ap.add_argument("--trials", type=int, default=10, help="series of each kind")
    ap.add_argument("--layers", default="relu,dw3x3,1x1,3x3", help=f"planted layers, from {', '.join(EXTRA)}")
    ap.add_argument("--iters", type=int, default=40, help="timed iterations per run (the short run's 40)")
    ap.add_argument("--block", type=int, default=10)
    ap.add_argument("--out", type=Path, help="write the figures as JSON here (a new file)")
    args = ap.parse_args()
    layers = [x for x in args.layers.split(",") if x]
    unknown = [x for x in layers if x not in EXTRA or x == "base"]
    if unknown or args.commits < 4 or args.trials < 1:
        raise SystemExit(f"usage: layers from {', '.join(k for k in EXTRA if k != 'base')}, commits >= 4, trials >= 1")
    if args.out is not None and args.out.exists():
        raise SystemExit(f"{args.out} exists; give a new --out")
    half = args.commits // 2
    false_cps = flat_commits = 0
    found = {k: [] for k in layers}
    steps = {k: [] for k in layers}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for kind in ["base", *layers]:
            (folder / f"{kind}.py").write_text(NET.format(extra=EXTRA[kind]))
        old = os.getcwd()
        os.chdir(folder)
        try:
            n = 0
            for t in range(args.trials):
                base = [time_once(folder, "base", n + i, args) for i in range(args.commits)]
                n += args.commits
                flat = C.Series(("base",), base)
                false_cps += len(C.detect(flat))
                flat_commits += len(base)
                for kind in layers:
                    after = [time_once(folder, kind, n + i, args) for i in range(args.commits - half)]
                    n += len(after)
                    series = C.Series((kind,), base[:half] + after)
                    cps = C.detect(series)
                    found[kind].append(len(cps) == 1 and cps[0].index == half)
                    steps[kind].append(float(np.exp(np.mean(np.log([p.value_ms for p in after]))
                                                    - np.mean(np.log([p.value_ms for p in base[:half]])))))
                print(f"trial {t + 1}/{args.trials} done", flush=True)
        finally:
            os.chdir(old)
    report = {"commits": args.commits, "trials": args.trials, "iters": args.iters, "params": vars(C.Params()),
              "false_change_points_per_100_commits": 100.0 * false_cps / flat_commits,
              "layers": {k: {"step_pct_median": (float(np.median(steps[k])) - 1) * 100,
                             "found_share": float(np.mean(found[k]))} for k in layers}}
    print(f"{args.commits} commits per series, {args.trials} trials, {args.iters} iterations per run")
    for k, v in report["layers"].items():
        print(f"  +{k}: step {v['step_pct_median']:+.1f}% (median), planted commit named alone in "
              f"{v['found_share']:.0%} of series")
    print(f"  unchanged: {report['false_change_points_per_100_commits']:.1f} false change points per 100 commits "
          f"({false_cps} in {flat_commits})")
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
