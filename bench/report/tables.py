"""The paper's tables rebuilt from measured rows, beside the paper's own numbers.

A Table is built once and rendered three ways (Markdown, LaTeX with booktabs,
tidy CSV). Every measured cell carries the file and row_id it came from; the
CSV lists them, the Markdown and LaTeX point at the CSV.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

from modbench.models.mbconv_ablation import fig9_points as points

from ..schema import cell_text
from ..stats import STATS
from . import reference as ref
from .headline import describe, headline, is_valid
from .inputs import Column, ReportInputs, Row
from .pairs import comparisons, pairing_label, repeat_vs_reshape
NOT_MEASURED = "not measured"
INVALID_MARK = "‡"
INVALID_MEANING = "INVALID: the row failed its validity check (its invalid_reason in the results file says why)."


@dataclass
class Cell:
    text: str
    value: float | None = None
    low: float | None = None
    high: float | None = None
    ref: str | None = None  # file:row_id of the measured row


@dataclass
class Table:
    name: str
    title: str
    headers: list[str]
    # A row is a list of cells; a row that is a str is a group heading.
    rows: list = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _fmt(v: float) -> str:
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def measured_cell(row: Row | None, stat: str) -> Cell:
    if row is None:
        return Cell(NOT_MEASURED)
    mark = "" if is_valid(row) else INVALID_MARK
    h = headline(row, stat)  # the one reader of a row's number (latency_ms, else median_ms)
    if not h.has_interval:  # one block: no interval
        return Cell(f"{_fmt(h.value)}{mark}", h.value, None, None, row.ref)
    return Cell(f"{_fmt(h.value)} [{_fmt(h.low)}, {_fmt(h.high)}]{mark}", h.value, h.low, h.high, row.ref)


def _measured(cells) -> bool:
    """Whether a table row has at least one measured cell (for --only-measured)."""
    return any(isinstance(c, Cell) and c.ref for c in cells)


def _keep(t: "Table", inp: ReportInputs) -> "Table":
    """--only-measured: drop rows with no measured cell, and headings left empty."""
    if not inp.only_measured:
        return t
    rows, pending = [], None
    for r in t.rows:
        if isinstance(r, str):
            pending = r
        elif _measured(r):
            if pending is not None:
                rows.append(pending)
                pending = None
            rows.append(r)
    dropped = sum(1 for r in t.rows if not isinstance(r, str)) - sum(1 for r in rows if not isinstance(r, str))
    t.rows = rows
    if dropped:
        t.notes.append(f"{dropped} rows of the paper's table with no measurement are left out (--only-measured).")
    return t


def _paper(v: float | None) -> Cell:
    # The paper prints one decimal throughout; "76.0", not "76".
    return Cell("–" if v is None else f"{v:.1f}", v)


def _stat_note(stat: str, rows=()) -> str:
    used = describe(rows, stat) if rows else ""
    return (f"Measured cells: latency in ms [its 95% CI, from the row's timing blocks, on the log scale]. "
            f"{used} {INVALID_MARK} INVALID: the row failed its validity check (its interval wider than its "
            "target, or the machine busy while it was timed); see invalid_reason in its results file. "
            "Each measured cell's file and row_id are in this table's CSV (column `source`).").replace("  ", " ")


def _columns_note(cols: list[Column]) -> list[str]:
    return [f"Column '{c.label}': {len(c.rows)} rows from "
            f"{', '.join(sorted({r.source.name for r in c.rows}))}" for c in cols]


# --- Table 1 -------------------------------------------------------------------

def table1(inp: ReportInputs, stat: str) -> Table:
    gpus, cpus = inp.by_device("gpu"), inp.by_device("cpu")
    heads = (["Model", "Top-1 (%)", "GPU ms: paper (P100)"] + [f"GPU ms: {c.label}" for c in gpus]
             + ["CPU ms: paper (Xeon, 4 thr)"] + [f"CPU ms: {c.label}" for c in cpus]
             + ["Params M: paper", "Params M: measured", "FLOPs G: paper", "MACs G: measured", "Size"])
    t = Table("table1", "ImageNet-1K models: measured latency beside the EfficientMod paper's Table 1", heads)
    group_names = {1: "~4M parameters", 2: "~6M parameters", 3: "~12M parameters"}
    last_group = None
    for row_no, model, label in ref.table_rows("Table 1"):
        g = ref.table1_group(model)
        if g != last_group:
            t.rows.append(group_names.get(g, f"group {g}"))
            last_group = g
        top = ref.value("Table 1", model, "top1")
        dist = ref.value("Table 1", model, "top1_distilled")
        top_text = ("–" if top is None else f"{top:.1f}") + (f" ({dist:.1f})" if dist is not None else "")
        any_row = next((c.find(model) for c in inp.columns if c.find(model) is not None), None)
        res = ref.value("Table 1", model, "resolution")
        cells = [Cell(inp.names.get(model) or label), Cell(top_text, top),
                 _paper(ref.value("Table 1", model, "latency_ms", ref.PAPER_GPU))]
        cells += [measured_cell(c.find(model), stat) for c in gpus]
        cells += [_paper(ref.value("Table 1", model, "latency_ms", ref.PAPER_CPU))]
        cells += [measured_cell(c.find(model), stat) for c in cpus]
        cells += [_paper(ref.value("Table 1", model, "params_m")),
                  _num_cell(any_row, "params_m"), _paper(ref.value("Table 1", model, "flops_g")),
                  _num_cell(any_row, "macs_g"), Cell(f"{int(res)}²" if res else "–", res)]
        t.rows.append(cells)
    t.rows += user_model_rows(inp, gpus, cpus, stat)
    t.notes += [_stat_note(stat, inp.rows()), "Paper: Table 1 (P100 GPU, Xeon E5-2680 CPU with 4 threads, batch 1, mean "
                "of 4000 ONNX runs); Top-1 in brackets is with strong training (distillation or "
                "re-parameterization). FLOPs in the paper are multiply-accumulates."] + _columns_note(gpus + cpus)
    return _keep(t, inp)


def user_model_rows(inp: ReportInputs, gpus: list[Column], cpus: list[Column], stat: str) -> list:
    """Models the user brought (`run timm:NAME`, a .onnx file, module:function), below
    the paper's rows, with the top-1 given by `run --top1`."""
    models = [m for c in gpus + cpus for m in c.models()
              if c.find(m) is not None and str(c.find(m).data.get("paper_source") or "").startswith("user")]
    rows: list = []
    for model in dict.fromkeys(models):
        any_row = next(c.find(model) for c in gpus + cpus if c.find(model) is not None)
        top = any_row.data.get("top1")
        res = any_row["resolution"]
        rows.append([Cell(inp.label(model)), Cell("–" if top is None else f"{top:.1f}", top), Cell("–")]
                    + [measured_cell(c.find(model), stat) for c in gpus] + [Cell("–")]
                    + [measured_cell(c.find(model), stat) for c in cpus]
                    + [Cell("–"), _num_cell(any_row, "params_m"), Cell("–"), _num_cell(any_row, "macs_g"),
                       Cell(f"{res}²", res)])
    return (["Your models (not in the paper)"] + rows) if rows else []


