"""README's commands as a newcomer types them: the quick start (a real run of three
models, then `report`), and `claims`/`report` on the committed results; the report
options for a user's own paper; the terminal output (summary width, next: line,
progress line, --help)."""
from __future__ import annotations

import argparse
import glob
import io
import math
import re
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest

from modbench.cli import build_parser, main
from modbench.progress import Progress

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def readme_commands(section: str) -> list[list[str]]:
    """The `modbench` commands in one README section's code blocks, as argv lists."""
    text = README.read_text()
    body = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    cmds = []
    for block in re.findall(r"```\n(.*?)```", body, re.S):
        for line in block.splitlines():
            if line.startswith(".venv/bin/modbench "):
                cmds.append(shlex.split(line)[1:])
    return cmds


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    """README's quick start, exactly as written, run in a fresh folder."""
    import os

    here = tmp_path_factory.mktemp("qs")
    cmds = readme_commands("Quick start")
    assert [c[0] for c in cmds] == ["run", "report"]
    old = os.getcwd()
    os.chdir(here)
    try:
        out = io.StringIO()
        import contextlib
        with contextlib.redirect_stdout(out):
            assert main(cmds[0]) == 0
        run_out = out.getvalue()
        assert main(cmds[1]) == 0
    finally:
        os.chdir(old)
    return SimpleNamespace(dir=here, csv=here / "results" / "quickstart.csv", report=here / "report-quickstart",
                           run_out=run_out, cmds=cmds)


def test_readme_is_a_front_page_with_ci_commands_and_no_outside_links():
    text = README.read_text()
    assert len(text.encode()) < 10_000
    ci = (REPO / ".ci" / "run").read_text().replace("pip install -q ", "pip install ")
    for cmd in ("python3 -m venv .venv", '.venv/bin/pip install -c constraints.txt -e ".[cpu,test]"',
                ".venv/bin/python -m pytest -q"):
        assert cmd in text and cmd in ci, cmd
    for path in [README] + sorted((REPO / "docs").glob("*.md")):
        for target in re.findall(r"\]\(([^)#]+)", path.read_text()):
            if target.startswith("http"):
                continue
            resolved = (path.parent / target).resolve()
            assert REPO in resolved.parents, f"{path.name} links outside the repository: {target}"
            # shared-host.md is written by the lead in the same release
            assert resolved.exists() or resolved.name == "shared-host.md", f"{path.name}: broken link {target}"
        assert "../shared" not in path.read_text(), path.name


def test_quickstart_summary_fits_100_columns_and_says_what_next(quickstart):
    lines = quickstart.run_out.splitlines()
    table_end = lines.index(next(ln for ln in lines if ln.endswith("rows written to results/quickstart.csv")))
    assert max(len(ln) for ln in lines[:table_end]) <= 100
    rows = [ln for ln in lines if ln.startswith(("timm:resnet18 ", "efficientmod_xxs ", "mobilenetv2_100 "))]
    assert len(rows) == 3
    for ln in rows:
        code = ln.split("  ")[-1].strip()
        assert code == "VALID" or code.startswith("INVALID"), ln
        assert "inf" not in ln
    if any("INVALID" in ln for ln in rows):
        assert any(ln.startswith("why INVALID") for ln in lines)
    nxt = lines[lines.index("next:") + 1:]
    assert nxt[0].split()[:3] == ["modbench", "report", "results/quickstart.csv"]
    assert nxt[1].split()[:3] == ["modbench", "claims", "results/quickstart.csv"]


def test_quickstart_report_highlights_the_user_model_with_intervals_above_zero(quickstart):
    readme = (quickstart.report / "README.md").read_text()
    assert "Headline figure:" in readme
    user = next(ln for ln in readme.splitlines() if ln.startswith("| ResNet-18 |"))  # --name applied
    cells = re.findall(r"([\d.]+) \[([-\d.]+), ([-\d.]+)\]", user)
    assert cells
    for est, lo, hi in cells:
        assert 0 < float(lo) <= float(est) <= float(hi)
    # The ratio table: the user's model against its nearest paper models, paired.
    ratios = (quickstart.report / "tables" / "ratios.md").read_text()
    assert "paired, 4 interleaved blocks" in ratios and "nearest latency" in ratios
    # LaTeX numbers captions itself.
    tex = (quickstart.report / "tables" / "table1.tex").read_text()
    caption = re.search(r"\\caption\{(.*?)\}", tex).group(1)
    assert not re.match(r"Table \d", caption)
    pngs = sorted(p.name for p in (quickstart.report / "plots").glob("*.png"))
    assert any(n.startswith("accuracy_vs_latency") and n.endswith("_column.png") for n in pngs)


