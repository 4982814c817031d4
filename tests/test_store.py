"""The results store under faults, concurrency and damage: real files, real
processes, a real full disk (a small tmpfs) where the test can mount one."""
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from modbench.cli import main
from modbench.pipeline import Job, job_identity
from modbench.runners import RUNNERS
from modbench.schema import SCHEMA_VERSION, Placement, Protocol, ResultRow
from modbench.store import (COLUMNS, ResultsError, ResultsWriter, SamplesError, read_samples,
                         read_results, run_config_path, samples_dir)
from modbench.vocab import DEVICES

REPO = Path(__file__).resolve().parent.parent
FAST = ["--iters", "12", "--warmup", "2", "--block", "4", "--block-warmup", "1", "--threads", "1",
        "--resolution", "64"]


def _row(i: int, samples: np.ndarray, model="m", runtime="ort-cpu") -> ResultRow:
    job = Job(model, "default", runtime, 1, 1, 64)
    stats = {"iters": samples.size, "median_ms": float(np.median(samples)), "valid": True}
    return ResultRow.compose(job_identity(job, "run", {"threads": 1}, row_id=f"{model}.r{i}"), stats,
                             {"hostname": "h"}, Placement(cluster="local", node="-:h"),
                             Protocol(schedule="single", interleave_group="run:0", block_size=4, block_warmup=1))


