"""Hostile files and rough edges, round 4: one test per missing rule, the reported cases
as its parameters, on real runs of a tiny user model (real exports, real ONNX Runtime
sessions, real processes)."""
from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from modbench.cli import main
from modbench.env import machine_env
from modbench.machine_ref import (calibration_path, model_figures_path, read_calibration, read_model_figures,
                                  resolve_reference, update_model_figures)

NET = '''from torch import nn


def build():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 10))
'''
LOUD = '''import sys
from torch import nn
print("hello from the user's module")


def loud():
    print("building, loudly")
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
'''
FAST = ["--iters", "60", "--warmup", "2", "--block", "10", "--resolution", "32", "--threads", "1"]


def _one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip() and not ln.startswith("note:")]
    assert len(lines) == 1 and lines[0].startswith("modbench: error:"), err
    return lines[0]


@pytest.fixture(scope="module")
def real_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("r4")
    (d / "net.py").write_text(NET)
    out = d / "run.csv"
    old = os.getcwd()
    os.chdir(d)
    try:
        assert main(["run", "net.py:build", *FAST, "--out", str(out)]) == 0
    finally:
        os.chdir(old)
    return out


def _copy(src: Path, dest_dir: Path, folder: str = "copy") -> Path:
    """The run's file and its samples, as they are, in a folder of their own."""
    import shutil

    (dest_dir / folder).mkdir()
    dest = dest_dir / folder / src.name
    shutil.copy(src, dest)
    shutil.copytree(src.with_suffix(".samples"), dest.with_suffix(".samples"))
    return dest


def _as_schema_1(src: Path, dest_dir: Path) -> Path:
    """The same real run as a file from before the machine probe: no schema_version,
    no headline columns, no probe readings in its samples."""
    out = _copy(src, dest_dir, "old")
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    keep = [c for c in df.columns if c not in ("schema_version", "latency_ms", "latency_ci_low_ms",
                                               "latency_ci_high_ms", "latency_stat", "invalid_codes", "blocks_used",
                                               "slowed_share", "slowed_factor", "machine_speed", "machine_ref_ms",
                                               "machine_ref_source", "model_ref_ms")]
    df[keep].to_csv(out, index=False)
    for f in out.with_suffix(".samples").glob("*.npz"):
        with np.load(f) as z:
            arrays = {k: z[k] for k in z.files if k != "probe_ms"}
        np.savez_compressed(f, **arrays)
    return out


# --- 1. both sides of a comparison are judged on one kind of figure -----------------------