def _num_cell(row: Row | None, col: str) -> Cell:
    if row is None:
        return Cell(NOT_MEASURED)
    v = row.data.get(col)
    if v is None:
        return Cell("–")
    return Cell(f"{float(v):.2f}", float(v), ref=row.ref)


# --- Table 10: one column per device --------------------------------------------

def table10(inp: ReportInputs, stat: str) -> Table:
    devs = ["P100", "T4", "V100-SXM2", "A100"]
    heads = (["Model", "Top-1 (%)"] + [f"paper {d} (mean ± std)" for d in devs]
             + [c.label for c in inp.columns] + ["Params M", "FLOPs G"])
    t = Table("table10", "Latency on every device measured, beside the four GPUs of the EfficientMod paper's Table 10", heads)
    for _, model, label in ref.table_rows("Table 10"):
        top = ref.value("Table 10", model, "top1")
        dist = ref.value("Table 10", model, "top1_distilled")
        cells = [Cell(inp.names.get(model) or label), Cell(f"{top:.1f}" if top is not None else f"({dist:.1f})", top)]
        for d in devs:
            m, s = ref.value("Table 10", model, "latency_ms", d), ref.value("Table 10", model, "latency_std_ms", d)
            cells.append(Cell(f"{m:.1f} ± {s:.3f}", m))
        cells += [measured_cell(c.find(model), stat) for c in inp.columns]
        cells += [_paper(ref.value("Table 10", model, "params_m")), _paper(ref.value("Table 10", model, "flops_g"))]
        t.rows.append(cells)
    t.notes += [_stat_note(stat, inp.rows()), "Paper: Table 10 (three tests per GPU on different nodes, 500 runs each, "
                "mean ± std of the three)."] + _columns_note(inp.columns)
    return _keep(t, inp)


