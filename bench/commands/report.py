"""bench.py report: the paper's tables, figures and claims from results files, into one folder."""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from modbench.common.errors import UsageError
from modbench.common.fsio import atomic_dir, check_new_output

from . import COMMANDS
from . import _args as A
from ..report import claims, plots, profiles, tables
from ..report.headline import describe
from ..report.inputs import read_inputs
from ..store import ResultsError


EXAMPLES = ("report results/mine.csv --out report-mine",
            "report results/mine.csv --out paper --name mynet:build=MyNet-S --only-measured",
            "report results/mine.csv --out paper --compare mynet:build=efficientmod_xs --highlight efficientmod_xs",
            "report results/*.csv --out everything     # the committed evidence, newest row of each model")
READING = """Every number is the row's latency_ms (its latency at the machine's normal speed) where
the row has it, else its median_ms; the report's README says which. Rows marked
INVALID (‡, hollow markers) failed their validity check: the machine was busy or the
interval too wide."""


def add_parser(sub) -> None:
    p = sub.add_parser("report", help=COMMANDS["report"],
                       description="Tables (Markdown, LaTeX with booktabs, tidy CSV), plots (PNG and PDF) "
                                   "and the paper's claims, from results CSVs, into one new folder.",
                       **A.examples(*EXAMPLES, after=READING))
    p.add_argument("results", nargs="*", metavar="RESULTS", help="results CSVs (their samples beside them)")
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
    p.add_argument("--profiles", action="append", default=[], metavar="PROFILE.csv",
                   help="node tables of `profile --out` (repeatable): adds per-operator tables and a "
                        "stacked bar per runtime; alone, without RESULTS, the report holds only those")
    p.set_defaults(func=run)


def _pair(text: str) -> str:
    """A NAME=VALUE option as typed: where it splits is decided against the measured
    models (`split_pair`), since a spec (`specs/net=v2.py:build`) and a label
    ("Ours (r=6)") may each hold "=" too."""
    text = str(text)
    if "=" not in text.strip("=") or not text.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, not {text!r}")
    return text


def split_pair(text: str, known: set[str], option: str, both: bool) -> tuple[str, str]:
    """The split of `text` at the "=" whose left side (and, with `both`, right side) is
    a measured model; one line when none is, or when two splits would be."""
    splits = [(text[:i].strip(), text[i + 1:].strip()) for i, ch in enumerate(text) if ch == "="]
    fits = [(a, b) for a, b in splits if a in known and b and (b in known or not both)]
    if len(fits) == 1:
        a, b = fits[0]
        if both and a == b:
            raise ResultsError(f"{option} {text}: compares {a} with itself; name two models")
        return fits[0]
    if fits:
        raise ResultsError(f"{option} {text}: splits at more than one '=' into measured models "
                           f"({'; '.join(f'{a} = {b}' for a, b in fits)}); rename a model")
    what = "two measured models" if both else "a measured model and a label"
    raise ResultsError(f"{option} {text}: no '=' splits it into {what}; measured: {', '.join(sorted(known))}")


def check_out_dir(out: Path) -> None:
    check_new_output(out, "report folder", folder=True)


def run(args) -> int:
    out = Path(args.out)
    if not args.results and not args.profiles:
        raise UsageError("name at least one RESULTS file or --profiles file")
    check_out_dir(out)
    nodes = pd.concat([profiles.read_nodes(f) for f in args.profiles]) if args.profiles else None
    if not args.results:
        return _profiles_only(args, out, nodes)
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
        if nodes is not None:
            index += _profile_parts(args, tmp, nodes, figs)
        if figs:
            index += ["## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in figs if p.suffix == ".png"]
        (tmp / "README.md").write_text("\n".join(index) + "\n")
    print(f"{len(built)} tables, {len([p for p in figs if p.suffix == '.png'])} plots and claims.md "
          f"written to {out}")
    return 0


def _profile_parts(args, tmp: Path, nodes, figs: list) -> list[str]:
    """The profiles' tables (Markdown, LaTeX, CSV) and stacked bars into the report
    folder; the README's lines for them."""
    (tmp / "tables").mkdir(exist_ok=True)
    lines = ["## Where the time goes (per-operator profiles)", "", "Profiles: " + ", ".join(args.profiles), ""]
    for t in profiles.tables(nodes):
        (tmp / "tables" / f"{t.name}.md").write_text(tables.to_markdown(t))
        (tmp / "tables" / f"{t.name}.tex").write_text(tables.to_latex(t))
        (tmp / "tables" / f"{t.name}.csv").write_text(tables.to_csv(t))
        lines += [tables.to_markdown(t), f"(tables/{t.name}.md, .tex, .csv)", ""]
    if not args.no_plots:
        figs += plots.profile_bars(nodes, tmp / "plots")
    return lines


def _profiles_only(args, out: Path, nodes) -> int:
    with atomic_dir(out) as tmp:
        figs: list = []
        index = ["# modbench report", ""] + _profile_parts(args, tmp, nodes, figs)
        index += [f"![{p.stem}](plots/{p.name})" for p in figs if p.suffix == ".png"]
        (tmp / "README.md").write_text("\n".join(index) + "\n")
    print(f"{len(list(profiles.tables(nodes)))} profile tables and {len([p for p in figs if p.suffix == '.png'])} "
          f"plots written to {out}")
    return 0


def _display(inp, args) -> None:
    """--name, --highlight and --only-measured onto the inputs; a model not in the
    results is a typing mistake, refused in one line."""

    known = set(inp.models())
    args.name = [split_pair(t, known, "--name", both=False) for t in args.name]
    args.compare = [split_pair(t, known, "--compare", both=True) for t in args.compare]
    for spec in [s for s, _ in args.name] + list(args.highlight):
        if spec not in known:
            raise ResultsError(f"{spec!r} is not a model in these results; measured: {', '.join(sorted(known))}")
    inp.names = dict(args.name)
    inp.highlight = set(args.highlight)
    inp.only_measured = args.only_measured
