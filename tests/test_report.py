"""Reports from real tiny runs: tables, paired Repeat/Reshape statistics, claims, plots, errors."""
from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from modbench import stats
from modbench.cli import main
from modbench.report import reference as ref
from modbench.report.pairs import ratio, timed_together
from modbench.report.inputs import read_inputs
from modbench.report.tables import latex_escape


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two real ORT runs: EfficientMod-xxs both ways beside MobileNetV2 (interleaved),
    and a small MobileNetV2 batch x resolution sweep."""
    d = tmp_path_factory.mktemp("runs")
    a, b = d / "a.csv", d / "sweep.csv"
    assert main(["run", "efficientmod_xxs", "mobilenetv2_100", "--variant", "repeat,reshape", "--threads", "1",
                 "--iters", "40", "--warmup", "2", "--block", "10", "--out", str(a)]) == 0
    assert main(["run", "mobilenetv2_100", "--batch", "1,2", "--resolution", "160,192", "--threads", "1",
                 "--iters", "20", "--warmup", "2", "--block", "10", "--out", str(b)]) == 0
    return a, b


@pytest.fixture(scope="module")
def report_dir(runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "report"
    assert main(["report", str(runs[0]), str(runs[1]), "--out", str(out)]) == 0
    return out


# --- statistics ----------------------------------------------------------------

def test_rank_correlations_match_hand_values():
    assert stats.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1)


def test_pairing_cancels_drift_that_a_separate_comparison_cannot():
    rng = np.random.default_rng(0)
    drift = np.repeat(rng.uniform(10, 30, size=20), 25)  # the machine's speed, block by block
    a = drift * rng.lognormal(0, 0.05, drift.size)
    b = 1.2 * drift * rng.lognormal(0, 0.05, drift.size)
    paired = stats.paired_ratio(b, a, 25)
    unpaired = stats.unpaired_ratio(b, a)
    assert paired.paired and paired.n_blocks == 20
    assert paired.low < 1.2 < paired.high
    assert (paired.high - paired.low) < (unpaired.high - unpaired.low) / 3


# --- reference data ------------------------------------------------------------

def test_reference_table1_matches_the_registry_file():
    lines = [ln for ln in Path("models/paper_table1.tsv").read_text().splitlines() if not ln.startswith("#")]
    for r in csv.DictReader(lines, delimiter="\t"):
        assert ref.value("Table 1", r["name"], "latency_ms", ref.PAPER_GPU) == float(r["gpu_ms"])
        assert ref.value("Table 1", r["name"], "latency_ms", ref.PAPER_CPU) == float(r["cpu_ms"])
        assert ref.value("Table 1", r["name"], "params_m") == float(r["params_m"])


def test_claims_agree_with_the_paper_numbers_they_cite():
    for c in ref.claims():
        if c.a == c.b or c.paper_change_pct is None:
            continue
        pa, pb = ref.paper_latency(c.a, c.device), ref.paper_latency(c.b, c.device)
        assert pa and pb, c.id
        assert (pa[0] / pb[0] - 1) * 100 == pytest.approx(c.paper_change_pct, abs=0.6), c.id
    assert ref.value("Figure 2", "efficientmod_s", "latency_change_pct", ref.PAPER_CPU) == 21.8


# --- report from real runs -----------------------------------------------------

def test_report_writes_tables_plots_and_claims(report_dir):
    for name in ("table1", "table10", "table4", "repeat_vs_reshape", "batch_sweep_1", "resolution_sweep_1"):
        for ext in ("md", "tex", "csv"):
            assert (report_dir / "tables" / f"{name}.{ext}").stat().st_size > 0, name
    assert "\\toprule" in (report_dir / "tables" / "table1.tex").read_text()
    pngs = sorted(p.name for p in (report_dir / "plots").glob("*.png"))
    assert any(p.startswith("accuracy_vs_latency") for p in pngs)
    assert "repeat_vs_reshape.png" in pngs and any(p.startswith("latency_vs_batch") for p in pngs)
    assert (report_dir / "claims.md").is_file()
    t1 = (report_dir / "tables" / "table1.md").read_text()
    assert "EdgeViT-S" in t1 and "not measured" in t1  # unmeasured rows stay, marked


def test_measured_cells_trace_back_to_rows(report_dir, runs):
    ids = {p.name: {r["row_id"] for r in csv.DictReader(open(p))} for p in runs}
    n = 0
    for f in (report_dir / "tables").glob("*.csv"):
        for r in csv.DictReader(open(f)):
            for src in r["source"].split():
                fname, row_id = src.split(":", 1)
                assert row_id in ids[fname], src
                n += 1
    assert n > 10


def test_repeat_reshape_is_paired_and_consistent(runs):
    inp = read_inputs([runs[0]])
    col = inp.columns[0]
    rep, resh = col.find("efficientmod_xxs", "repeat"), col.find("efficientmod_xxs", "reshape")
    assert timed_together(rep, resh)
    r = ratio(resh, rep)
    assert r.paired and r.n_blocks == 4 and r.low <= r.estimate <= r.high
    # Same graph but for one op, timed side by side: far from a 2x difference.
    assert 0.5 < r.estimate < 2


def test_rows_from_different_runs_are_labelled_unpaired(runs):
    inp = read_inputs(list(runs))
    a = next(c for c in inp.columns if int(c.key[5]) == 1).find("mobilenetv2_100", resolution=224)
    b = next(c for c in inp.columns if int(c.key[5]) == 1).find("mobilenetv2_100", resolution=160)
    assert not timed_together(a, b)
    assert not ratio(a, b).paired


def test_claims_command(runs, capsys):
    assert main(["claims", str(runs[0])]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if "EfficientMod-xxs is faster than VAN-B0 on CPU" in ln)
    assert "not measured" in line
    assert "Spearman" in out and "Kendall" in out


# --- bad input -----------------------------------------------------------------

def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("modbench: error:") and "\n" not in err and "Traceback" not in err
    return err


def test_existing_output_is_never_overwritten(runs, report_dir, capsys):
    before = sorted(p.name for p in report_dir.rglob("*"))
    assert main(["report", str(runs[0]), "--out", str(report_dir)]) == 2
    assert "never overwritten" in _one_line_error(capsys)
    assert sorted(p.name for p in report_dir.rglob("*")) == before


def test_duplicate_measurements_are_refused_not_averaged(runs, tmp_path, capsys):
    (tmp_path / "again").mkdir()
    copy = tmp_path / "again" / "a.csv"  # the same run given twice, as if from another folder
    shutil.copy(runs[0], copy)
    shutil.copytree(runs[0].with_name("a.samples"), tmp_path / "again" / "a.samples")
    out = tmp_path / "rep"
    assert main(["report", str(runs[0]), str(copy), "--out", str(out)]) == 2
    assert "measured twice" in _one_line_error(capsys)
    assert not out.exists() and not list(tmp_path.glob(".rep*"))


def test_damaged_or_foreign_input_fails_in_one_line(runs, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["claims", str(bad)]) == 2
    _one_line_error(capsys)
    cut = tmp_path / "cut.csv"
    cut.write_bytes(runs[0].read_bytes()[:-5])
    assert main(["report", str(cut), "--out", str(tmp_path / "r")]) == 2
    assert "damaged" in _one_line_error(capsys)


def test_latex_escaping():
    assert latex_escape("a_b 3 ± 1 50%") == r"a\_b 3 $\pm$ 1 50\%"


def test_table1_claims_are_judged_when_both_rows_were_timed_together(tmp_path, capsys):
    """EfficientMod-xxs vs EfficientFormerV2-S0 on CPU (Table 1's own pair), timed
    interleaved: the claim gets a paired verdict, with the statistic it used."""
    out = tmp_path / "pair.csv"
    assert main(["run", "efficientmod_xxs", "efficientformerv2_s0", "--out", str(out), "--iters", "40",
                 "--warmup", "3", "--block", "10", "--threads", "1"]) == 0
    capsys.readouterr()
    for stat in ("median", "mean"):
        assert main(["claims", str(out), "--stat", stat]) == 0
        text = capsys.readouterr().out
        line = next(ln for ln in text.splitlines() if "EfficientMod-xxs is faster than EfficientFormerV2-S0 on CPU" in ln)
        assert f"| {stat} |" in line and "paired, 4 interleaved blocks" in line
        assert any(f"**{v}**" in line for v in ("holds", "does not hold", "inconclusive"))
        assert f"uses the **{stat}**" in text
