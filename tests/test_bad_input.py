"""Issue 10: every mistake the user can make ends in exit 2 and one line on stderr,
without a traceback and without a file written; exit 1 is kept for a regression.

Each test drives `bench.cli.main` in-process with real exports and real sessions."""
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from modbench.cli import main
from test_gate_check import write_run

FAST = ["--iters", "5", "--warmup", "1", "--block", "5", "--block-warmup", "0", "--threads", "1",
        "--resolution", "64"]
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


def files_under(d: Path) -> list[Path]:
    return sorted(p for p in Path(d).rglob("*"))


def assert_one_line_exit_2(rc, capsys, *needles):
    cap = capsys.readouterr()
    assert rc == 2, cap.err
    assert cap.err.count("\n") == 1 and cap.err.startswith("modbench: error:"), cap.err
    assert "Traceback" not in cap.err + cap.out
    for n in needles:
        assert n in cap.err, cap.err
    return cap


@pytest.fixture
def a_file(tmp_path):
    f = tmp_path / "a-file"
    f.write_text("not a folder\n")
    return f


# --- numbers are checked once, by the argument types of bench/commands/_args.py ----

@pytest.mark.parametrize("args, needle", [
    (["--resolution", "0"], "--resolution"),
    (["--resolution", "64x"], "--resolution"),
    (["--threads", ""], "--threads"),
    (["--batch", ","], "--batch"),
    (["--batch", "1,,2"], "--batch"),
    (["--batch", "100000"], "--batch"),
    (["--target-ci", "nan"], "--target-ci"),
    (["--target-ci", "0"], "--target-ci"),
    (["--busy-cores", "inf"], "--busy-cores"),
    (["--min-iters", "-7"], "--min-iters"),
    (["--iters", "fast"], "--iters"),
    (["--iters", "0"], "--iters"),
    (["--warmup", "-1"], "--warmup"),
    (["--opset", "0"], "--opset"),
])
def test_bad_numbers_are_refused_before_anything_runs(args, needle, tmp_path, capsys):
    out = tmp_path / "r" / "x.csv"
    rc = main(["run", "efficientmod_xxs", "--out", str(out), *FAST, *args])
    assert_one_line_exit_2(rc, capsys, needle)
    assert files_under(tmp_path) == []


def test_dynamo_below_opset_18_is_one_line(tmp_path, capsys):
    rc = main(["run", "efficientmod_xxs", "--out", str(tmp_path / "x.csv"), *FAST,
               "--exporter", "dynamo", "--opset", "17"])
    assert_one_line_exit_2(rc, capsys, "opset 18")
    assert files_under(tmp_path) == []


def test_an_input_too_large_for_memory_is_refused(tmp_path, capsys):
    # within the argument limits, but 51 GB of input: refused before torch allocates it
    rc = main(["export", "efficientmod_xxs", "--batch", "4096", "--resolution", "1024"])
    assert_one_line_exit_2(rc, capsys, "GB")


# --- outputs are proved writable (by a real write: os.access says yes to root) first --

@pytest.fixture(scope="module")
def results_csv(tmp_path_factory):
    return write_run(tmp_path_factory.mktemp("res") / "base.csv", {"a": 1.0, "b": 1.0}, seed=1)


UNWRITABLE = ["file-as-folder"] + (["proc"] if ROOT and Path("/proc").is_dir() else [])


def unwritable(kind: str, a_file: Path, name: str) -> Path:
    # /proc: os.access(W_OK) is True for root, but nothing can be created there
    return a_file / name if kind == "file-as-folder" else Path("/proc") / f"modbench-test-{name}"


@pytest.mark.parametrize("kind", UNWRITABLE)
def test_run_out_unwritable(kind, a_file, tmp_path, capsys):
    out = unwritable(kind, a_file, "x.csv")
    rc = main(["run", "efficientmod_xxs", "--out", str(out), *FAST])
    assert_one_line_exit_2(rc, capsys)
    assert files_under(tmp_path) == [a_file]


@pytest.mark.parametrize("kind", UNWRITABLE)
def test_report_out_unwritable(kind, results_csv, a_file, tmp_path, capsys):
    rc = main(["report", str(results_csv), "--out", str(unwritable(kind, a_file, "rep")), "--no-plots"])
    assert_one_line_exit_2(rc, capsys, "report folder")
    assert files_under(tmp_path) == [a_file]