# --- Paper tables with a few rows (3, 4, 6, App. L, 12) ------------------------

SMALL_TABLES = [
    ("table3", "Table 3", "EfficientMod vs EfficientFormerV2, beside the EfficientMod paper's Table 3"),
    ("table4", "Table 4", "EfficientMod vs other modulation models, beside the EfficientMod paper's Table 4"),
    ("table6", "Table 6", "EfficientMod vs MBConv blocks, beside the EfficientMod paper's Table 6"),
    ("appL_mlp", "App. L (MLP)", "Slimmed modulation vs a separate MLP (EfficientMod paper, App. L)"),
    ("appL_kernel", "App. L (kernel)", "One 7x7 kernel vs several kernel sizes (EfficientMod paper, App. L)"),
    ("appL_attention", "App. L (attention)", "Adding attention to EfficientMod-s-Conv (EfficientMod paper, App. L)"),
    ("table12", "Table 12", "iPhone 13 (Core ML) latency, beside the EfficientMod paper's Table 12"),
]


def small_table(inp: ReportInputs, name: str, paper_table: str, title: str, stat: str) -> Table | None:
    rows = ref.table_rows(paper_table)
    devices = list(dict.fromkeys(v.device for v in ref.table(paper_table)
                                 if v.metric == "latency_ms" and v.device))
    # An iPhone table gets mobile columns only; a GPU/CPU table gets GPU and CPU columns.
    classes = {ref.PAPER_DEVICE_CLASS.get(d) for d in devices}
    if classes & {"gpu", "cpu"}:
        classes |= {"gpu", "cpu"}
    cols = [c for c in inp.columns if c.device in classes]
    if not any(c.find(m) is not None for _, m, _ in rows for c in cols):
        return None
    heads = (["Model", "Top-1 (%)"] + [f"paper {d} ms" for d in devices] + [c.label for c in cols])
    t = Table(name, title, heads)
    for _, model, label in rows:
        top = ref.value(paper_table, model, "top1")
        cells = [Cell(inp.names.get(model) or label), _paper(top)]
        cells += [_paper(ref.value(paper_table, model, "latency_ms", d)) for d in devices]
        cells += [measured_cell(c.find(model), stat) for c in cols]
        t.rows.append(cells)
    t.notes += [_stat_note(stat, inp.rows()), f"Paper: {paper_table}. Rows the suite has no model for are shown as "
                f"'{NOT_MEASURED}'."] + _columns_note(cols)
    return _keep(t, inp)


# --- Sweeps --------------------------------------------------------------------

