"""bench.py report: the paper's tables, figures and claims from results files, into one folder."""
from __future__ import annotations

from pathlib import Path

from models.fsio import atomic_dir


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="tables (Markdown, LaTeX, CSV), plots and claims from results CSVs")
    p.add_argument("results", nargs="+", metavar="RESULTS", help="results CSVs (their samples beside them)")
    p.add_argument("--out", required=True, help="folder to create (refused if it exists and is not empty)")
    p.add_argument("--stat", choices=("median", "mean"), default="median",
                   help="measured cells: median [95%% CI] (default) or mean ± std (as the paper prints)")
    p.add_argument("--duplicates", choices=("refuse", "latest"), default="refuse",
                   help="a model measured twice in one column: refuse (default) or keep the latest row")
    p.add_argument("--no-plots", action="store_true", help="tables and claims only")
    p.set_defaults(func=run)


def check_out_dir(out: Path) -> None:
    from models.fsio import check_new_output

    check_new_output(out, "report folder", folder=True)


def run(args) -> int:
    from ..report import claims, plots, tables
    from ..report.inputs import load

    out = Path(args.out)
    check_out_dir(out)
    inp = load(args.results, duplicates=args.duplicates)
    built = tables.build_all(inp, args.stat)
    # Built in a hidden sibling and renamed at the end: an interrupted or failed report
    # leaves no half folder.
    with atomic_dir(out) as tmp:
        (tmp / "tables").mkdir()
        index = ["# modbench report", "", "Results: " + ", ".join(str(p) for p in inp.files), ""]
        index += [f"Note: {n}" for n in inp.notes]
        index += ["", "Columns (each one device, runtime, threads and batch; never averaged together):", ""]
        index += [f"- {c.label}: {len(c.rows)} rows" for c in inp.columns]
        index.append("")
        for t in built:
            (tmp / "tables" / f"{t.name}.md").write_text(tables.to_markdown(t))
            (tmp / "tables" / f"{t.name}.tex").write_text(tables.to_latex(t))
            (tmp / "tables" / f"{t.name}.csv").write_text(tables.to_csv(t))
            index += [tables.to_markdown(t), f"(tables/{t.name}.md, .tex, .csv)", ""]
        claims_md = claims.report(inp, args.stat)
        (tmp / "claims.md").write_text(claims_md)
        index += ["## Claims and rank agreement", "", "See [claims.md](claims.md).", ""]
        figs = [] if args.no_plots else plots.build_all(inp, tmp / "plots")
        if figs:
            index += ["## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in figs if p.suffix == ".png"]
        (tmp / "README.md").write_text("\n".join(index) + "\n")
    print(f"{len(built)} tables, {len([p for p in figs if p.suffix == '.png'])} plots and claims.md "
          f"written to {out}")
    return 0
