"""The command line end to end: real exports, real ORT sessions, few iterations."""
import json

import numpy as np
import pandas as pd
import pytest

from modbench.cli import main
from modbench.store import COLUMNS, read_results, read_rows, read_samples, run_config_path, samples_dir

FAST = ["--iters", "12", "--warmup", "2", "--block", "4", "--block-warmup", "1", "--threads", "1"]


@pytest.fixture(scope="module")
def two_model_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "two.csv"
    rc = main(["run", "efficientmod_xxs", "mobilenetv2_100", "--variant", "repeat,reshape",
               "--out", str(out), *FAST])
    assert rc == 0
    return out


def test_run_writes_complete_rows_with_samples(two_model_run):
    df = read_results(two_model_run)
    assert list(df.columns) == COLUMNS
    # EfficientMod in both variants, MobileNetV2 once (it has no reshape variant)
    assert sorted(zip(df.model, df.variant)) == [
        ("efficientmod_xxs", "repeat"), ("efficientmod_xxs", "reshape"), ("mobilenetv2_100", "default")]
    rows = {row.id: row for row in read_rows(two_model_run)}
    for _, r in df.iterrows():
        s = read_samples(two_model_run, r.to_dict())
        assert s.size == r.iters == 12
        assert r.median_ms == pytest.approx(np.median(s), rel=1e-5)
        assert r.runtime == "ort-cpu" and r.provider == "CPUExecutionProvider" and r.device == "cpu"
        assert r.cluster == "local" and r.node.endswith(r.hostname)
        assert r.threads == 1 and r.batch == 1 and r.resolution == 224
        assert r.schedule == "round-robin" and r.block_size == 4
        # Valid exactly when 3 blocks pin the median to ±1% on an otherwise quiet machine.
        assert r.valid == (r.ci_rel_half_width <= 0.01 and "busy" not in str(r.invalid_reason)
                           and "host slowed" not in str(r.invalid_reason))
        assert r.valid or any(w in r.invalid_reason for w in ("median known to ±", "machine busy", "host slowed"))
        assert r.blocks == 3 and r.disturbed_blocks >= 0 and r.others_cpu_max >= 0
        assert r.cpu_name and r.torch_version and (r.onnxruntime_version or r.onnxruntime_gpu_version) and r.git_commit
        # Load and first run recorded apart from the steady state: each costs more than
        # the fastest timed iteration of the same row at the same machine speed. The host
        # may slow the timed loop (not the first run): the loop's fastest iteration is
        # brought back to normal speed by the slowest probe reading of the row's blocks.
        probe = rows[r.row_id].probe()
        slowdown = 1.0 if probe is None else max(1.0, float(probe.max() / r.machine_ref_ms))
        assert r.load_ms > r.min_ms and r.first_run_ms >= r.min_ms / slowdown
    assert df.interleave_group.nunique() == 1
    assert json.loads(run_config_path(two_model_run).read_text())["protocol"]["iters"] == 12


def test_existing_output_is_never_overwritten(two_model_run, capsys):
    before = two_model_run.read_bytes()
    assert main(["run", "efficientmod_xxs", "--out", str(two_model_run), *FAST]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and err.count("\n") == 1
    assert two_model_run.read_bytes() == before


def test_resume_finishes_only_missing_rows(two_model_run, tmp_path, capsys):
    # Simulate an interrupted run: a copy that kept only its first completed row.
    import shutil
    # samples are linked relative to the CSV under its own name: copy, don't rename
    out = tmp_path / two_model_run.name
    lines = two_model_run.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:2]))
    shutil.copy(run_config_path(two_model_run), run_config_path(out))
    shutil.copytree(samples_dir(two_model_run), samples_dir(out))
    first = lines[1]
    assert main(["run", "--resume", str(out)]) == 0
    df = read_results(out)
    assert len(df) == 3 and out.read_text().splitlines(keepends=True)[1] == first
    assert main(["run", "--resume", str(out)]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_resume_reads_a_request_stored_before_the_timing_protocol(two_model_run, tmp_path):
    """run.json files of the flat form (iters, block, ... beside the models) still
    resume, with their own settings: the resumed row has the stored count and block."""
    import shutil
    out = tmp_path / two_model_run.name
    lines = two_model_run.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:3]))
    shutil.copytree(samples_dir(two_model_run), samples_dir(out))
    cfg = json.loads(run_config_path(two_model_run).read_text())
    p = cfg.pop("protocol")
    assert p["auto"] is False
    cfg.update(iters=6, auto=False, target_ci=p["stopping"]["target_ci"], stat="median", min_iters=300,
               time_budget=480, warmup=1, block=3, block_warmup=0, schedule="sequential")
    run_config_path(out).write_text(json.dumps(cfg))
    assert main(["run", "--resume", str(out)]) == 0
    df = read_results(out)
    new = df.iloc[-1]
    assert len(df) == 3 and new.iters == 6 and new.block_size == 3 and new.block_warmup == 0
    assert new.warmup == 1 and read_samples(out, new.to_dict()).size == 6