def batch_sweeps(inp: ReportInputs, stat: str) -> list[Table]:
    out = []
    for cols in inp.batch_families():
        base = cols[0]
        label = base.label.replace(", batch " + str(base.key[5]), "")
        t = Table(f"batch_sweep_{len(out) + 1}", f"Latency vs batch size: {label}",
                  ["Model", "Variant", "Resolution"] + [f"batch {c.key[5]}" for c in cols])
        seen: dict[tuple, int] = {}
        for c in cols:
            for r in c.rows:
                k = (r["model"], r["variant"], int(r["resolution"]))
                seen[k] = seen.get(k, 0) + 1
        # Only what was measured at two batch sizes or more is a sweep.
        keys = sorted(k for k, n in seen.items() if n > 1)
        if not keys:
            continue
        for model, variant, res in keys:
            t.rows.append([Cell(inp.label(model)), Cell(str(variant)), Cell(f"{res}", res)]
                          + [measured_cell(c.find(model, variant, res), stat) for c in cols])
        t.notes += [_stat_note(stat, inp.rows()), "Latency is per batch (one inference call), not per image."]
        paper = [v for v in ref.table("Table 10 (batch)")]
        if paper and base.device == "gpu":
            pts = ", ".join(f"{v.label} b{v.batch}: {v.value:g}" for v in paper)
            t.notes.append(f"Paper (Table 10, EfficientMod-s, ms): {pts}.")
        out.append(t)
    return out


def resolution_sweeps(inp: ReportInputs, stat: str) -> list[Table]:
    out = []
    for c in inp.columns:
        resolutions = sorted({int(r["resolution"]) for r in c.rows})
        keys = [(m, v) for m, v in dict.fromkeys((r["model"], r["variant"]) for r in c.rows)
                if len({int(r["resolution"]) for r in c.rows if (r["model"], r["variant"]) == (m, v)}) > 1]
        if not keys:
            continue
        t = Table(f"resolution_sweep_{len(out) + 1}", f"Latency vs input resolution: {c.label}",
                  ["Model", "Variant"] + [f"{r}px" for r in resolutions])
        for m, v in keys:
            t.rows.append([Cell(inp.label(m)), Cell(str(v))]
                          + [measured_cell(c.find(m, v, r), stat) if c.find(m, v, r) else Cell("–")
                             for r in resolutions])
        t.notes += [_stat_note(stat, c.rows)]
        if any(m.startswith("efficientmod") for m, _ in keys):
            t.notes.append("The EfficientMod paper's Fig. 8 (P100 GPU, 224 to 512 px) gives no numbers, only a plot.")
        out.append(t)
    return out


# --- Repeat vs Reshape (Fig. 2) ----------------------------------------------------

def variant_table(inp: ReportInputs) -> Table | None:
    changes = repeat_vs_reshape(inp.columns)
    if not changes:
        return None
    t = Table("repeat_vs_reshape", "Repeat -> Reshape latency change, beside the EfficientMod paper's Fig. 2",
              ["Device", "Model", "Res", "Repeat ms", "Reshape ms", "Change % [95% CI]",
               "Timing", "Paper"])
    for ch in changes:
        r = ch.ratio
        lo, hi = r.change_ci_pct
        ci = "" if math.isnan(lo) else f" [{lo:+.1f}, {hi:+.1f}]"
        paper = ref.value("Figure 2", ch.model, "latency_change_pct",
                          ref.PAPER_GPU if ch.column.device == "gpu" else ref.PAPER_CPU)
        marks = ["" if is_valid(x) else INVALID_MARK for x in (ch.repeat, ch.reshape)]
        t.rows.append([Cell(ch.column.label), Cell(inp.label(ch.model)), Cell(str(ch.resolution)),
                       Cell(_fmt(r.b_ms) + marks[0], r.b_ms, ref=ch.repeat.ref),
                       Cell(_fmt(r.a_ms) + marks[1], r.a_ms, ref=ch.reshape.ref),
                       Cell(f"{r.change_pct:+.1f}{ci}", r.change_pct, lo, hi, ref=f"{ch.repeat.ref} {ch.reshape.ref}"),
                       Cell(pairing_label(r)),
                       Cell("–" if paper is None else f"{paper:+.1f} ({'P100' if ch.column.device == 'gpu' else 'Xeon'})",
                            paper)])
    t.notes += ["Change = Reshape / Repeat - 1. Paired: the geometric mean over interleaved blocks of the "
                "ratio of block medians, 95% CI by bootstrap over blocks. Separate timing: ratio of medians "
                "with an independent bootstrap; machine drift between the runs is not in that interval.",
                "Repeat ms and Reshape ms are the figures the change is the ratio of (paired: the geometric mean "
                "of each row's block medians over the blocks both have).",
                "Paper: Figure 2 (EfficientMod-s, -5.1% on the P100 GPU, +21.8% on the Xeon CPU).",
                f"{INVALID_MARK} INVALID: the row failed its validity check (see its invalid_reason)."]
    return t


