"""A Comparison as a terminal table, a Markdown pull-request comment, or JUnit XML.

Every number printed is a statistic of the rows named in it (base_row / cur_row of
the two results files), so a reader can trace it back."""
from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

from modbench.common.fsio import atomic_write

from ..textable import render
from .verdicts import VERDICTS, Comparison, RowVerdict

ICON = {"slower": "🔴 slower", "faster": "🟢 faster", "unchanged": "⚪ unchanged",
        "inconclusive": "⚠️ inconclusive", "not comparable": "⚠️ not comparable"}


def _ci(v: RowVerdict) -> str:
    if v.ci_low is None:
        return ""
    return f"{(v.ci_low - 1) * 100:+.1f}% .. {(v.ci_high - 1) * 100:+.1f}%"


def _setting(v: RowVerdict) -> str:
    return f"{v.variant} t{v.threads} b{v.batch} r{v.resolution}"


def headline(c: Comparison) -> str:
    parts = [f"{c.count(k)} {k}" for k in VERDICTS if c.count(k)]
    parts += [f"{len(names)} {label}" for label, names in (("new", c.new), ("removed", c.removed)) if names]
    # A row that could not be judged is never reported as a pass.
    status = ("REGRESSION" if c.count("slower") else
              "INCONCLUSIVE" if c.count("inconclusive") else
              "NOT COMPARABLE" if c.count("not comparable") else "OK")
    return f"latency gate: {status} ({', '.join(parts) or 'nothing compared'})"


def _mode(v: RowVerdict, c: Comparison) -> str:
    """How the row was (or was to be) judged: a row that --reference could not
    normalize is still not a direct comparison."""
    if c.settings.reference and v.mode == "direct":
        return f"relative to {c.settings.reference} (not applied)"
    return v.mode


def status(c: Comparison) -> str:
    """pass, regression or not comparable: what the gate decided, in one word."""
    return ("regression" if c.count("slower") else "inconclusive" if c.count("inconclusive")
            else "not comparable" if c.count("not comparable") else "pass")


def icon(c: Comparison) -> str:
    return {"regression": "❌", "inconclusive": "⚠️", "not comparable": "⚠️", "pass": "✅"}[status(c)]


JSON_VERSION = 1


def to_json(c: Comparison, strict: bool = False) -> str:
    """The comparison as JSON (schema: docs/json-output.md, version JSON_VERSION)."""
    def num(x):
        return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)

    rows = [{"model": v.model, "variant": v.variant, "runtime": v.runtime, "threads": v.threads,
             "batch": v.batch, "resolution": v.resolution, "verdict": v.verdict, "mode": _mode(v, c),
             "threshold": v.threshold, "ratio": num(v.ratio), "change_pct": num(v.change_pct),
             "ci_low": num(v.ci_low), "ci_high": num(v.ci_high), "p": num(v.p),
             "base_median_ms": num(v.base_median_ms), "current_median_ms": num(v.cur_median_ms),
             "figures": v.figures or None, "base_row": v.base_row, "current_row": v.cur_row,
             "note": v.note} for v in c.verdicts]
    doc = {"kind": "modbench.check", "version": JSON_VERSION, "status": status(c),
           "exit_code": c.exit_code(strict), "strict": strict,
           "counts": {k: c.count(k) for k in VERDICTS},
           "confidence": 1 - c.settings.alpha, "baseline": c.baseline, "current": c.current,
           "machine": c.fingerprint, "warnings": list(c.warnings), "rows": rows,
           "new": list(c.new), "removed": list(c.removed)}
    return json.dumps(doc, indent=2, default=str)


def text(c: Comparison) -> str:
    rows = [{"model": v.model, "setting": _setting(v), "verdict": v.verdict,
             "base": v.base_median_ms, "current": v.cur_median_ms,
             "change": None if v.ratio is None else f"{v.change_pct:+.1f}%", "ci": _ci(v),
             "p": None if v.p is None else f"{v.p:.2g}", "thr": f"{v.threshold:.0%}",
             "mode": _mode(v, c), "note": v.note} for v in c.verdicts]
    heads = {"base": "base ms", "current": "current ms", "ci": f"{1 - c.settings.alpha:.0%} CI"}
    out = [f"baseline: {c.baseline}", f"current:  {c.current}", "",
           render(rows, ["model", "setting", "verdict", "base", "current", "change", "ci", "p",
                         "thr", "mode", "note"], heads)]
    out += [f"warning: {w}" for w in c.warnings]
    out += _added_and_removed(c, "{}")
    out += ["", headline(c)]
    return "\n".join(out)