@pytest.mark.parametrize("argv, message", [
    (["run", "efficientmod_xxx"], "did you mean efficientmod_xxs"),
    (["run", "efficientmod_xxs", "--iters", "0"], "--iters: expected a number of iterations"),
    (["run", "efficientmod_xxs", "--threads", "0"], "--threads: expected a thread count"),
    (["run", "efficientmod_xxs", "--batch", "-1"], "--batch: expected a batch size"),
    (["run", "efficientmod_xxs", "--threads", "two"], "expected an integer"),
    (["run", "efficientmod_hier_6m"], "not available yet"),
    (["run", "--suite", "nope"], "unknown suite 'nope'"),
    (["run", "efficientmod_xxs", "--runtime", "tpu"], "unknown runtime 'tpu'"),
    (["run", "efficientmod_xxs", "--variant", "shuffle"], "has no variant 'shuffle'"),
    (["run", "efficientformer_l1", "--resolution", "256"], "cannot take resolution 256"),
    (["run"], "name at least one MODEL or a --suite"),
    (["export", "efficientmod_xxs", "--format", "tflite"], "unknown export format"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, capsys):
    argv = argv + ["--out", str(tmp_path / "x.csv")] if argv[0] == "run" else argv
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not list(tmp_path.iterdir()), "nothing may be written on bad input"


def test_unwritable_output_is_refused(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["run", "efficientmod_xxs", "--out", str(blocker / "x.csv"), *FAST]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_resume_repairs_a_torn_last_row(two_model_run, tmp_path):
    """A crash mid-append leaves a partial line: the reader keeps the complete rows and
    --resume cuts the partial one and redoes that row, once."""
    import shutil
    out = tmp_path / two_model_run.name
    shutil.copy(two_model_run, out)
    shutil.copy(run_config_path(two_model_run), run_config_path(out))
    shutil.copytree(samples_dir(two_model_run), samples_dir(out))
    out.write_bytes(out.read_bytes()[:-7])
    df = read_results(out)
    assert len(df) == 2 and df.attrs["torn_tail"]
    assert main(["run", "--resume", str(out)]) == 0
    df = read_results(out)
    assert len(df) == 3 and df.row_id.is_unique and not df.attrs["torn_tail"]
    for rec in df.to_dict("records"):
        read_samples(out, rec)  # every row matches its samples


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_text(p.read_text() + "a,b\n"), "has 2 fields"),
    (lambda p: p.write_text("hello\n"), "not a modbench results CSV"),
])
def test_damaged_resume_file_is_refused(two_model_run, tmp_path, capsys, damage, message):
    import shutil
    out = tmp_path / two_model_run.name
    shutil.copy(two_model_run, out)
    shutil.copy(run_config_path(two_model_run), run_config_path(out))
    shutil.copytree(samples_dir(two_model_run), samples_dir(out))
    damage(out)
    before = out.read_bytes()
    assert main(["run", "--resume", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert out.read_bytes() == before


def test_list_formats(capsys):
    assert main(["list", "--format", "json", "--suite", "efficientmod"]) == 0
    rows = json.loads(capsys.readouterr().out)
    xxs = next(r for r in rows if r["name"] == "efficientmod_xxs")
    assert xxs["params_m"] == pytest.approx(4.736264) and xxs["paper_params_m"] == 4.7
    assert xxs["macs_g"] == pytest.approx(0.579, abs=5e-4)
    assert main(["list", "--no-count", "--format", "csv"]) == 0
    df = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert len(df) >= 26 and {"edgevit_s", "efficientmod_s_conv"} <= set(df.name)


def test_oversubscription_warns_and_records_threads(tmp_path, capsys):
    import os
    threads = len(os.sched_getaffinity(0)) + 1
    out = tmp_path / "over.csv"
    assert main(["run", "mobilenetv2_100", "--out", str(out), *FAST[:-2], "--threads", str(threads)]) == 0
    assert "oversubscribed" in capsys.readouterr().err
    row = read_results(out).iloc[0]
    assert row.threads == threads and row.cpu_logical == threads - 1