def _not_busy(path: Path) -> Path:
    """The run as if its machine had been quiet (what the busy detector saw is not what
    this test is about; on a loaded machine it flags every row)."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    reasons = [("; ".join(s for s in r.split("; ") if not s.startswith("machine busy"))) for r in df["invalid_reason"]]
    df["invalid_reason"] = reasons
    if "invalid_codes" in df:
        df["invalid_codes"] = [",".join(c for c in codes.split(",") if c and c != "busy") for codes in df["invalid_codes"]]
        df["valid"] = [str(not codes) for codes in df["invalid_codes"]]
    else:
        df["valid"] = [str(not r) for r in reasons]
    df.to_csv(path, index=False)
    return path


def test_an_old_baseline_without_probe_readings_is_not_compared_with_a_probed_run(real_run, tmp_path, capsys):
    new = _not_busy(_copy(real_run, tmp_path))
    old = _not_busy(_as_schema_1(real_run, tmp_path))
    real_run = new
    for cur, base in ((real_run, old), (old, real_run)):
        assert main(["check", str(cur), "--against", str(base), "--format", "json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        row = doc["rows"][0]
        assert row["verdict"] == "not comparable" and "no machine-probe readings" in row["note"], row
    assert main(["check", str(real_run), "--against", str(old), "--allow-mismatch", "--format", "json"]) in (0, 1)
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["mode"] == "direct, all samples of both (one side has no probe readings)"
    assert row["verdict"] in ("unchanged", "inconclusive") and row["ratio"] == pytest.approx(1.0)


# --- 2. what is read from the cache is validated ------------------------------------------

@pytest.mark.parametrize("probe_ms, date, says", [
    (1e-6, None, "not this machine's"),
    (1e300, None, "not this machine's"),
    (True, None, "not a number"),
    ("fast", None, "not a number"),
    (-1.0, None, "not a positive number"),
    (None, "2099-01-01", "in the future"),
])
def test_a_cached_calibration_that_cannot_be_believed_is_set_aside(tmp_path, monkeypatch, capsys, probe_ms,
                                                                    date, says):
    monkeypatch.setenv("MODBENCH_CACHE", str(tmp_path / "cache"))
    env = machine_env()
    path = calibration_path(env, 1)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"probe_ms": 0.5 if probe_ms is None else probe_ms,
                                "date": date or dt.date.today().isoformat()}))
    readings = [0.5, 0.51, 0.5, 0.52, 0.5, 0.49, 0.5, 0.51]
    ref = resolve_reference(readings, env, 1, save=False)
    err = capsys.readouterr().err
    assert says in err and str(path) in err, err
    assert ref is not None and 0.4 < ref.ms < 0.6 and ref.source.startswith("this run")
    assert not path.exists() and path.with_name(path.name + ".set-aside").exists()
    assert read_calibration(env, 1) is None


def test_cached_model_figures_that_cannot_be_believed_are_not_used(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MODBENCH_CACHE", str(tmp_path / "cache"))
    env = machine_env()
    path = model_figures_path(env)
    path.parent.mkdir(parents=True)
    today = dt.date.today().isoformat()
    path.write_text(json.dumps({"a": {"ms": 1.0, "date": today}, "b": {"ms": True, "date": today},
                                "c": {"ms": 1.0, "date": "2099-01-01"}, "d": {"ms": "x", "date": today}}))
    assert set(read_model_figures(env)) == {"a"}
    err = capsys.readouterr().err
    assert str(path) in err and "3 figure(s) not used" in err


def test_a_stored_model_figure_far_from_the_row_is_not_its_floor():
    from modbench.machine_ref import Reference
    from modbench.measurement import Measurement

    x = np.full(200, 2.0) + np.random.default_rng(0).normal(0, 0.01, 200)
    probe = np.full((20, 2), 1.0)
    m = Measurement(x, block=10, probe_ms=probe, reference=Reference(1.0, "test"), known_ms=1e-9)
    h = m.headline()
    assert h.estimate == pytest.approx(2.0, rel=0.01) and h.blocks_used == 20
    assert m.summary()["model_ref_ms"] is None


def _add_figures(args):
    cache, start = args
    os.environ["MODBENCH_CACHE"] = cache
    env = machine_env()
    for i in range(start, start + 100):
        update_model_figures(env, {f"m{i}": 1.0})


def test_two_writers_of_the_model_figures_keep_every_figure(tmp_path, monkeypatch):
    monkeypatch.setenv("MODBENCH_CACHE", str(tmp_path / "cache"))
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        pool.map(_add_figures, [(str(tmp_path / "cache"), 0), (str(tmp_path / "cache"), 100)])
    assert len(read_model_figures(machine_env())) == 200


# --- 3. hand-edited cells are not believed ------------------------------------------------

@pytest.mark.parametrize("column, value, says", [
    ("latency_ms", "inf", "not a finite number"),
    ("latency_ms", "0.0001", "its samples give"),
    ("latency_ms", "-5", "below 0"),
    ("iters", "1_000", "not a number"),
    ("median_ms", "", "median_ms is empty"),
    ("threads", "-2", "below 1"),
    ("schema_version", "0", "not a version number"),
    ("schema_version", "-1", "not a version number"),
    ("p90_ms", "7.5", "its samples give"),
    ("valid", "True", "disagree"),
])
def test_a_hand_edited_cell_is_refused_naming_file_and_column(real_run, tmp_path, capsys, column, value, says):
    out = _copy(real_run, tmp_path)
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    if column == "valid" and df.loc[0, "valid"] == "True":
        value = "False"  # the edit that contradicts the row either way
    df.loc[0, column] = value
    df.to_csv(out, index=False)
    for cmd in (["report", str(out), "--out", str(tmp_path / "rep"), "--no-plots"],
                ["baseline", "save", str(out), "--name", "x", "--dir", str(tmp_path / "bl")]):
        assert main(cmd) == 2, cmd
        err = _one_line(capsys.readouterr().err)
        assert says in err and "run.csv" in err, (cmd, err)
    assert not (tmp_path / "rep").exists()
    # The gate: refused outright, or the row is not comparable for that reason (never a pass).
    rc = main(["check", str(out), "--against", str(real_run), "--strict", "--format", "json"])
    captured = capsys.readouterr()
    if rc == 2:
        assert says in _one_line(captured.err)
    else:
        row = json.loads(captured.out)["rows"][0]
        assert rc == 1 and row["verdict"] == "not comparable" and says in row["note"], row


@pytest.mark.parametrize("drop", ["latency_ms", "valid"])
def test_a_file_without_a_column_of_its_version_is_refused_by_every_reader(real_run, tmp_path, capsys, drop):
    out = _copy(real_run, tmp_path)
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    df.drop(columns=[drop]).to_csv(out, index=False)
    for cmd in (["report", str(out), "--out", str(tmp_path / "rep"), "--no-plots"],
                ["check", str(out), "--against", str(real_run)]):
        assert main(cmd) == 2
        assert repr(drop) in _one_line(capsys.readouterr().err)


# --- 4. JSON on stdout holds the document alone -------------------------------------------

def test_json_output_is_not_broken_by_the_users_prints(tmp_path):
    (tmp_path / "noisy.py").write_text(LOUD)
    r = subprocess.run([sys.executable, "-m", "modbench", "run", "noisy.py:loud", *FAST, "--format", "json",
                        "--out", str(tmp_path / "n.csv")], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["kind"] == "modbench.run" and "building, loudly" in r.stderr


# --- 5. the API's bad input is one modbench error -----------------------------------------

@pytest.mark.parametrize("models, says", [(42, "not int"), (None, "not NoneType"), ([], "no models"),
                                          ({"": None}, "non-empty name")])
def test_the_api_refuses_bad_models_in_one_line(models, says):
    from torch import nn

    from modbench.api import measure
    from modbench.common.errors import ModbenchError

    if isinstance(models, dict):
        models = {"": nn.Conv2d(3, 4, 3)}
    with pytest.raises(ModbenchError) as info:
        measure(models)
    assert says in str(info.value) and "\n" not in str(info.value)


# --- 6. a spec holding '=' can be named and compared --------------------------------------

def test_a_spec_with_an_equals_sign_can_be_named_and_compared(tmp_path, capsys):
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "net=v2.py").write_text(NET)
    (tmp_path / "tiny.py").write_text(NET.replace("8", "4"))
    out = tmp_path / "r.csv"
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(["run", "specs/net=v2.py:build", "tiny.py:build", *FAST, "--out", str(out)]) == 0
        capsys.readouterr()
        assert main(["report", str(out), "--out", "rep", "--no-plots", "--compare",
                     "specs/net=v2.py:build=tiny.py:build", "--name", "specs/net=v2.py:build=Net (v=2)"]) == 0
        ratios = (tmp_path / "rep" / "tables" / "ratios.md").read_text()
        assert "Net (v=2)" in ratios and "--compare" in ratios
        assert main(["report", str(out), "--out", "rep2", "--no-plots", "--compare", "tiny.py:build=tiny.py:build"]) == 2
        assert "with itself" in _one_line(capsys.readouterr().err)
    finally:
        os.chdir(old)


# --- 8. messages name only what exists; 9. every output is new before anything is timed ---

@pytest.mark.parametrize("left_behind", ["samples", "run.json"])
def test_an_output_whose_samples_or_run_file_exist_is_refused_before_timing(tmp_path, capsys, left_behind):
    (tmp_path / "net.py").write_text(NET)
    out = tmp_path / "new.csv"
    if left_behind == "samples":
        (tmp_path / "new.samples").mkdir()
        (tmp_path / "new.samples" / "net_build.default.ort-cpu.t1.b1.r32.npz").write_bytes(b"x")
    else:
        (tmp_path / "new.run.json").write_text("{}")
    assert main(["run", str(tmp_path / "net.py") + ":build", *FAST, "--out", str(out)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert ("new.samples" in err or "new.run.json" in err) and not out.exists()


def test_a_write_that_fails_before_any_row_does_not_suggest_resuming(tmp_path):
    from modbench.store import ResultsWriter

    w = ResultsWriter.create(tmp_path / "x.csv", {"models": []})
    try:
        assert "nothing is kept" in w._kept() and "--resume" not in w._kept()
    finally:
        w.close(discard_empty=True)


def test_ingest_onto_an_existing_file_does_not_suggest_resume(tmp_path, capsys):
    from modbench.commands.ingest_modelbench import template

    src = tmp_path / "mb.csv"
    src.write_text(template().replace(",fp16,,,,,", ",fp16,1,3,2,2,"))
    out = tmp_path / "exists.csv"
    out.write_text("x")
    assert main(["ingest-modelbench", str(src), "--device", "iPhone 13", "--out", str(out)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "--resume" not in err and "another --out" in err


# --- the lower list ------------------------------------------------------------------------

def test_check_markdown_dash_is_standard_output(real_run, tmp_path, capsys):
    other = _copy(real_run, tmp_path)
    rc = main(["check", str(other), "--against", str(real_run), "--markdown", "-"])
    out = capsys.readouterr().out
    assert rc in (0, 1) and out.startswith("### ") and not (Path.cwd() / "-").exists()
    assert main(["check", str(other), "--against", str(real_run), "--markdown", "-", "--junit", "-"]) == 2


def test_resume_of_a_crlf_file_appends_crlf_lines(tmp_path):
    from modbench.store import ResultsWriter, read_results
    from test_hostile import _row, _written

    out = _written(tmp_path / "r.csv", 1)
    out.write_bytes(out.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))  # saved by a spreadsheet
    (tmp_path / "r.run.json").write_text(json.dumps({"models": ["m"], "schema_version": 3}))
    w, _, _ = ResultsWriter.resume(out)
    try:
        w.append(_row(1, np.full(5, 3.0)), np.full(5, 3.0))
    finally:
        w.close()
    raw = out.read_bytes()
    assert raw.count(b"\r\n") == 3 and raw.count(b"\n") == 3 and len(read_results(out)) == 2


def test_a_samples_folder_replaced_by_a_file_is_named_as_such(real_run, tmp_path, capsys):
    import shutil

    out = _copy(real_run, tmp_path)
    shutil.rmtree(out.with_suffix(".samples"))
    out.with_suffix(".samples").write_text("not a folder")
    assert main(["report", str(out), "--out", str(tmp_path / "rep"), "--no-plots"]) == 2
    assert "is a file, not the samples folder" in _one_line(capsys.readouterr().err)


def test_read_returns_the_json_columns_as_objects(real_run):
    from modbench.api import read

    df = read(real_run, samples=False)
    assert isinstance(df.loc[0, "runtime_settings"], dict)


def test_ingest_refuses_a_device_name_with_a_line_break(tmp_path, capsys):
    from modbench.commands.ingest_modelbench import template

    src = tmp_path / "mb.csv"
    src.write_text(template().replace(",fp16,,,,,", ",fp16,1,3,2,2,"))
    assert main(["ingest-modelbench", str(src), "--device", "iPhone\n13", "--out", str(tmp_path / "i.csv")]) == 2
    assert "line break" in _one_line(capsys.readouterr().err) and not (tmp_path / "i.csv").exists()


def test_export_writes_the_onnx_file_where_the_user_asks(tmp_path, capsys):
    import onnx

    (tmp_path / "net.py").write_text(NET)
    spec = str(tmp_path / "net.py") + ":build"
    assert main(["export", spec, "--resolution", "32", "--out", str(tmp_path / "onnx")]) == 0
    files = list((tmp_path / "onnx").glob("*.onnx"))
    assert len(files) == 1
    onnx.checker.check_model(onnx.load(str(files[0])))
    assert main(["export", spec, "--resolution", "32", "--out", str(tmp_path / "onnx")]) == 2  # never over it
    capsys.readouterr()


def test_a_folder_named_like_a_python_file_is_called_a_folder(tmp_path, capsys):
    (tmp_path / "dir.py").mkdir()
    assert main(["run", str(tmp_path / "dir.py") + ":build", *FAST]) == 2
    assert "is a folder, not a Python file" in _one_line(capsys.readouterr().err)


def test_too_few_normal_blocks_says_how_many_iterations_would_do():
    from modbench.machine_ref import Reference
    from modbench.measurement import Measurement

    x = np.full(100, 1.0)
    probe = np.array([[1.0, 1.0]] * 3 + [[2.0, 2.0]] * 7)  # 3 normal blocks of 10, 7 slowed
    m = Measurement(x, block=10, probe_ms=probe, reference=Reference(1.0, "test"))
    reason = m.validity().reason
    assert "need 4" in reason and "--iters 140" in reason