def test_report_options_for_a_users_paper(quickstart, tmp_path, capsys):
    out = tmp_path / "paper"
    assert main(["report", str(quickstart.csv), "--out", str(out), "--only-measured", "--no-plots",
                 "--compare", "efficientmod_xxs=mobilenetv2_100", "--highlight", "mobilenetv2_100"]) == 0
    t1 = (out / "tables" / "table1.md").read_text()
    body = [ln for ln in t1.splitlines() if ln.startswith("| ") and not ln.startswith("| Model")
            and not ln.startswith("| **")]
    assert len(body) == 3  # the two paper models measured and the user's: no "not measured" rows
    assert "not measured" not in "\n".join(body)
    ratios = (out / "tables" / "ratios.md").read_text()
    assert "--compare" in ratios
    for bad in (["--name", "nosuchmodel=X"], ["--compare", "efficientmod_xxs=nosuch"], ["--name", "noequals"]):
        assert main(["report", str(quickstart.csv), "--out", str(tmp_path / "x"), "--no-plots", *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("modbench: error:") and err.count("\n") == 1
        assert not (tmp_path / "x").exists()


def test_claims_and_rank_agreement_on_the_quickstart(quickstart, capsys):
    assert main(["claims", str(quickstart.csv)]) == 0
    text = capsys.readouterr().out
    assert "Headline figure:" in text
    rank = next(ln for ln in text.split("## Rank agreement", 1)[1].splitlines() if ln.startswith("| AMD")
                or ln.startswith("| ") and "thr" in ln)
    assert "only 2 models" in rank and "+1.000" not in rank  # two paper models: no Spearman


def test_baseline_show_prints_real_intervals(quickstart, tmp_path, capsys):
    root = tmp_path / "bl"
    assert main(["baseline", "save", str(quickstart.csv), "--name", "qs", "--dir", str(root)]) == 0
    capsys.readouterr()
    assert main(["baseline", "show", "qs", "--dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "nan" not in out
    rows = [ln for ln in out.splitlines() if ln.startswith(("timm:resnet18", "efficientmod_xxs", "mobilenetv2_100"))]
    assert len(rows) == 3
    for ln in rows:
        lat, lo, hi = re.search(r"\s([\d.]+)\s+([\d.]+)-([\d.]+)\s", ln).groups()
        assert 0 < float(lo) <= float(lat) <= float(hi)


def test_readme_claims_and_report_work_on_committed_results(tmp_path, capsys):
    """`claims results/*.csv` on a fresh clone: old rows' runtime `onnxruntime` read as
    `ort-cpu` (one machine, one column per thread count), duplicates from several runs
    resolved to the newest row, verdicts on INVALID rows marked."""
    files = sorted(glob.glob(str(REPO / "results" / "*.csv")))
    assert main(["claims", *files]) == 0
    text = capsys.readouterr().out
    assert "onnxruntime, " not in text  # no column labelled with the legacy word
    assert "read as 'ort-cpu'" in text and "replaced by the newer" in text
    assert "rests on an INVALID row" in text
    out = tmp_path / "rep"
    assert main(["report", *files, "--out", str(out), "--no-plots"]) == 0
    readme = (out / "README.md").read_text()
    columns = [ln for ln in readme.splitlines() if ln.startswith("- AMD EPYC")]
    assert len(columns) == len(set(columns)) and not any("onnxruntime" in c for c in columns)
    assert "‡" in (out / "tables" / "table1.md").read_text()


def test_every_option_has_help_and_every_command_examples():
    missing = []

    def walk(p, path):
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sp in a.choices.items():
                    walk(sp, path + [name])
            elif not isinstance(a, argparse._HelpAction) and not (a.help or "").strip():
                missing.append(f"{' '.join(path)} {a.option_strings or a.dest}")
        if len(path) > 1 and "examples:" not in (p.epilog or ""):
            missing.append(f"{' '.join(path)}: no examples")
    walk(build_parser(), ["modbench"])
    assert not missing, missing


def test_progress_line_tracks_time_under_a_budget():
    """A budget of 240 s: before any round, the ETA is at most the budget; once a
    round reports, its ETA (capped to the budget left) drives bar and ETA; a row with
    no interval yet never prints ±inf."""
    bar = Progress(total=12_000, label="t", stream=io.StringIO(), budget_s=240)
    bar.done = 100  # 100 of 12000 iterations after 10 s: by iterations, 20 minutes left
    line = bar.line(now=bar.t0 + 10)
    assert "03:50 left" in line and "  4.2%" in line
    bar.precision(SimpleNamespace(active=3, worst=math.inf, eta_s=500.0, elapsed_s=120.0, budget_s=240.0))
    line = bar.line(now=bar.t0 + 120)
    assert "inf" not in line and "no interval yet" in line
    assert "02:00 left" in line and " 50.0%" in line
    bar.precision(SimpleNamespace(active=1, worst=0.021, eta_s=30.0, elapsed_s=200.0, budget_s=240.0))
    line = bar.line(now=bar.t0 + 200)
    assert "00:30 left" in line and "loosest ±2.1%" in line
    # An older RoundStatus (no time fields) still draws.
    bar.precision(SimpleNamespace(active=0, worst=0.005, eta_s=None))
    assert "all rows precise" in bar.line(now=bar.t0 + 230)


def test_the_interval_never_reaches_below_zero():
    """Four blocks, one of them five times slower (a busy host): a symmetric interval
    of the block medians would reach below zero; the one interval (log scale) cannot,
    and it is centred on the pooled median."""
    import numpy as np

    from modbench import stats

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(10, 0.2, 50), rng.normal(10, 0.2, 50), rng.normal(10, 0.2, 50),
                        rng.normal(50, 1.0, 50)])
    per = np.array([np.median(b) for b in stats.blocks(x, 50)])
    symmetric_low = np.median(x) - 3.18 * per.std(ddof=1) / 2  # t(0.975, 3) = 3.18, four blocks
    iv = stats.headline_interval(x, 50, "median")
    assert symmetric_low < 0 < iv.low < iv.estimate < iv.high
    assert iv.estimate == np.median(x)


def test_progress_in_a_log_is_one_line_per_interval():
    """Past the iteration count (settling iterations add to it), a log still gets a
    line per interval, not one per block."""
    log = io.StringIO()
    bar = Progress(total=100, label="t", stream=log)
    for _ in range(50):
        bar(10)
    assert len(log.getvalue().splitlines()) == 2  # the first call, and reaching the count
