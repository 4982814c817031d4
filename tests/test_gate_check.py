"""`bench.py check` and `bench.py baseline` on results files with known samples.

The files are written by the real ResultsWriter with the real schema; only the
samples are synthetic, so every verdict is known in advance."""
import json
from pathlib import Path

import numpy as np
import pytest

from modbench.cli import main
from modbench.store import ResultsWriter, read_results
from tools.gate_error_rates import synthetic_run

CPU = {"cpu_name": "Test CPU", "cpu_logical": 2, "device_name": "Test CPU"}


def write_run(path: Path, models: dict, seed: int = 0, block: int = 50, n: int = 400,
              machine: float = 1.0, reference_ms: float | None = None, **overrides) -> Path:
    """models: name -> slowdown factor of that model's distribution."""
    rng = np.random.default_rng(seed)
    w = ResultsWriter.create(path, {"models": list(models)})
    ref = None
    for i, (name, slowdown) in enumerate(models.items()):
        if name == "ref":
            x = ref
        else:
            x, ref_new = synthetic_run(rng, n, block, median_ms=20.0 + i, slowdown=slowdown,
                                       machine=machine, reference_ms=reference_ms)
            ref = ref if ref is not None else ref_new
        row = {"row_id": f"{name}.default.ort-cpu.t2.b1.r224", "run_id": "r", "model": name,
               "variant": "default", "runtime": "onnxruntime", "provider": "CPUExecutionProvider",
               "device": "cpu", "precision": "fp32", "batch": 1, "resolution": 224, "threads": 2,
               "threads_requested": 2, "schedule": "round-robin", "interleave_group": "r:0",
               "block_size": block, "iters": x.size, "median_ms": float(np.median(x)), "valid": True,
               "exporter": "torchscript", "opset": 17, "artifact_format": "onnx",
               "checkpoint": "random-init", "runtime_settings": {"spinning": True, "ort_version": "1"},
               **CPU}
        row.update(overrides)
        w.append(row, x)
    return path


def check(*argv) -> int:
    return main(["check", *map(str, argv)])


def test_unchanged_passes_and_slower_fails(tmp_path, capsys):
    base = write_run(tmp_path / "base.csv", {"a": 1.0, "b": 1.0}, seed=1)
    same = write_run(tmp_path / "same.csv", {"a": 1.0, "b": 1.0}, seed=2)
    slow = write_run(tmp_path / "slow.csv", {"a": 1.0, "b": 1.2}, seed=3)
    assert check(same, "--against", base) == 0
    assert "latency gate: OK" in capsys.readouterr().out
    md, xml = tmp_path / "out" / "gate.md", tmp_path / "gate.xml"
    assert check(slow, "--against", base, "--markdown", md, "--junit", xml) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "slower" in out
    assert "🔴 slower" in md.read_text() and "`b`" in md.read_text()
    assert 'failures="1"' in xml.read_text()


def test_per_model_threshold_can_absorb_a_change(tmp_path):
    base = write_run(tmp_path / "base.csv", {"a": 1.0}, seed=1)
    slow = write_run(tmp_path / "slow.csv", {"a": 1.12}, seed=2)
    assert check(slow, "--against", base) == 1
    assert check(slow, "--against", base, "--threshold-for", "a=0.25") == 0


def test_missing_models_are_reported_not_ignored(tmp_path, capsys):
    base = write_run(tmp_path / "base.csv", {"a": 1.0, "gone": 1.0}, seed=1)
    cur = write_run(tmp_path / "cur.csv", {"a": 1.0, "new": 1.0}, seed=2)
    assert check(cur, "--against", base) == 0
    out = capsys.readouterr().out
    assert "missing in the current run" in out and "new: no baseline row" in out
    assert check(cur, "--against", base, "--strict") == 1


def test_refuses_other_machine_or_settings_unless_told(tmp_path, capsys):
    base = write_run(tmp_path / "base.csv", {"a": 1.0}, seed=1)
    other = write_run(tmp_path / "other.csv", {"a": 1.0}, seed=2, cpu_name="Other CPU")
    opset = write_run(tmp_path / "opset.csv", {"a": 1.0}, seed=2, opset=18)
    assert check(other, "--against", base) == 2
    err = capsys.readouterr().err
    assert err.startswith("modbench: error: machine fingerprints differ") and err.count("\n") == 1
    assert check(opset, "--against", base) == 2
    assert "opset" in capsys.readouterr().err
    assert check(other, "--against", base, "--allow-mismatch") == 0


def test_reference_model_removes_a_slower_machine(tmp_path):
    base = write_run(tmp_path / "base.csv", {"a": 1.0, "ref": 1.0}, seed=1, reference_ms=9.0)
    cur = write_run(tmp_path / "cur.csv", {"a": 1.0, "ref": 1.0}, seed=2, machine=1.25, reference_ms=9.0)
    assert check(cur, "--against", base) == 1  # the machine, not the code
    assert check(cur, "--against", base, "--reference", "ref") == 0


@pytest.mark.parametrize("argv", [
    ["missing.csv", "--against", "missing.csv"],
    ["--threshold", "banana"],
    ["--alpha", "2"],
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv):
    base = write_run(tmp_path / "base.csv", {"a": 1.0})
    args = argv if argv[0] == "missing.csv" else [base, "--against", base, *argv]
    assert check(*args) == 2
    err = capsys.readouterr().err
    assert err.startswith("modbench: error:") and err.count("\n") == 1


def test_baseline_save_show_and_never_silently_replaced(tmp_path, capsys):
    root = tmp_path / "bl"
    base = write_run(tmp_path / "base.csv", {"a": 1.0}, seed=1)
    base2 = write_run(tmp_path / "base2.csv", {"a": 1.0}, seed=4)
    slow = write_run(tmp_path / "slow.csv", {"a": 1.2}, seed=2)
    assert main(["baseline", "save", str(base), "--name", "main", "--dir", str(root)]) == 0
    saved = list(root.glob("*/main/base.csv"))
    assert len(saved) == 1 and "test-cpu-2-test-cpu" in str(saved[0])
    before = saved[0].read_bytes()
    assert main(["baseline", "save", str(base2), "--name", "main", "--dir", str(root)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert saved[0].read_bytes() == before
    assert check(slow, "--baseline", "main", "--baseline-dir", root) == 1
    assert main(["baseline", "save", str(base2), "--name", "main", "--dir", str(root), "--replace"]) == 0
    assert len(list(root.glob("*/main.replaced-*/base.csv"))) == 1
    assert len(read_results(next(root.glob("*/main/base2.csv")))) == 1
    assert check(slow, "--baseline", "nope", "--baseline-dir", root) == 2
    capsys.readouterr()
    assert main(["baseline", "show", "--dir", str(root), "--all-machines"]) == 0
    assert "main" in capsys.readouterr().out
    manifest = json.loads(next(root.glob("*/main/baseline.json")).read_text())
    assert manifest["fingerprint"] == "Test CPU|2|Test CPU"
