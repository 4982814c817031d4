"""bench.py list: the registry, with measured and paper params/MACs."""
from __future__ import annotations

import csv
import json
import sys

from modbench.common.errors import UsageError
from modbench.models import suites

from ..catalog import catalog
from ..textable import render
from . import COMMANDS
from . import _args as A


def add_parser(sub) -> None:
    p = sub.add_parser("list", help=COMMANDS["list"],
                       **A.examples("list", "list --format csv"))
    p.add_argument("--suite", help="only the models of this suite")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="output format (default table)")
    p.add_argument("--no-count", action="store_true",
                   help="skip building models to count params and MACs")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.suite and args.suite not in suites():
        raise UsageError(f"unknown suite {args.suite!r}; known: {', '.join(suites())}")
    rows = catalog(args.suite, measure=not args.no_count)
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=1)
        print()
    elif args.format == "csv":
        w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    else:
        cols = ["name", "available", "resolution", "params_m", "paper_params_m", "macs_g",
                "paper_macs_g", "top1", "paper_gpu_ms", "paper_cpu_ms", "suites", "note"]
        heads = {"params_m": "params(M)", "paper_params_m": "paper", "macs_g": "MACs(G)",
                 "paper_macs_g": "paper", "paper_gpu_ms": "P100 ms", "paper_cpu_ms": "Xeon ms",
                 "resolution": "res", "top1": "top-1"}
        print(render(rows, cols, heads))
    return 0
