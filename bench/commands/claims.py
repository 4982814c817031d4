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
    p.add_argument("--format", choices=("markdown", "json"), default="markdown",
                   help="what to print: Markdown (default) or JSON (docs/json-output.md); --out is Markdown")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..report import claims
    from ..report.inputs import load
    from models.fsio import atomic_write, probe_writable

    from ..store import ResultsError

    if args.out and Path(args.out).exists():
        raise ResultsError(f"{args.out} already exists; reports are never overwritten")
    if args.out:
        probe_writable(Path(args.out), "--out file")
    inp = load(args.results, duplicates=args.duplicates)
    text = claims.report(inp, args.stat)
    if args.out:
        atomic_write(Path(args.out), text)  # whole or not at all
    print(claims.to_json(inp, args.stat) if args.format == "json" else text)
    return 0
