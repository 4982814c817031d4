"""bench.py report: the paper's tables, figures and claims from results files, into one folder."""
from __future__ import annotations

import argparse
from pathlib import Path

from common.fsio import atomic_dir, check_new_output

from ..report import claims, plots, tables
from ..report.headline import describe
from ..report.inputs import read_inputs
from ..store import ResultsError


EXAMPLES = """examples:
  bench.py report results/mine.csv --out report-mine
  bench.py report results/mine.csv --out paper --name mynet:build=MyNet-S --only-measured
  bench.py report results/mine.csv --out paper --compare mynet:build=efficientmod_xs --highlight efficientmod_xs
  bench.py report results/*.csv --out everything     # the committed evidence, newest row of each model

Every number is the row's latency_ms (its latency at the machine's normal speed) where
the row has it, else its median_ms; the report's README says which. Rows marked
INVALID (‡, hollow markers) failed their validity check: the machine was busy or the
interval too wide."""


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="tables (Markdown, LaTeX, CSV), plots and claims from results CSVs",
                       description="Tables (Markdown, LaTeX with booktabs, tidy CSV), plots (PNG and PDF) "
                                   "and the paper's claims, from results CSVs, into one new folder.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", metavar="RESULTS", help="results CSVs (their samples beside them)")
    p.add_argument("--out", required=True, help="folder to create (refused if it exists and is not empty)")
    p.add_argument("--stat", choices=("median", "mean"), default="median",
                   help="measured cells: the row's headline latency (latency_ms, else median) [95%% CI] "
                        "(default), or the mean of its samples (the paper's statistic)")
    p.add_argument("--duplicates", choices=("refuse", "latest"), default="latest",
                   help="a model measured by two runs in one column: keep the latest row (default; the "
                        "report's notes say which row replaced which) or refuse")
    p.add_argument("--name", action="append", default=[], metavar="SPEC=LABEL", type=_pair,
                   help="display name of a model in tables and plots (repeatable), e.g. mynet:build=MyNet-S")
    p.add_argument("--highlight", action="append", default=[], metavar="SPEC",
                   help="draw this model highlighted, as your own models are (repeatable)")
    p.add_argument("--only-measured", action="store_true",
                   help="leave out the paper's table rows that have no measurement")
    p.add_argument("--compare", action="append", default=[], metavar="A=B", type=_pair,
                   help="add the latency ratio A / B (paired where the two rows were timed together; "
                        "repeatable); by default each of your models is compared with the paper's models "
                        "nearest in latency")
    p.add_argument("--no-plots", action="store_true", help="tables and claims only")
    p.set_defaults(func=run)


def _pair(text: str) -> tuple[str, str]:
    left, sep, right = str(text).partition("=")  # a label may hold "=" ("Ours (r=6)")
    if not sep or not left.strip() or not right.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, not {text!r}")
    return left.strip(), right.strip()


def check_out_dir(out: Path) -> None:
    check_new_output(out, "report folder", folder=True)


def run(args) -> int:
    out = Path(args.out)
    check_out_dir(out)
    inp = read_inputs(args.results, duplicates=args.duplicates)
    _display(inp, args)
    built = tables.build_all(inp, args.stat, pairs=args.compare)
    # Built in a hidden sibling and renamed at the end: an interrupted or failed report
    # leaves no half folder.
    with atomic_dir(out) as tmp:
        (tmp / "tables").mkdir()
        index = ["# modbench report", "", "Results: " + ", ".join(str(p) for p in inp.files), "",
                 describe(inp.rows(), args.stat), ""]
        index += [f"Note: {n}" for n in inp.notes]
        index += ["", "Columns (each one device, runtime, threads and batch; never averaged together):", ""]
        index += [f"- {c.label}: {len(c.rows)} rows" for c in inp.columns]
        index.append("")
        for t in built:
            (tmp / "tables" / f"{t.name}.md").write_text(tables.to_markdown(t))
            (tmp / "tables" / f"{t.name}.tex").write_text(tables.to_latex(t))
            (tmp / "tables" / f"{t.name}.csv").write_text(tables.to_csv(t))
            index += [tables.to_markdown(t), f"(tables/{t.name}.md, .tex, .csv)", ""]
        claims_md = claims.claims_text(inp, args.stat)
        (tmp / "claims.md").write_text(claims_md)
        index += ["## Claims and rank agreement", "", "See [claims.md](claims.md).", ""]
        figs = [] if args.no_plots else plots.build_all(inp, tmp / "plots")
        if figs:
            index += ["## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in figs if p.suffix == ".png"]
        (tmp / "README.md").write_text("\n".join(index) + "\n")
    print(f"{len(built)} tables, {len([p for p in figs if p.suffix == '.png'])} plots and claims.md "
          f"written to {out}")
    return 0


def _display(inp, args) -> None:
    """--name, --highlight and --only-measured onto the inputs; a model not in the
    results is a typing mistake, refused in one line."""

    known = set(inp.models())
    for spec in [s for s, _ in args.name] + list(args.highlight):
        if spec not in known:
            raise ResultsError(f"{spec!r} is not a model in these results; measured: {', '.join(sorted(known))}")
    inp.names = dict(args.name)
    inp.highlight = set(args.highlight)
    inp.only_measured = args.only_measured
