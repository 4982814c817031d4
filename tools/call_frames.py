"""Print the call frames from `bench.py run` down to the first timed block.

A structural check, not a benchmark: it runs one small model (mobilenetv2_100 at
64x64, one thread, 100 iterations, ort-cpu) and prints the project's frames on the
stack when the first timed block starts, outermost first. The results go to the
given file, which must not exist.

    python -m tools.call_frames OUT.csv
"""
from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

import modbench.runners.base as runner_base
import modbench.runners.ort_cpu as ort_cpu
from modbench.cli import main as bench_main

PROJECT = ("bench", "models", "exporters", "common")
BLOCK = 50


def _frames() -> list[str]:
    root = Path(__file__).resolve().parents[1]
    out = []
    for f in traceback.extract_stack()[:-2]:
        path = Path(f.filename).resolve()
        if path.is_relative_to(root) and path.relative_to(root).parts[0] in PROJECT:
            out.append(f"{path.relative_to(root)}:{f.lineno} {f.name}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="results file for the small run (must not exist)")
    args = ap.parse_args(argv)
    timed = runner_base.time_calls
    printed = []

    def time_calls(fn, n, *a):
        # The first block of BLOCK iterations is the first timed block (warm-up is 10).
        if n == BLOCK and not printed:
            printed.extend(_frames())
        return timed(fn, n, *a)

    # The runner module holds its own reference to the timing loop.
    ort_cpu.time_calls = time_calls
    try:
        code = bench_main(["run", "mobilenetv2_100", "--runtime", "ort-cpu", "--iters", "100", "--threads", "1",
                           "--resolution", "64", "--warmup", "10", "--block", str(BLOCK), "--out", args.out])
    finally:
        ort_cpu.time_calls = timed
    print(f"{len(printed)} frames in {len({p.split(':')[0] for p in printed})} files, outermost first:")
    print("\n".join(printed))
    return code


if __name__ == "__main__":
    sys.exit(main())