def relative_table(inp: ReportInputs) -> Table | None:
    """The figures a shared machine reproduces, first: each row's latency relative to the
    reference timed beside it, its interval and its own validity, and the calibrated
    milliseconds, beside the row's latency_ms and its validity."""
    rows = [(c, r) for c in inp.columns for r in c.rows
            if isinstance(r.get("rel_latency"), float) and r["rel_latency"] == r["rel_latency"]]
    if not rows:
        return None
    refs = sorted({str(r["rel_reference"]) for _, r in rows})
    t = Table("relative", f"Latency relative to the reference timed beside each row ({', '.join(refs)}): "
              "what to cite on a shared machine",
              ["Model", "Column", "Reference", "Relative [95% CI]", "Calibrated ms [95% CI]", "latency_ms"])
    for c, r in rows:
        lo, hi, rel = r.get("rel_ci_low"), r.get("rel_ci_high"), r["rel_latency"]
        mark = INVALID_MARK if r.get("rel_codes") else ""
        ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else ""
        cal, clo, chi = (r.get(k) for k in ("calibrated_ms", "calibrated_ci_low_ms", "calibrated_ci_high_ms"))
        cal_cell = (Cell(f"{_fmt(cal)}" + (f" [{_fmt(clo)}, {_fmt(chi)}]" if clo is not None and chi is not None
                                            else "") + mark, cal, clo, chi, r.ref)
                    if cal is not None else Cell("no calibration yet"))
        t.rows.append([Cell(inp.label(r["model"])), Cell(c.label), Cell(str(r["rel_reference"])),
                       Cell(f"{rel:.4f}{ci}{mark}", rel, lo, hi, r.ref), cal_cell, measured_cell(r, "median")])
    t.notes += ["Relative: the row's latency over the reference's, the geometric mean of the per-round ratios of "
                "their block medians, 95% CI from a circular block bootstrap of those ratios. On a shared VM or "
                "CI runner this is the figure that reproduces from run to run; latency_ms does not.",
                "Calibrated ms: relative x the reference's normal-speed latency kept for that machine (the "
                "results file's calibration column says from when); a figure derived from the ratio, not timed.",
                f"{INVALID_MARK} on Relative or Calibrated: the relative figure failed its own check (rel_codes); "
                f"on latency_ms: the row's own validity check."]
    return t


def build_all(inp: ReportInputs, stat: str = "median", pairs=None) -> list[Table]:
    if stat not in STATS:
        raise ValueError(f"stat must be one of {STATS}")
    tables = [table1(inp, stat), table10(inp, stat)]
    rt = ratio_table(inp, pairs, stat)
    if rt is not None:
        tables.insert(1, rt)
    relative = relative_table(inp)
    if relative is not None:  # a run beside a reference: the figures it can cite come first
        tables.insert(0, relative)
    for name, paper_table, title in SMALL_TABLES:
        t = small_table(inp, name, paper_table, title, stat)
        if t is not None:
            tables.append(t)
    v = variant_table(inp)
    if v is not None:
        tables.append(v)
    return tables + fig9_tables(inp, stat) + batch_sweeps(inp, stat) + resolution_sweeps(inp, stat)