@pytest.mark.parametrize("opt", ["--markdown", "--junit"])
@pytest.mark.parametrize("kind", UNWRITABLE)
def test_check_output_unwritable_is_exit_2_before_any_verdict(opt, kind, results_csv, a_file, tmp_path, capsys):
    slow = write_run(tmp_path / "slow.csv", {"a": 1.3, "b": 1.0}, seed=2)
    before = files_under(tmp_path)
    rc = main(["check", str(slow), "--against", str(results_csv), opt, str(unwritable(kind, a_file, "g.md"))])
    cap = assert_one_line_exit_2(rc, capsys, opt)
    assert "latency gate" not in cap.out  # no "OK"/"REGRESSION" printed before the failure
    assert files_under(tmp_path) == before


def test_check_junit_is_well_formed_xml(results_csv, tmp_path, capsys):
    cur = write_run(tmp_path / "cur.csv", {"a": 1.3, "b": 1.0}, seed=2)
    xml = tmp_path / "sub" / "g.xml"
    assert main(["check", str(cur), "--against", str(results_csv), "--junit", str(xml),
                 "--threshold-for", "b=0.1"]) == 1
    suite = ET.parse(xml).getroot()
    assert suite.tag == "testsuite" and suite.get("failures") == "1"
    assert [c.find("failure") is not None for c in suite.iter("testcase")] == [True, False]


def test_check_baseline_missing_a_column(results_csv, tmp_path, capsys):
    import pandas as pd
    import shutil
    from modbench.store import run_config_path, samples_dir
    bad = tmp_path / "base.csv"
    pd.read_csv(results_csv).drop(columns=["median_ms"]).to_csv(bad, index=False)
    shutil.copytree(samples_dir(results_csv), samples_dir(bad))
    if run_config_path(results_csv).exists():
        shutil.copy(run_config_path(results_csv), run_config_path(bad))
    rc = main(["check", str(results_csv), "--against", str(bad)])
    assert_one_line_exit_2(rc, capsys, "median_ms")


def test_baseline_dir_naming_a_file(results_csv, a_file, tmp_path, capsys):
    rc = main(["baseline", "save", str(results_csv), "--dir", str(a_file)])
    assert_one_line_exit_2(rc, capsys, "baseline folder")
    assert files_under(tmp_path) == [a_file]


@pytest.mark.parametrize("name", ["evil\n", "a/b", "..", ""])
def test_baseline_name_must_match_whole(name, results_csv, tmp_path, capsys):
    rc = main(["baseline", "save", str(results_csv), "--dir", str(tmp_path / "bl"), "--name", name])
    assert_one_line_exit_2(rc, capsys, "baseline name")
    assert files_under(tmp_path) == []


def test_cache_env_naming_a_file(a_file, monkeypatch, capsys):
    monkeypatch.setenv("MODBENCH_CACHE", str(a_file))
    rc = main(["export", "efficientmod_xxs", "--resolution", "64"])
    assert_one_line_exit_2(rc, capsys, "MODBENCH_CACHE")
    rc = main(["list", "--suite", "efficientmod"])  # the complexity catalog uses the same folder
    assert_one_line_exit_2(rc, capsys, "MODBENCH_CACHE")
    assert a_file.read_text() == "not a folder\n"


# --- ingest-modelbench -------------------------------------------------------------

def test_template_into_a_missing_folder_is_written(tmp_path, capsys):
    path = tmp_path / "new" / "tpl.csv"
    assert main(["ingest-modelbench", "--template", str(path)]) == 0
    assert path.read_text().startswith("# ModelBench")


def test_template_into_a_file_as_folder(a_file, capsys):
    rc = main(["ingest-modelbench", "--template", str(a_file / "tpl.csv")])
    assert_one_line_exit_2(rc, capsys)


def test_duplicated_header_column_is_refused(tmp_path, capsys):
    src = tmp_path / "mb.csv"
    src.write_text("model,low_ms,high_ms,average_all_ms,model,last_ms\n"
                   "mobilenetv2_100,1,3,2,efficientmod_xxs,2\n")
    rc = main(["ingest-modelbench", str(src), "--device", "iPhone 13", "--out", str(tmp_path / "o.csv")])
    assert_one_line_exit_2(rc, capsys, "'model' appears 2 times")
    assert files_under(tmp_path) == [src]


