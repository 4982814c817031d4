"""Hostile models and files (issue 20): one test group per mechanism, on real files,
real exports and ONNX Runtime sessions, real processes and signals."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from modbench.cli import main
from modbench.store import ResultsError, ResultsWriter, read_results
from modbench.common.fsio import WriteError, atomic_dir, check_new_output, write_new
from tools.hostile_cases import binary_file, onnx_file, write_helper_module, write_user_nets

REPO = Path(__file__).resolve().parents[1]
FAST = ["--iters", "20", "--warmup", "2", "--block", "10", "--threads", "1"]


def _row(i: int, samples: np.ndarray, model="m"):
    from modbench.pipeline import Job, job_identity
    from modbench.schema import Protocol, ResultRow

    job = Job(model, "default", "ort-cpu", 1, 1, 64)
    stats = {"iters": samples.size, "median_ms": float(np.median(samples)), "valid": True}
    return ResultRow.compose(job_identity(job, "run", {"threads": 1}, row_id=f"{model}.r{i}"), stats,
                             {"hostname": "h"}, Protocol(schedule="single", interleave_group="run:0",
                                                         block_size=4, block_warmup=1))


def _written(path: Path, n: int) -> Path:
    with ResultsWriter.create(path, {"models": ["m"]}) as w:
        for i in range(n):
            w.append(_row(i, np.full(5, 2.0 + i)), np.full(5, 2.0 + i))
    return path


def _one_line_error(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("note:")]
    assert len(lines) == 1 and lines[0].startswith(("modbench: error:", "bench.py: error:")), err
    return lines[0]


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


# --- the cache key is what is timed ----------------------------------------------------

def _export_user(folder: Path, cache_dir: Path):
    import torch

    from modbench.exporters import ExportRequest
    from modbench.exporters.cache import ExportCache
    from modbench.exporters.onnx import OnnxExporter
    from modbench.models.byo import _callable_entry

    for m in ("helper_arch", "uses_helper"):
        sys.modules.pop(m, None)
    entry = _callable_entry("uses_helper:build", {})
    torch.manual_seed(0)
    module = entry.builder("default", 32)
    return OnnxExporter(cache=ExportCache(cache_dir)).export(
        module, ExportRequest(entry.name, "default", 32, 1, entry.source_id))


def test_cache_key_follows_the_built_module_not_its_source_file(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    write_helper_module(tmp_path, 4)
    first = _export_user(tmp_path, tmp_path / "cache")
    again = _export_user(tmp_path, tmp_path / "cache")
    assert again.meta["cache_hit"] and again.meta["sha256"] == first.meta["sha256"]
    # The helper grows; the file holding build() is unchanged: a new graph, not the old one.
    write_helper_module(tmp_path, 16)
    bigger = _export_user(tmp_path, tmp_path / "cache")
    assert not bigger.meta["cache_hit"] and bigger.meta["sha256"] != first.meta["sha256"]


def test_a_cache_hit_still_proves_it_computes_the_module(tmp_path, monkeypatch):
    """Same structure and parameters, another forward: the key matches, parity does not."""
    monkeypatch.syspath_prepend(str(tmp_path))
    write_helper_module(tmp_path, 4, scale=1.0)
    first = _export_user(tmp_path, tmp_path / "cache")
    write_helper_module(tmp_path, 4, scale=3.0)
    changed = _export_user(tmp_path, tmp_path / "cache")
    assert changed.meta["cache_key"] == first.meta["cache_key"]
    assert not changed.meta["cache_hit"] and changed.meta["sha256"] != first.meta["sha256"]


# --- one file, one writer ---------------------------------------------------------------

def test_a_symlink_or_hard_link_cannot_get_a_second_writer(tmp_path):
    real = _written(tmp_path / "r.csv", 1)
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    other = tmp_path / "sub"
    other.mkdir()
    hard = other / "hard.csv"
    os.link(real, hard)
    w, _, _ = ResultsWriter.resume(real)
    try:
        for name in (link, hard):
            with pytest.raises(ResultsError, match="one writer at a time"):
                ResultsWriter.resume(name)
    finally:
        w.close()
    w2, _, done = ResultsWriter.resume(link)  # free again once the first writer is gone
    w2.close()
    assert list(done.row_id) == ["m.r0"]


def test_two_processes_resuming_through_a_symlink_one_is_refused(tmp_path):
    real = _written(tmp_path / "r.csv", 1)
    (tmp_path / "link.csv").symlink_to(real)
    hold = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from modbench.store import ResultsWriter
        w, _, _ = ResultsWriter.resume({str(real)!r})
        print("locked", flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert hold.stdout.readline().strip() == "locked"
        with pytest.raises(ResultsError, match="one writer at a time"):
            ResultsWriter.resume(tmp_path / "link.csv")
    finally:
        hold.kill()
        hold.wait()


# --- a row is complete when it is complete -------------------------------------------------

def test_a_complete_last_row_without_newline_is_a_row_and_resume_keeps_it(tmp_path, capsys):
    out = _written(tmp_path / "r.csv", 2)
    whole = out.read_bytes()
    out.write_bytes(whole[:-1])  # what `truncate -s -1` or an editor leaves
    assert list(read_results(out).row_id) == ["m.r0", "m.r1"]
    assert "incomplete" not in capsys.readouterr().err
    w, _, done = ResultsWriter.resume(out)
    w.close()
    assert list(done.row_id) == ["m.r0", "m.r1"] and out.read_bytes() == whole


def test_a_torn_last_row_is_dropped_and_said(tmp_path, capsys):
    out = _written(tmp_path / "r.csv", 2)
    whole = out.read_bytes()
    out.write_bytes(whole[:-40])
    assert list(read_results(out).row_id) == ["m.r0"]
    assert "last line is an incomplete row" in capsys.readouterr().err
    w, _, done = ResultsWriter.resume(out)
    w.close()
    assert "cut off" in capsys.readouterr().err and list(done.row_id) == ["m.r0"]
    assert out.read_bytes().endswith(b"\n")


def test_a_full_last_line_whose_samples_are_missing_is_torn(tmp_path, capsys):
    out = _written(tmp_path / "r.csv", 2)
    out.write_bytes(out.read_bytes()[:-1])
    (tmp_path / "r.samples" / "m.r1.npz").unlink()
    assert list(read_results(out).row_id) == ["m.r0"]
    assert "incomplete row" in capsys.readouterr().err


# --- outputs never overwrite inputs or existing files --------------------------------------

def test_check_never_writes_over_the_results_it_judges_or_any_file(tmp_path, capsys):
    from tests.test_gate_check import write_run

    base = write_run(tmp_path / "base.csv", {"a": 1.0}, seed=1)
    cur = write_run(tmp_path / "cur.csv", {"a": 1.0}, seed=2)
    before = cur.read_bytes()
    for opt in ("--junit", "--markdown"):
        assert main(["check", str(cur), "--against", str(base), opt, str(cur)]) == 2
        assert "input of this command" in _one_line_error(capsys.readouterr().err)
    other = tmp_path / "notes.md"
    other.write_text("mine")
    assert main(["check", str(cur), "--against", str(base), "--markdown", str(other)]) == 2
    assert "already exists" in _one_line_error(capsys.readouterr().err)
    assert cur.read_bytes() == before and other.read_text() == "mine"
    assert main(["check", str(cur), "--against", str(base), "--junit", str(tmp_path / "new.xml")]) == 0
    assert "<testsuite" in (tmp_path / "new.xml").read_text()


def test_the_one_output_rule(tmp_path):
    f = tmp_path / "f.txt"
    f.write_text("x")
    with pytest.raises(WriteError, match="already exists"):
        check_new_output(f)
    with pytest.raises(WriteError, match="already exists"):
        write_new(f, "y")
    assert f.read_text() == "x"
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_text("a")
    with pytest.raises(WriteError, match="not an empty folder"):
        check_new_output(tmp_path / "d", folder=True)
    write_new(tmp_path / "new" / "g.txt", "z")
    assert (tmp_path / "new" / "g.txt").read_text() == "z"
    assert _visible(tmp_path / "new") == ["g.txt"] and len(list((tmp_path / "new").iterdir())) == 1


# --- a model a user brings is probed before anything is planned ----------------------------

@pytest.mark.parametrize("elem", [10, 7], ids=["float16", "int64"])
def test_an_onnx_file_is_fed_its_own_input_type(tmp_path, capsys, elem):
    f = onnx_file(tmp_path / "typed.onnx", elem=elem)
    out = tmp_path / "r.csv"
    assert main(["run", str(f), "--out", str(out), *FAST]) == 0
    row = read_results(out).iloc[0]
    assert row.model == "typed.onnx" and row.iters == 20


@pytest.mark.parametrize("kind,says", [
    ("custom-op", "cannot load it"),
    ("ir-version", "cannot load it"),
    ("width", "fixes image width at 48"),
    ("run-time", "cannot run it on a 1x3x32x32 float32 input"),
])
def test_an_onnx_file_the_runtime_refuses_is_one_line_before_anything_is_written(tmp_path, capsys, kind, says):
    if kind == "custom-op":
        f = onnx_file(tmp_path / "m.onnx", domain="com.example")
    elif kind == "ir-version":
        f = onnx_file(tmp_path / "m.onnx", ir=14)  # what onnx 1.23 writes; ORT 1.31 reads up to 13
    elif kind == "run-time":
        f = onnx_file(tmp_path / "m.onnx", fails_when_run=True)
    else:
        f = onnx_file(tmp_path / "m.onnx", dims=(1, 3, "h", 48))
    out = tmp_path / "out" / "r.csv"
    args = ["run", str(f), "--out", str(out), *FAST] + (["--resolution", "32"] if kind == "width" else [])
    assert main(args) == 2
    assert says in _one_line_error(capsys.readouterr().err)
    assert not (tmp_path / "out").exists() or _visible(tmp_path / "out") == []


@pytest.mark.parametrize("fn", ["tuple_out", "dict_out"])
def test_a_callable_may_return_a_tuple_or_dict_of_tensors(tmp_path, monkeypatch, fn):
    monkeypatch.syspath_prepend(str(tmp_path))
    write_user_nets(tmp_path)
    sys.modules.pop("hostile_nets", None)
    out = tmp_path / "r.csv"
    assert main(["run", f"hostile_nets:{fn}", "--out", str(out), "--resolution", "32", *FAST]) == 0
    row = read_results(out).iloc[0]
    assert row.export_parity_rel_err < 1e-4 and row.iters == 20


@pytest.mark.parametrize("fn,says", [
    ("index_error", "IndexError"),
    ("text_out", "returned str"),
    ("exit1", "sys.exit(1)"),
    ("exit0", "sys.exit(0)"),
])
def test_user_code_failing_any_way_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, fn, says):
    monkeypatch.syspath_prepend(str(tmp_path))
    write_user_nets(tmp_path)
    sys.modules.pop("hostile_nets", None)
    out = tmp_path / "out" / "r.csv"
    assert main(["run", f"hostile_nets:{fn}", "--out", str(out), "--resolution", "32", *FAST]) == 2
    assert says in _one_line_error(capsys.readouterr().err)
    assert not out.exists()


def test_sys_exit_at_import_is_exit_2_in_a_real_process(tmp_path):
    (tmp_path / "quits.py").write_text("import sys\nsys.exit(1)\ndef build(): pass\n")
    r = subprocess.run([sys.executable, str(REPO / "bench.py"), "run", "quits:build", "--out",
                        str(tmp_path / "r.csv")], cwd=tmp_path, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert r.returncode == 2 and "sys.exit(1)" in _one_line_error(r.stderr)


@pytest.mark.parametrize("name", ["my model.onnx", "café.onnx"])
def test_a_name_that_cannot_be_a_row_id_is_refused_when_planned(tmp_path, capsys, name):
    f = onnx_file(tmp_path / name)
    out = tmp_path / "out" / "r.csv"
    t0 = time.monotonic()
    assert main(["run", str(f), "--out", str(out), "--iters", "100000", "--threads", "1"]) == 2
    assert "cannot name a results row" in _one_line_error(capsys.readouterr().err)
    assert time.monotonic() - t0 < 60 and not (tmp_path / "out").exists()


# --- signals are handled once -----------------------------------------------------------

def _start_run(tmp_path: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "bench.py"), "run", "mobilenetv2_100", "--out", str(out),
         "--iters", "100000", "--warmup", "2", "--block", "10", "--threads", "1"],
        cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_timing(p: subprocess.Popen) -> None:
    for line in p.stderr:
        if line.startswith("protocol:"):
            time.sleep(1.0)
            return
    raise AssertionError("the run ended before timing")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_run_killed_before_its_first_row_leaves_nothing(tmp_path, sig):
    out = tmp_path / "r.csv"
    p = _start_run(tmp_path, out)
    try:
        _wait_timing(p)
        p.send_signal(sig)
        p.wait(timeout=60)
    finally:
        p.kill()
    assert p.returncode == (130 if sig == signal.SIGTERM else -signal.SIGKILL)
    assert _visible(tmp_path) == []  # no header-only CSV, no request, no samples folder


def test_a_half_built_report_folder_of_a_dead_process_is_swept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    half = tmp_path / f".other-report.{dead.pid}.partial.abc"  # another name's, too
    half.mkdir()
    (half / "README.md").write_text("half")
    mine = tmp_path / f".report.{os.getpid()}.partial.def"
    mine.mkdir()
    with atomic_dir(tmp_path / "report") as tmp:
        (tmp / "README.md").write_text("whole")
    assert not half.exists() and mine.exists()
    assert (tmp_path / "report" / "README.md").read_text() == "whole"


# --- names claimed atomically; absurd thread counts -------------------------------------

def test_two_baseline_saves_of_one_name_one_wins(tmp_path):
    from tests.test_gate_check import write_run

    runs = [write_run(tmp_path / f"b{i}.csv", {"a": 1.0}, seed=i) for i in range(2)]
    root = tmp_path / "bl"
    procs = [subprocess.Popen([sys.executable, str(REPO / "bench.py"), "baseline", "save", str(r),
                               "--name", "main", "--dir", str(root)], cwd=REPO,
                              env=dict(os.environ, PYTHONPATH=str(REPO)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in runs]
    codes = sorted(p.wait(timeout=120) for p in procs)
    assert codes == [0, 2]
    machine = next(root.iterdir())
    assert _visible(machine) == ["main"]  # nothing moved aside
    manifest = json.loads((machine / "main" / "baseline.json").read_text())
    assert manifest["source"] in {str(r) for r in runs}


def test_absurd_thread_counts_are_refused_unless_forced(tmp_path, capsys):
    cores = os.cpu_count()
    out = tmp_path / "r.csv"
    assert main(["run", "mobilenetv2_100", "--out", str(out), "--threads", str(4 * cores + 1)]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "--force-threads" in line and f"{cores} logical cores" in line and not out.exists()


# --- the lower list -------------------------------------------------------------------------

@pytest.mark.parametrize("argv,says", [
    (["run", "mobilenetv2_100", "--min-iters", "100", "--max-iters", "40"], "more than --max-iters"),
    (["run", "mobilenetv2_100", "efficientmod_xxs", "--variant", "reshap"], "no model of this run has a variant"),
])
def test_settings_that_cannot_be_run_are_refused(tmp_path, capsys, argv, says):
    assert main([*argv, "--out", str(tmp_path / "r.csv")]) == 2
    assert says in _one_line_error(capsys.readouterr().err)


# A value of each stored setting other than the stored run's (a RunRequest's defaults).
OTHER_VALUE = {"--runtime": "torch-cpu", "--variant": "reshape", "--threads": "3", "--batch": "2",
               "--resolution": "64", "--iters": "500", "--max-iters": "999", "--target-ci": "0.05",
               "--stat": "mean", "--min-iters": "77", "--time-budget": "33", "--warmup": "7", "--block": "9",
               "--block-warmup": "1", "--schedule": "sequential", "--busy-cores": "0.7", "--max-disturbed": "0.3",
               "--interleave": "2", "--spinning": "off", "--checkpoint": "w.pt", "--exporter": "dynamo",
               "--opset": "17", "--dynamic-batch": None, "--model-arg": "width=2", "--top1": "m=50",
               "--precision": "fp16", "--cudnn-algo-search": "HEURISTIC", "--cuda-graphs": None,
               "--end-to-end": None, "--compile-mode": "default", "--device-id": "1", "--reference": "mobilenetv2_100"}


def test_every_stored_setting_has_a_case():
    from modbench.runplan import SETTINGS

    assert {s.flag for s in SETTINGS} == set(OTHER_VALUE)


@pytest.mark.parametrize("flag", sorted(OTHER_VALUE))
def test_resume_refuses_every_stored_setting_it_would_ignore(tmp_path, capsys, flag):
    out = _written(tmp_path / "r.csv", 1)
    value = OTHER_VALUE[flag]
    assert main(["run", "--resume", str(out), flag, *([value] if value is not None else [])]) == 2
    err = _one_line_error(capsys.readouterr().err)
    assert f"{flag} " in err and "would not apply" in err, err


def test_resume_takes_a_setting_equal_to_the_stored_one(tmp_path, capsys):
    out = _written(tmp_path / "r.csv", 1)
    # --warmup 50 is what the run asked (the default): nothing to refuse; the one row is complete.
    assert main(["run", "--resume", str(out), "--warmup", "50", "--block", "50"]) in (0, 2)
    assert "would not apply" not in capsys.readouterr().err


def test_resume_refuses_settings_it_would_ignore_and_says_what_changed(tmp_path, capsys):
    out = _written(tmp_path / "r.csv", 1)
    assert main(["run", "--resume", str(out), "--iters", "500", "--threads", "3"]) == 2
    err = _one_line_error(capsys.readouterr().err)
    assert "--threads 3 (the run has 4)" in err and "--iters 500 (the run has 4000)" in err
    from modbench.commands.run import software_changes
    df = read_results(out).assign(git_commit="0123abc", onnxruntime_version="0.1", onnxruntime_gpu_version="0.1")
    notes = software_changes(df)  # whichever ONNX Runtime distribution is installed here
    assert any("commit 0123abc" in n for n in notes) and any("onnxruntime" in n and " 0.1;" in n for n in notes)


def test_list_into_a_closed_pipe_is_not_an_error():
    r = subprocess.run(f"{sys.executable} {REPO / 'bench.py'} list --no-count | head -1", shell=True,
                       cwd=REPO, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert r.stdout.strip() and "Broken pipe" not in r.stderr and "Traceback" not in r.stderr


def test_an_empty_home_is_not_the_root_cache(monkeypatch):
    from modbench.common.fsio import CacheError, default_cache_dir

    monkeypatch.delenv("MODBENCH_CACHE", raising=False)
    monkeypatch.setenv("HOME", "")
    with pytest.raises(CacheError, match="MODBENCH_CACHE"):
        default_cache_dir()


def test_a_model_name_is_never_a_live_formula_in_a_table_csv():
    from modbench.report.tables import _inert

    assert _inert("=1+1.onnx") == "'=1+1.onnx" and _inert("@x") == "'@x"
    assert _inert("-0.5") == "-0.5" and _inert("-") == "-" and _inert("mobilenetv2_100") == "mobilenetv2_100"


def test_an_onnx_file_with_external_data_is_hashed_with_its_weights(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from modbench.models.byo import onnx_file_digest

    w = numpy_helper.from_array(np.ones((3, 3), np.float32), "w")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 3])], [w])
    m = helper.make_model(g)
    onnx.save(m, str(tmp_path / "m.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="m.data", size_threshold=0)
    before = onnx_file_digest(tmp_path / "m.onnx")
    data = bytearray((tmp_path / "m.data").read_bytes())
    data[0] ^= 1
    (tmp_path / "m.data").write_bytes(bytes(data))
    assert onnx_file_digest(tmp_path / "m.onnx") != before


def test_an_interleaved_check_without_blocks_to_spread_is_refused(tmp_path, capsys):
    assert main(["check", "--interleaved", "--baseline", "x", "--baseline-dir", str(tmp_path),
                 "--iters", "1"]) == 2
    assert "paired block(s); an interval needs at least 3" in _one_line_error(capsys.readouterr().err)


def test_top1_files_with_a_byte_order_mark_read_and_binary_ones_are_one_line(tmp_path):
    from modbench.models.byo import parse_top1
    from modbench.models.registry import ModelError

    tsv = tmp_path / "top1.tsv"
    tsv.write_bytes("\ufeffname\ttop1\nmine.onnx\t71.5\n".encode())
    assert parse_top1([str(tsv)]) == {"mine.onnx": 71.5}
    with pytest.raises(ModelError, match="not a text file"):
        parse_top1([str(binary_file(tmp_path / "top1.bin"))])