def fig9_points(inp: ReportInputs) -> dict[str, dict[tuple[str, str, int], Row]]:
    """Column label -> {(sweep, block, x): row} for the measured Fig. 9 networks."""

    out: dict[str, dict] = {}
    for c in inp.columns:
        for m in c.models():
            row = c.find(m)
            for p in points(m) if row is not None else []:
                out.setdefault(c.label, {})[p] = row
    return out


def fig9_tables(inp: ReportInputs, stat: str) -> list[Table]:
    """Paper Fig. 9: isotropic EfficientMod vs MBConv as width and kernel size grow."""
    found = fig9_points(inp)
    tables = []
    for sweep, unit in (("width", "Width (channels)"), ("kernel", "Kernel size")):
        cols = [label for label, pts in found.items() if any(p[0] == sweep for p in pts)]
        if not cols:
            continue
        heads = [unit] + [f"{b}: {label}" for label in cols for b in ("EfficientMod", "MBConv")]
        t = Table(f"fig9_{sweep}", f"EfficientMod vs MBConv blocks, latency vs {sweep} (isotropic; "
                  "the EfficientMod paper's Fig. 9)", heads)
        xs = sorted({p[2] for label in cols for p in found[label] if p[0] == sweep})
        for x in xs:
            t.rows.append([Cell(str(x), x)] + [measured_cell(found[label].get((sweep, b, x)), stat)
                                                for label in cols for b in ("efficientmod", "mbconv")])
        t.notes += [_stat_note(stat, inp.rows()), "Paper: Fig. 9 (values shown only in the figure; the swept widths and "
                    "kernels here are assumed, see docs/models.md). Width sweep: EfficientMod 7x7 context, "
                    "MBConv 3x3 depth-wise; kernel sweep: both at width 196; depth 11, r = 6 / 7."]
        tables.append(t)
    return tables


# --- Rendering -----------------------------------------------------------------

def _text(c) -> str:
    return c.text if isinstance(c, Cell) else str(c)


def to_markdown(t: Table) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")
    lines = [f"### {t.title}", "", "| " + " | ".join(esc(h) for h in t.headers) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(t.headers))) + "|"]
    for r in t.rows:
        if isinstance(r, str):
            lines.append("| **" + esc(r) + "** |" + " |" * (len(t.headers) - 1))
        else:
            lines.append("| " + " | ".join(esc(_text(c)) for c in r) + " |")
    lines.append("")
    lines += [f"- {n}" for n in t.notes]
    return "\n".join(lines) + "\n"


_LATEX_ESC = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
              "~": r"\textasciitilde{}", "^": r"\^{}", "\\": r"\textbackslash{}",
              "±": r"$\pm$", "²": r"$^2$", "‡": r"$^\ddagger$", "–": "--", "→": r"$\rightarrow$"}


def latex_escape(s: str) -> str:
    return "".join(_LATEX_ESC.get(ch, ch) for ch in s)


def to_latex(t: Table) -> str:
    n = len(t.headers)
    out = [r"% Generated by modbench report; needs \usepackage{booktabs}.", r"\begin{table}[t]", r"\centering",
           r"\caption{" + latex_escape(t.title) + "}", r"\label{tab:" + t.name.replace("_", "-") + "}",
           r"\resizebox{\linewidth}{!}{%",
           r"\begin{tabular}{l" + "r" * (n - 1) + "}", r"\toprule",
           " & ".join(latex_escape(h) for h in t.headers) + r" \\", r"\midrule"]
    first = True
    for r in t.rows:
        if isinstance(r, str):
            if not first:
                out.append(r"\midrule")
            out.append(r"\multicolumn{" + str(n) + r"}{l}{\textit{" + latex_escape(r) + r"}} \\")
        else:
            out.append(" & ".join(latex_escape(_text(c)) for c in r) + r" \\")
        first = False
    out += [r"\bottomrule", r"\end{tabular}}"]
    # A mark a table uses is defined under it: a reader of the paper has no README.
    if any(INVALID_MARK in _text(c) for r in t.rows if not isinstance(r, str) for c in r):
        out.append(r"\par\smallskip{\footnotesize " + latex_escape(INVALID_MARK) + " "
                   + latex_escape(INVALID_MEANING) + "}")
    out += [r"\end{table}", ""]
    return "\n".join(out)