def _bench(*args, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, str(REPO / "bench.py"), *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


# --- one writer at a time ------------------------------------------------------------

def test_a_second_writer_is_refused_while_a_run_is_alive(tmp_path):
    out = tmp_path / "r.csv"
    # Long enough to outlive two more processes starting (each imports torch).
    first = _bench("run", "mobilenetv2_100", "efficientmod_xxs", "--out", str(out), "--iters", "1500",
                   "--warmup", "2", "--block", "50", "--threads", "1", "--interleave", "1")
    deadline = time.monotonic() + 120
    while not out.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert out.exists(), first.communicate()
    # Both ways a second process can touch the file: a resume, and a run to the same --out.
    seconds = [_bench(*argv) for argv in (["run", "--resume", str(out)],
                                          ["run", "mobilenetv2_100", "--out", str(out), *FAST])]
    for second in seconds:
        _, err = second.communicate(timeout=120)
        assert second.returncode == 2, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert first.poll() is None, "the first run ended before the second tried: no race tested"
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    df = read_results(out)
    assert len(df) == 2 and df.row_id.is_unique
    for rec in df.to_dict("records"):
        read_samples(out, rec)  # each row is its own samples' row


def test_two_writers_in_one_process_cannot_share_a_file(tmp_path):
    out = tmp_path / "r.csv"
    with ResultsWriter.create(out, {"models": []}) as w:
        w.append(_row(0, np.full(5, 2.0)), np.full(5, 2.0))
        with pytest.raises(ResultsError, match="one writer at a time"):
            ResultsWriter.resume(out)
    w2, cfg, done = ResultsWriter.resume(out)
    with pytest.raises(ResultsError, match="already in the file"):
        w2.append(_row(0, np.full(5, 2.0)), np.full(5, 2.0))
    w2.close()
    assert cfg == {"models": [], "schema_version": SCHEMA_VERSION} and list(done.row_id) == ["m.r0"]


def test_a_run_that_writes_no_row_leaves_nothing(tmp_path):
    out = tmp_path / "r.csv"
    with pytest.raises(RuntimeError):
        with ResultsWriter.create(out, {}):
            raise RuntimeError("failed before the first row")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == []


def test_kill_before_the_first_row_leaves_a_resumable_or_recreatable_state(tmp_path, capsys):
    """An empty samples folder without a CSV (kill -9 before the first row) is taken
    over; a request file without a CSV is never overwritten: refused in one line naming
    it, before anything is timed, and the run goes through once it is moved away."""
    out = tmp_path / "r.csv"
    run_config_path(out).write_text("{}")
    samples_dir(out).mkdir()
    assert main(["run", "mobilenetv2_100", "--out", str(out), *FAST]) == 2
    assert run_config_path(out).name in capsys.readouterr().err and not out.exists()
    run_config_path(out).unlink()
    assert main(["run", "mobilenetv2_100", "--out", str(out), *FAST]) == 0
    assert len(read_results(out)) == 1


# --- a full disk ------------------------------------------------------------------

@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs; skipped where mounting is not allowed."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _fill(disk: Path, leave: int) -> Path:
    st = os.statvfs(disk)
    filler = disk / "filler"
    filler.write_bytes(b"\0" * max(st.f_bavail * st.f_frsize - leave, 0))
    return filler


def test_full_disk_keeps_complete_rows_and_resumes(tiny_disk):
    out = tiny_disk / "r.csv"
    rng = np.random.default_rng(0)
    w = ResultsWriter.create(out, {"models": []})
    w.append(_row(0, x := rng.uniform(1, 2, 400)), x)
    filler = _fill(tiny_disk, 6000)
    written, err = 1, None
    for i in range(1, 50):
        x = rng.uniform(1, 2, 400)
        try:
            w.append(_row(i, x), x)
            written += 1
        except ResultsError as exc:
            err = str(exc)
            break
    w.close()
    assert err is not None and "no space left" in err and "--resume" in err and "\n" not in err
    raw = out.read_bytes()
    assert raw.endswith(b"\n")
    df = read_results(out)
    assert len(df) == written and not df.attrs["torn_tail"]
    for rec in df.to_dict("records"):
        read_samples(out, rec)
    # Space freed: the same file takes the missing rows.
    filler.unlink()
    w, _, done = ResultsWriter.resume(out)
    x = rng.uniform(1, 2, 400)
    w.append(_row(99, x), x)
    w.close()
    assert len(read_results(out)) == written + 1


def test_full_disk_during_a_cli_run_is_one_line_and_resumable(tiny_disk, capsys):
    out = tiny_disk / "r.csv"
    filler = _fill(tiny_disk, 12000)
    rc = main(["run", "mobilenetv2_100", "efficientmod_xxs", "fasternet_t0", "--out", str(out),
               *FAST[:1], "400", *FAST[2:]])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and "no space left" in err[-1] and "Traceback" not in "\n".join(err)
    filler.unlink()
    if out.exists():  # at least one row fit: finish it
        n = len(read_results(out))
        assert main(["run", "--resume", str(out)]) == 0
        df = read_results(out)
        assert len(df) == 3 and df.row_id.is_unique and n < 3
    else:  # nothing fit: nothing was left behind
        assert not run_config_path(out).exists() and not samples_dir(out).exists()


# --- damaged samples -----------------------------------------------------------------

@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "small.csv"
    assert main(["run", "mobilenetv2_100", "fasternet_t0", "--out", str(out), *FAST]) == 0
    return out


def _copy(run: Path, dst: Path) -> Path:
    out = dst / run.name
    shutil.copy(run, out)
    shutil.copy(run_config_path(run), run_config_path(out))
    shutil.copytree(samples_dir(run), samples_dir(out))
    return out


def _first_samples(out: Path) -> Path:
    return out.parent / read_results(out).samples_file.iloc[0]


@pytest.mark.parametrize("damage, message", [
    (lambda p: np.savez(p, samples_ms=np.r_[np.nan, np.ones(11)]), "finite, positive"),
    (lambda p: np.savez(p, samples_ms=-np.ones(12)), "finite, positive"),
    (lambda p: np.savez(p, samples_ms=np.ones(5)), "5 samples, but the row says 12"),
    (lambda p: np.savez(p, other=np.ones(12)), "has no 'samples_ms'"),
    (lambda p: np.savez(p, samples_ms=np.array(["a"] * 12)), "not numbers"),
    (lambda p: p.write_bytes(b"garbage"), "damaged"),
    (lambda p: np.savez(p, samples_ms=np.full(12, 1234.5)), "not the median of its samples"),
])
def test_damaged_samples_are_refused_by_report_and_never_pass_the_gate(small_run, tmp_path, capsys,
                                                                       damage, message):
    out = _copy(small_run, tmp_path)
    target = _first_samples(out)
    damage(target)
    with pytest.raises(SamplesError, match=message):
        read_samples(out, read_results(out).iloc[0].to_dict())
    capsys.readouterr()
    assert main(["report", str(out), "--out", str(tmp_path / "rep"), "--no-plots"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message.split(",")[0] in err
    # The gate: the damaged row is "not comparable" with the reason, never a pass. (The
    # undamaged row of 12 iterations may be inconclusive on a noisy host: not judged here.)
    _never_passed(out, small_run, capsys, read_results(out).iloc[0]["model"], message.split(",")[0])


def _never_passed(out, base, capsys, model: str, why: str) -> None:
    """The gate on `out` against `base`: `model`'s row is not comparable, saying `why`,
    the gate is no pass, and --strict fails on it."""
    import json
    assert main(["check", str(out), "--against", str(base), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    (row,) = [r for r in doc["rows"] if r["model"] == model]
    assert row["verdict"] == "not comparable" and why in row["note"], row
    assert doc["status"] != "ok" and doc["counts"]["not comparable"] >= 1
    assert main(["check", str(out), "--against", str(base), "--strict"]) == 1


def test_a_samples_path_outside_its_folder_is_refused(small_run, tmp_path):
    out = _copy(small_run, tmp_path)
    out.write_text(out.read_text().replace(f"{samples_dir(out).name}/", "../", 1))
    with pytest.raises(ResultsError, match="is not a file in"):
        read_results(out)


def test_a_non_numeric_resolution_is_one_line(small_run, tmp_path, capsys):
    out = _copy(small_run, tmp_path)
    lines = out.read_text().splitlines(keepends=True)
    i = COLUMNS.index("resolution")
    import csv
    import io
    rec = next(csv.reader(io.StringIO(lines[1])))
    rec[i] = "big"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(rec)
    lines[1] = buf.getvalue()
    out.write_text("".join(lines))
    for argv in (["report", str(out), "--out", str(tmp_path / "rep")], ["claims", str(out)],
                 ["run", "--resume", str(out)], ["check", str(out), "--against", str(small_run)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "resolution 'big' is not a number" in err


def test_a_malformed_run_json_is_one_line(small_run, tmp_path, capsys):
    out = _copy(small_run, tmp_path)
    run_config_path(out).write_text("{not json")
    before = out.read_bytes()
    assert main(["run", "--resume", str(out)]) == 2
    assert "is damaged" in capsys.readouterr().err and out.read_bytes() == before


# --- one vocabulary --------------------------------------------------------------------

def test_every_device_a_runner_or_ingest_writes_goes_through_report_and_claims(tmp_path, capsys):
    """Rows as each runner (and ModelBench ingest) labels them, through the real writer,
    the report and the claims checker."""
    devices = {r.device for r in RUNNERS.values()} | {"iphone"}
    assert devices <= set(DEVICES)
    out = tmp_path / "all.csv"
    rng = np.random.default_rng(1)
    with ResultsWriter.create(out, {}) as w:
        for runtime, r in list(RUNNERS.items()) + [("coreml", None)]:
            for model in ("efficientmod_xxs", "mobilenetv2_100"):
                x = rng.uniform(5, 6, 64)
                job = Job(model, "default" if model != "efficientmod_xxs" else "repeat", runtime, 1, 1, 224)
                dev = r.device if r else "iphone"
                stats = {"iters": 64, "median_ms": float(np.median(x)), "mean_ms": float(x.mean()),
                         "valid": True}
                session = {"device": dev, "device_name": f"{dev}-x", "provider": "p", "threads": 1}
                row_id = f"{model}.{runtime}.{uuid.uuid4().hex[:6]}"
                w.append(ResultRow.compose(
                    job_identity(job, "run", session, row_id=row_id), {"top1": 70.0}, stats,
                    Placement(device_name=f"{dev}-x", provider="p", cluster="local", node="-:h"),
                    Protocol(schedule="round-robin", interleave_group="run:0", block_size=8, block_warmup=1)), x)
    assert set(read_results(out).device) == devices
    assert main(["report", str(out), "--out", str(tmp_path / "rep"), "--no-plots"]) == 0
    assert main(["claims", str(out)]) == 0
    capsys.readouterr()


def test_a_busy_machine_row_is_not_comparable_in_the_gate(small_run, tmp_path, capsys):
    """A row the busy detector flagged says how busy the machine was, not how fast
    the code is: the gate never judges it (and --strict fails on it)."""
    import pandas as pd
    out = _copy(small_run, tmp_path)
    df = pd.read_csv(out, dtype=str, keep_default_na=False)
    df.loc[0, "valid"] = "False"
    df.loc[0, "invalid_reason"] = "machine busy: 60% of blocks had other processes using > 0.2 cores (up to 1.01)"
    # The code is what readers go by (the sentence is for people); the row's own codes stay.
    df.loc[0, "invalid_codes"] = ",".join(c for c in [*df.loc[0, "invalid_codes"].split(","), "busy"] if c)
    df.to_csv(out, index=False)
    capsys.readouterr()
    _never_passed(out, small_run, capsys, df.loc[0, "model"], "busy machine")
