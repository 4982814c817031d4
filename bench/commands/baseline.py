"""bench.py baseline save|show: the runs `check` compares against, one folder per machine."""
from __future__ import annotations

from ..env import cpu_name, fingerprint, machine_env
from ..gate import baselines
from ..gate.verdicts import read_run
from ..measurement import Measurement
from ..report.headline import describe, headline, is_valid
from ..store import StoredRow
from ..textable import render
from . import COMMANDS
from . import _args as A


def add_parser(sub) -> None:
    p = sub.add_parser("baseline", help=COMMANDS["baseline"],
                       **A.examples("baseline save results/main.csv --name main",
                                    "baseline show", "baseline show main"))
    bsub = p.add_subparsers(dest="baseline_command", required=True, parser_class=type(p))
    s = bsub.add_parser("save", help="freeze a results run as a named baseline of its machine",
                        **A.examples("baseline save results/main.csv --name main"))
    s.add_argument("results", metavar="RESULTS.csv", help="the results CSV to keep (with its samples)")
    s.add_argument("--name", default="main", help="baseline name (default main)")
    s.add_argument("--dir", default="baselines", help="where baselines live (default baselines/)")
    s.add_argument("--replace", action="store_true",
                   help="replace an existing baseline of that name (the old one is kept, renamed)")
    s.set_defaults(func=save)
    sh = bsub.add_parser("show", help="list baselines of this machine, or the rows of one",
                         **A.examples("baseline show", "baseline show main"))
    sh.add_argument("name", nargs="?", help="a baseline's name: print its rows (default: list the baselines)")
    sh.add_argument("--dir", default="baselines", help="where baselines live (default baselines/)")
    sh.add_argument("--all-machines", action="store_true", help="list the baselines of every machine")
    sh.set_defaults(func=show)


def _this_machine() -> str:
    # CPU runners record the CPU's name as device_name.
    return fingerprint(dict(machine_env(), device_name=cpu_name()))


def save(args) -> int:
    path, m = baselines.save(args.results, args.name, args.dir, replace=args.replace)
    print(f"baseline {m['name']!r} saved to {path}: {m['rows']} rows of {', '.join(m['models'])}; "
          f"{len(m['artifacts'])} ONNX files kept for --interleaved; machine {m['fingerprint']}")
    return 0


def show(args) -> int:
    if args.name:
        csv_path, m = baselines.resolve(args.name, _this_machine(), args.dir)
        run = read_run(csv_path)
        rows, figures = [], set()
        for rec in run.df.to_dict("records"):
            row = StoredRow(rec, csv_path)
            ms = Measurement(row.samples())
            # The headline as reports and claims read it, with its interval from the
            # row's timing blocks (one block of all samples has none: that was nan-nan).
            h = headline(row)
            figures.add(h.figure)
            rows.append({"row_id": rec["row_id"], "latency_ms": h.value,
                         "ci": f"{h.low:.2f}-{h.high:.2f}" if h.has_interval else "- (one block)",
                         "iters": ms.n, "cv": ms.cv, "valid": "VALID" if is_valid(row) else "INVALID",
                         "onnx saved": rec["row_id"] in m["artifacts"]})
        print(f"baseline {m['name']!r} at {m['path']} (saved {m['saved']} from {m['source']}, "
              f"commit {', '.join(c[:10] for c in m['git_commit'])})")
        print(render(rows, ["row_id", "latency_ms", "ci", "iters", "cv", "valid", "onnx saved"],
                     {"latency_ms": "latency ms", "ci": "95% CI"}))
        print(describe([StoredRow(rec, csv_path) for rec in run.df.to_dict("records")]))
        return 0
    fp = None if args.all_machines else _this_machine()
    es = baselines.entries(args.dir, fp)
    if not es:
        where = "any machine" if fp is None else f"this machine ({fp})"
        print(f"no baselines for {where} under {args.dir}")
        return 0
    print(render([{"name": e["name"], "saved": e["saved"], "rows": e["rows"],
                   "models": ", ".join(e["models"]), "machine": e["fingerprint"], "path": e["path"]}
                  for e in es], ["name", "saved", "rows", "models", "machine", "path"]))
    return 0
