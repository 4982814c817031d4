"""bench.py claims: check the paper's latency claims against results files (Markdown)."""
from __future__ import annotations

from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("claims", help="check the paper's latency claims against results CSVs")
    p.add_argument("results", nargs="+", metavar="RESULTS")
    p.add_argument("--out", help="also write the Markdown to this new file (never overwritten)")
    p.add_argument("--duplicates", choices=("refuse", "latest"), default="refuse",
                   help="a model measured twice in one column: refuse (default) or keep the latest row")
    p.add_argument("--stat", choices=("median", "mean"), default="median",
                   help="statistic every verdict uses (default median; the paper's tables are means)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..report import claims
    from ..report.inputs import load
    from models.fsio import check_new_output, write_new

    if args.out:
        check_new_output(Path(args.out), "--out file", inputs=args.results)
    text = claims.report(load(args.results, duplicates=args.duplicates), args.stat)
    if args.out:
        write_new(Path(args.out), text, "--out file")  # whole or not at all, never over a file
    print(text)
    return 0