def to_csv(t: Table) -> str:
    """Tidy: one line per cell, with its number, interval and the row it came from."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["table", "group", "row", "column", "text", "value", "low", "high", "source"])
    group = ""
    for r in t.rows:
        if isinstance(r, str):
            group = r
            continue
        label = _text(r[0])
        for h, c in zip(t.headers[1:], r[1:]):
            w.writerow([t.name, _inert(group), _inert(label), h, _inert(_text(c)), _n(getattr(c, "value", None)),
                        _n(getattr(c, "low", None)), _n(getattr(c, "high", None)),
                        _inert(getattr(c, "ref", None) or "")])
    return buf.getvalue()


def _inert(text: str) -> str:
    """A cell a spreadsheet would run as a formula (a model file named `=1+1.onnx`)
    gets a leading apostrophe; numbers such as -0.5 stay numbers."""
    text = str(text)
    if text[:1] in ("=", "+", "@", "\t", "\r") or (text[:1] == "-" and not text[1:2].isdigit() and text != "-"):
        return "'" + text
    return text


def _n(v) -> str:
    """A number of a tidy table as the results store writes it (ten significant digits)."""
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else cell_text("", float(v))


# --- Paired ratios: the user's models against peers ------------------------------

def ratio_table(inp: ReportInputs, pairs=None, stat: str = "median") -> Table | None:
    """A/B for pairs of rows: paired (drift cancels) where both were timed in one
    interleave group, labelled as separate timing where not."""
    found = comparisons(inp, pairs, stat)
    if not found:
        return None
    t = Table("ratios", "Latency ratios between models (A / B)",
              ["A", "B", "Device column", "A ms (paired)", "B ms (paired)", "A / B [95% CI]", "Timing", "Chosen"])
    for c in found:
        r = c.ratio
        ci = "" if math.isnan(r.low) else f" [{r.low:.3f}, {r.high:.3f}]"
        marks = ["" if is_valid(x) else INVALID_MARK for x in (c.a, c.b)]
        t.rows.append([Cell(inp.label(c.a["model"]) + marks[0]), Cell(inp.label(c.b["model"]) + marks[1]),
                       Cell(c.column.label),
                       Cell(_fmt(r.a_ms), r.a_ms, ref=c.a.ref),
                       Cell(_fmt(r.b_ms), r.b_ms, ref=c.b.ref),
                       Cell(f"{r.estimate:.3f}{ci}", r.estimate, None if math.isnan(r.low) else r.low,
                            None if math.isnan(r.high) else r.high, ref=f"{c.a.ref} {c.b.ref}"),
                       Cell(pairing_label(r)),
                       Cell("--compare" if c.asked else "nearest latency")])
    t.notes += [f"A / B below 1: A is faster. Paired: the geometric mean over interleaved blocks of the ratio of "
                f"block {stat}s, 95% CI by bootstrap over blocks; the machine's drift cancels in it, which is what "
                "a shared machine can give. Separate timing: the rows were not timed together; the machine's "
                "drift between them is not in the interval.",
                f"A ms and B ms are the figures the ratio is of (A / B = A ms / B ms): paired, the geometric mean "
                f"of each row's block {stat}s over the blocks both have; separate timing, each row's {stat} of "
                "all samples. They can differ from the rows' own latency in Table 1, which rests on each row's "
                "normal-speed blocks alone.",
                "Chosen 'nearest latency': each of your models against the paper's models closest in latency "
                "in the same column (timed together with it where any were); add pairs with --compare A=B.",
                f"{INVALID_MARK} INVALID: the row failed its validity check (see its invalid_reason)."]
    return t
