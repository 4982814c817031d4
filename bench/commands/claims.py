"""bench.py claims: check the paper's latency claims against results files (Markdown)."""
from __future__ import annotations

from pathlib import Path

from modbench.common.fsio import check_new_output, write_new

from . import COMMANDS
from . import _args as A
from ..report import claims
from ..report.inputs import read_inputs


def add_parser(sub) -> None:
    p = sub.add_parser("claims", help=COMMANDS["claims"],
                       description="Each latency claim of the EfficientMod paper judged on measured rows "
                                   "(Markdown on stdout): holds, does not hold, or inconclusive, by the 95% "
                                   "CI of the measured ratio; a verdict resting on an INVALID row is marked ‡.",
                       **A.examples("claims results/*.csv", "claims results/mine.csv --stat mean --out claims.md"))
    p.add_argument("results", nargs="+", metavar="RESULTS", help="results CSVs (their samples beside them)")
    p.add_argument("--out", help="also write the Markdown to this new file (never overwritten)")
    p.add_argument("--duplicates", choices=("refuse", "latest"), default="latest",
                   help="a model measured by two runs in one column: keep the latest row (default, said in "
                        "a note) or refuse")
    p.add_argument("--stat", choices=("median", "mean"), default="median",
                   help="statistic every verdict uses (default median; the paper's tables are means)")
    p.add_argument("--format", choices=("markdown", "json"), default="markdown",
                   help="what to print: Markdown (default) or JSON (docs/json-output.md); --out is Markdown")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.out:
        check_new_output(Path(args.out), "--out file", inputs=args.results)
    inp = read_inputs(args.results, duplicates=args.duplicates)
    text = claims.claims_text(inp, args.stat)
    if args.out:
        write_new(Path(args.out), text, "--out file")  # whole or not at all, never over a file
    print(claims.to_json(inp, args.stat) if args.format == "json" else text)
    return 0
