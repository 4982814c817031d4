"""bench.py gpu: which GPU runtimes can run here, and the GPU they would record.

Run it first on a GPU machine: a measurement plan skips the runtimes this
reports as unusable instead of failing halfway through a lease."""
from __future__ import annotations

import json

from modbench.common.errors import UsageError

from ..gpu_env import gpu_columns, gpu_extra, ort_cuda_versions, torch_cuda_versions
from ..runners import RUNNERS, RunnerUnavailable, get_runner
from . import COMMANDS
from . import _args as A


def add_parser(sub) -> None:
    p = sub.add_parser("gpu", help=COMMANDS["gpu"],
                       **A.examples("gpu", "gpu --runtime ort-cuda"))
    p.add_argument("--runtime", help="check only this runtime; exit 2 with its reason if it cannot run")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    names = [n for n, r in RUNNERS.items() if r.device == "cuda"]
    if args.runtime:
        try:
            runner = get_runner(args.runtime)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        runner.check_available()  # RunnerUnavailable: one line, exit 2
        print(f"{args.runtime}: available")
        return 0
    status = {}
    for name in names:
        try:
            get_runner(name).check_available()
            status[name] = "available"
        except RunnerUnavailable as exc:
            status[name] = f"unavailable: {exc}"
    env = {"torch": {**gpu_columns(0, torch_cuda_versions())}, "onnxruntime": ort_cuda_versions(),
           "nvml": gpu_extra(0)}
    if args.json:
        print(json.dumps({"runtimes": status, "env": env}, indent=1, sort_keys=True))
        return 0
    for name, s in status.items():
        print(f"{name:20s} {s}")
    for k, v in sorted(env["torch"].items()):
        print(f"{k:20s} {v}")
    print(f"{'ort_cuda_build':20s} {env['onnxruntime']['cuda_version']}")
    for k, v in sorted(env["nvml"].items()):
        print(f"{k:20s} {v}")
    return 0