def markdown(c: Comparison) -> str:
    # ✅ for a pass only: a gate that could not judge says so (with the numbers below).
    lines = [f"### {icon(c)} {headline(c)}", "",
             f"| model | setting | verdict | base ms | current ms | change | "
             f"{1 - c.settings.alpha:.0%} CI | p | note |",
             "|---|---|---|---:|---:|---:|---|---:|---|"]
    order = {k: i for i, k in enumerate(("slower", "inconclusive", "not comparable", "faster", "unchanged"))}
    for v in sorted(c.verdicts, key=lambda v: order[v.verdict]):
        lines.append("| " + " | ".join([
            f"`{v.model}`", _setting(v), ICON[v.verdict],
            "" if v.base_median_ms is None else f"{v.base_median_ms:.2f}",
            "" if v.cur_median_ms is None else f"{v.cur_median_ms:.2f}",
            "" if v.ratio is None else f"{v.change_pct:+.1f}%", _ci(v),
            "" if v.p is None else f"{v.p:.2g}", (_mode(v, c) + "; " if _mode(v, c) != "direct" else "") + v.note,
        ]) + " |")
    lines += [""] + _added_and_removed(c, "`{}`") if c.new or c.removed else []
    figures = sorted({v.figures for v in c.verdicts if v.figures})
    if figures:
        lines += ["", f"Base and current ms are the figures the change is the ratio of ({'; '.join(figures)})."]
    s = c.settings
    lines += ["", f"Each change is decided by its {1 - s.alpha:.0%} interval against the threshold "
              f"({s.threshold:.0%} unless set per model): entirely above it, slower; entirely below it, unchanged "
              "(faster when entirely below the threshold's inverse); across it, inconclusive (never a pass: time "
              "longer, or on a quieter machine).",
              f"Baseline `{c.baseline}`, current `{c.current}`, machine `{c.fingerprint}`."]
    lines += [f"> ⚠️ {w}" for w in c.warnings]
    return "\n".join(lines) + "\n"


def _added_and_removed(c: Comparison, fmt: str) -> list[str]:
    return ([f"new: {fmt.format(m)} (no baseline: timed next time)" for m in c.new]
            + [f"removed: {fmt.format(m)} (only the base has it)" for m in c.removed])


def junit(c: Comparison) -> str:
    """JUnit XML built as a tree (every name and message escaped by ElementTree)."""
    suite = ET.Element("testsuite", name="latency-gate", tests=str(len(c.verdicts)),
                       failures=str(c.count("slower")), errors="0",
                       skipped=str(c.count("not comparable") + c.count("inconclusive")))
    for v in c.verdicts:
        case = ET.SubElement(suite, "testcase", classname="latency-gate", name=f"{v.model} [{_setting(v)}]")
        detail = (f"median {v.base_median_ms:.3f} -> {v.cur_median_ms:.3f} ms, change {v.change_pct:+.2f}% "
                  f"(CI {_ci(v)}), p={v.p:.3g}, threshold {v.threshold:.0%}; {_mode(v, c)}; {v.note}"
                  if v.ratio is not None else v.note)
        if v.verdict == "slower":
            ET.SubElement(case, "failure", message="slower: " + detail).text = detail
        elif v.verdict in ("not comparable", "inconclusive"):
            ET.SubElement(case, "skipped", message=f"{v.verdict}: {detail}")
        else:
            ET.SubElement(case, "system-out").text = f"{v.verdict}: {detail}"
    ET.indent(suite, space="  ")
    return ET.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def write_atomic(path, text_: str) -> None:
    """Reports are rewritten whole or not at all."""
    atomic_write(Path(path), text_, make_parents=True)