def test_excel_utf8_bom_is_accepted(tmp_path, capsys):
    src = tmp_path / "mb.csv"
    src.write_bytes("model,low_ms,high_ms,average_all_ms,last_ms\nmobilenetv2_100,1,3,2,2.5\n"
                    .encode("utf-8-sig"))
    out = tmp_path / "o.csv"
    assert main(["ingest-modelbench", str(src), "--device", "iPhone 13", "--out", str(out)]) == 0
    from modbench.store import read_results
    df = read_results(out)
    assert list(df.model) == ["mobilenetv2_100"] and df.median_ms.iloc[0] == 2.0


# --- machine facts and process state ----------------------------------------------

def test_machine_facts_come_from_cpuinfo_and_psutil():
    import cpuinfo
    import psutil
    from modbench.env import cpu_name, physical_cores
    assert cpu_name() == (cpuinfo.get_cpu_info().get("brand_raw") or cpu_name())
    assert physical_cores() == (psutil.cpu_count(logical=False) or os.cpu_count())


def test_torch_cpu_restores_process_threads_on_close():
    import torch
    from modbench.runners import get_runner
    from modbench.runners.base import RunSettings
    from modbench.models import create_model

    before = torch.get_num_threads()
    want = 1 if before != 1 else 2
    m = create_model("efficientmod_xxs", resolution=64)
    settings = RunSettings(threads=want) if "threads" in RunSettings.__dataclass_fields__ else None
    runner = get_runner("torch-cpu")
    a = runner.open(m, (1, 3, 64, 64), settings)
    b = runner.open(m, (1, 3, 64, 64), settings)
    assert torch.get_num_threads() == want
    a.first_run()
    a.close()
    assert torch.get_num_threads() == want  # b is still open
    b.close()
    assert torch.get_num_threads() == before


# --- nothing half-written -------------------------------------------------------------

def test_an_output_that_fails_midway_is_removed(tmp_path):
    from modbench.common.fsio import atomic_dir, atomic_write

    out = tmp_path / "report"
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "tables").mkdir()
            (tmp / "tables" / "t1.md").write_text("half")
            raise RuntimeError("a plot failed")
    assert files_under(tmp_path) == []
    target = tmp_path / "g.md"
    target.write_text("old\n")
    with pytest.raises(TypeError):
        atomic_write(target, object())  # fails after the temporary file exists
    assert target.read_text() == "old\n" and files_under(tmp_path) == [target]


def test_a_bug_is_never_exit_1(monkeypatch, capsys):
    # exit 1 means "a regression": an unexpected exception keeps its traceback but exits 2
    from modbench import cli
    from modbench.commands import list as list_cmd

    monkeypatch.setattr(list_cmd, "run", lambda args: 1 / 0)
    assert cli.main(["list"]) == 2
    err = capsys.readouterr().err
    assert "ZeroDivisionError" in err and "internal error" in err


@pytest.mark.parametrize("options, flags", [
    ({"runtime": "ort-cuda"}, ["--runtime", "ort-cuda"]),          # not available on this machine
    ({"threads": [1000]}, ["--threads", "1000"]),                  # oversubscribed
    ({"precision": "fp16"}, ["--precision", "fp16"]),              # an option the CPU runner does not take
    ({"iters": 10, "block": 50}, ["--iters", "10", "--block", "50"]),
])
def test_the_api_refuses_what_run_refuses_with_the_same_line(tmp_path, capsys, options, flags):
    """modbench.measure and `modbench run` pass the same checks (bench/runplan.py check_request)."""
    from modbench.api import measure
    from modbench.common.errors import ModbenchError

    rc = main(["run", "mobilenetv2_100", *flags, "--out", str(tmp_path / "cli.csv")])
    cli = capsys.readouterr().err.strip()
    try:
        measure("mobilenetv2_100", out=tmp_path / "api.csv", quiet=True, **options)
    except ModbenchError as exc:
        api = str(exc)
    else:
        api = None
    if rc == 0:  # the run took it (e.g. a GPU machine): so did the API
        assert api is None
        return
    assert rc == 2 and cli.count("\n") == 0 and api is not None
    assert cli == f"modbench: error: {api}"
    assert not (tmp_path / "api.csv").exists() and not (tmp_path / "cli.csv").exists()
