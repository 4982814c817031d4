"""One figure, one interval, one verdict: a row's headline and its interval are
derived once, when the row is measured, and every output prints the stored ones: the
run's table, its JSON, the report's tables, `baseline show` and the gate. A paired
ratio is printed with the two figures it is the ratio of. A real timed run of two
tiny models of a user's own."""
from __future__ import annotations

import csv
import io
import json
import os
import re
from contextlib import redirect_stdout

import pytest

from modbench.cli import main
from modbench.commands.run import rows_json
from modbench.report.headline import headline
from modbench.store import read_rows

NET = '''from torch import nn


def build(width: int = {width}):
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))
'''
FAST = ["--iters", "80", "--warmup", "2", "--block", "10", "--resolution", "32", "--threads", "1"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("one")
    (d / "small.py").write_text(NET.format(width=8))
    (d / "wide.py").write_text(NET.format(width=24))
    out = d / "r.csv"
    text = io.StringIO()
    old = os.getcwd()
    os.chdir(d)  # the specs as a user names them in their repository: small.py:build
    try:
        with redirect_stdout(text):
            assert main(["run", "small.py:build", "wide.py:build", *FAST, "--out", str(out)]) == 0
    finally:
        os.chdir(old)
    return d, out, text.getvalue(), read_rows(out)


def _close(a, b, rel=6e-3):
    return abs(a - b) <= rel * abs(b) + 6e-3  # printed with 2-3 significant decimals


def test_the_run_table_and_json_print_the_stored_figure_and_interval(run):
    d, out, text, rows = run
    for r in rows:
        h = headline(r)
        line = next(ln for ln in text.splitlines() if ln.startswith(r["model"][:20]))
        value, lo, hi = re.search(r"\s([\d.]+)\s+([\d.]+)-([\d.]+)\s", line).groups()
        assert _close(float(value), h.value) and _close(float(lo), h.low) and _close(float(hi), h.high), line
        code = line.rsplit("  ", 1)[1].strip()
        assert code.startswith("INVALID") == bool(r.codes) and code.startswith(("VALID", "INVALID"))
    doc = json.loads(rows_json([x.data for x in rows], out))
    for j, r in zip(doc["rows"], rows):
        h = headline(r)
        assert (j["latency_ms"], j["latency_ci_low_ms"], j["latency_ci_high_ms"]) == (h.value, h.low, h.high)
        assert j["latency_stat"] and j["invalid_codes"] == list(r.codes)


def test_the_report_and_baseline_show_print_the_same_and_ratios_agree_with_their_figures(run, capsys):
    d, out, _, rows = run
    a, b = (r["model"] for r in rows)
    rep = d / "report"
    assert main(["report", str(out), "--out", str(rep), "--no-plots", "--compare", f"{a}={b}"]) == 0
    cells = list(csv.DictReader((rep / "tables" / "table1.csv").open()))
    for r in rows:
        h = headline(r)
        mine = [c for c in cells if c["row"].startswith(r["model"]) and c["value"] and c["source"].endswith(r.id)]
        assert mine, r["model"]
        assert float(mine[0]["value"]) == pytest.approx(h.value, rel=1e-5)
        assert float(mine[0]["low"]) == pytest.approx(h.low, rel=1e-5)
        assert float(mine[0]["high"]) == pytest.approx(h.high, rel=1e-5)
    ratio_cells = list(csv.DictReader((rep / "tables" / "ratios.csv").open()))
    by_col = {c["column"]: c for c in ratio_cells if c["row"].startswith(a)}
    a_ms, b_ms = float(by_col["A ms (paired)"]["value"]), float(by_col["B ms (paired)"]["value"])
    ratio = float(by_col["A / B [95% CI]"]["value"])
    assert ratio == pytest.approx(a_ms / b_ms, rel=2e-4)  # the printed ratio is of the printed figures (6 decimals)
    assert float(by_col["A / B [95% CI]"]["low"]) <= ratio <= float(by_col["A / B [95% CI]"]["high"])

    root = d / "bl"
    assert main(["baseline", "save", str(out), "--name", "one", "--dir", str(root)]) == 0
    capsys.readouterr()
    assert main(["baseline", "show", "one", "--dir", str(root)]) == 0
    shown = capsys.readouterr().out
    for r in rows:
        h = headline(r)
        line = next(ln for ln in shown.splitlines() if r["model"][:20] in ln)
        value, lo, hi = re.search(r"\s([\d.]+)\s+([\d.]+)-([\d.]+)\s", line).groups()
        assert _close(float(value), h.value) and _close(float(lo), h.low) and _close(float(hi), h.high), line


def test_the_gate_prints_base_current_and_change_that_agree(run, tmp_path, capsys):
    import shutil

    import pandas as pd

    d, out, _, rows = run
    again = tmp_path / "again.csv"  # the same run under another name: a baseline is never the file itself
    shutil.copytree(out.with_suffix(".samples"), again.with_suffix(".samples"))
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    df["samples_file"] = [s.replace(f"{out.stem}.samples/", "again.samples/") for s in df["samples_file"]]
    df.to_csv(again, index=False)
    assert main(["check", str(again), "--against", str(out), "--format", "json"]) in (0, 1)
    doc = json.loads(capsys.readouterr().out)
    for r in doc["rows"]:
        if r["ratio"] is not None:
            assert r["current_median_ms"] / r["base_median_ms"] == pytest.approx(r["ratio"], rel=1e-9)
            assert r["figures"]
    assert main(["check", str(out), "--against", str(out)]) == 2  # the same file on both sides
