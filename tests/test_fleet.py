"""Fleet runs against a real Ray cluster: several nodes on this machine
(ray.cluster_utils.Cluster), each with a bench slot and its own custom resource.

Everything is real (Ray scheduling, node loss, exports, ONNX Runtime sessions); the
models are small and timed for a few iterations at 64 px, and no test asserts a
latency. The cluster starts once for the module and listens on 127.0.0.1 only.
"""
import os
import threading
import time
from pathlib import Path

# Ray rewrites a loopback cluster address to the machine's routable IP unless told
# not to; this must be set before ray is imported (bench.fleet does the same for
# the command line when ray is not imported yet).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import pytest  # noqa: E402

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

from ray.cluster_utils import Cluster  # noqa: E402

from modbench import fleet  # noqa: E402
from modbench.cli import main  # noqa: E402
from modbench.store import COLUMNS, ResultsWriter, read_samples, read_results, run_config_path  # noqa: E402

FAST = ["--resolution", "64", "--iters", "10", "--warmup", "2", "--block", "5", "--block-warmup", "1",
        "--threads", "1", "--interleave", "1"]
MODELS = ["mobilenetv2_100", "efficientmod_xxs"]
LOCAL = dict(num_cpus=1, node_ip_address="127.0.0.1")


@pytest.fixture(scope="module")
def cluster():
    # Node death is noticed in about 3 s instead of Ray's default 30 s or so.
    head_args = dict(LOCAL, include_dashboard=False, resources={"bench_slot": 1, "cpu_a": 1},
                     _system_config={"health_check_initial_delay_ms": 0, "health_check_period_ms": 1000,
                                     "health_check_failure_threshold": 3})
    c = Cluster(initialize_head=True, head_node_args=head_args)
    try:
        c.node_b = c.add_node(**LOCAL, resources={"bench_slot": 1, "cpu_b": 1}, labels={"lab": "b"})
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()


@pytest.fixture
def short_grace(monkeypatch):
    monkeypatch.setattr(fleet, "GRACE_S", 4.0)


def _run(out, *extra, models=MODELS):
    return main(["run", *models, *FAST, "--out", str(out), *extra])


def _raylet(node):
    return psutil.Process(node.all_processes[ray._private.ray_constants.PROCESS_TYPE_RAYLET][0].process.pid)


def _lose(cluster, node):
    """The machine dies: its workers (children of its raylet, which Cluster does
    not track; left alone they would finish their task and report it) and then
    every Ray process of the node."""
    for worker in _raylet(node).children():
        worker.kill()
    cluster.remove_node(node, allow_graceful=False)


def _timing_on(node) -> list[str]:
    """The titles of the node's workers running a modbench group (Ray titles a busy
    worker after its task, 'ray::modbench:<model>'; warm-up tasks left out)."""
    titles = []
    for p in _raylet(node).children():
        try:
            titles.append(" ".join(p.cmdline()))
        except psutil.Error:  # a worker that ended meanwhile
            pass
    return [t for t in titles if "modbench" in t and "warm" not in t]


def _remove_when_busy(cluster, node):
    """Lose `node` once it is running a modbench task (a worker under its raylet
    busy with one): a node lost mid-job."""

    def watch():
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if _timing_on(node):
                _lose(cluster, node)
                return
            time.sleep(0.2)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def test_local_rows_say_local(tmp_path):
    out = tmp_path / "local.csv"
    assert _run(out, models=MODELS[:1]) == 0
    df = read_results(out)
    assert list(df.cluster) == ["local"]
    assert df.node[0] == f"-:{df.hostname[0]}"


@pytest.fixture(scope="module")
def on_both(cluster, tmp_path_factory):
    """A fleet run of two models on cpu_a (a custom resource) and on lab=b (a node
    label, cpu_b's node); (results file, stderr)."""
    import contextlib
    import io

    out = tmp_path_factory.mktemp("both") / "both.csv"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = _run(out, "--cluster", cluster.address, "--on", "cpu_a,lab=b")
    assert rc == 0, err.getvalue()
    return out, err.getvalue()


def test_jobs_land_on_the_nodes_asked(cluster, on_both):
    out, err = on_both
    df = read_results(out)
    assert list(df.columns) == COLUMNS
    # each job once per target, each on the node that offers it
    assert sorted(df.row_id) == sorted(f"{m}.{v}.ort-cpu.t1.b1.r64@{t}" for m, v in
                                       (("mobilenetv2_100", "default"), ("efficientmod_xxs", "repeat"))
                                       for t in ("cpu_a", "lab=b"))
    node_of = {"cpu_a": cluster.head_node.node_id, "lab=b": cluster.node_b.node_id}
    for r in df.itertuples():
        assert r.node.split(":")[0] == node_of[r.row_id.split("@")[1]]
        assert r.cluster == cluster.address
        assert read_samples(out, r.samples_file).size == 10
    # every node built the same artifacts with the same software as the driver
    assert "drift" not in err and "done on" in err
    assert run_config_path(out).exists()


def test_report_keeps_each_device_apart(on_both, tmp_path):
    # As if lab=b were another machine: its rows name another CPU and host.
    import csv
    import shutil

    from modbench.report.inputs import read_inputs

    src, _ = on_both
    two = tmp_path / src.name
    shutil.copytree(src.with_name(src.stem + ".samples"), tmp_path / (src.stem + ".samples"))
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    here = rows[0]["device_name"]
    for r in rows:
        if r["row_id"].endswith("@lab=b"):
            r.update(device_name="Other CPU 9000", cpu_name="Other CPU 9000", hostname="other",
                     node=r["node"].split(":")[0] + ":other")
    with open(two, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    inp = read_inputs([two])
    # One column per device (and per --on label), none merged.
    names = sorted(c.key[1] for c in inp.columns)
    assert len(names) == 2 and names[0].startswith(here) and names[1].startswith("Other CPU 9000"), names
    assert all(len(c.rows) == 2 for c in inp.columns)  # one row per model per device, none merged
    report = tmp_path / "report"
    assert main(["report", str(two), "--out", str(report)]) == 0
    assert (report / "plots" / "accuracy_vs_latency_by_device.png").stat().st_size > 0


def test_hardware_nobody_offers_is_refused_before_anything_runs(cluster, tmp_path, capsys):
    out = tmp_path / "gpu.csv"
    assert _run(out, "--cluster", cluster.address, "--on", "cpu_a,A100") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'A100'" in err
    # what the cluster has
    assert "resource cpu_a" in err and "resource cpu_b" in err and "label lab=b" in err
    assert _run(out, "--cluster", cluster.address, "--on", "lab=c") == 2
    assert "'lab=c'" in capsys.readouterr().err
    assert not out.exists() and not run_config_path(out).exists()


@pytest.mark.parametrize("argv, message", [
    (["--on", "cpu_a"], "give --cluster ADDRESS too"),
    (["--cluster", "nohost"], "--cluster takes HOST:PORT"),
    (["--cluster", "127.0.0.1:1"], "cannot reach a Ray cluster at 127.0.0.1:1"),
    (["--cluster", "127.0.0.1:1", "--on", "a,,b"], "--on takes labels"),
    (["--cluster", "127.0.0.1:1", "--on", "x/y=1,x_y=1"], "--on names a label twice"),
    (["--cluster", "127.0.0.1:1", "--runtime", "ort-cuda", "--device-id", "1"], "--device-id does not apply"),
])
def test_bad_fleet_input_is_one_line(tmp_path, capsys, argv, message):
    out = tmp_path / "bad.csv"
    assert _run(out, *argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_node_lost_mid_job_is_retried_on_another_matching_node(cluster, tmp_path):
    # A second node offering cpu_b; the two groups start on both, and one of them
    # loses its node while timing: Ray retries it on the node that is left.
    node_c = cluster.add_node(**LOCAL, resources={"bench_slot": 1, "cpu_b": 1})
    out = tmp_path / "retry.csv"
    watcher = _remove_when_busy(cluster, node_c)
    assert _run(out, "--cluster", cluster.address, "--on", "cpu_b") == 0
    watcher.join(timeout=5)
    assert node_c not in cluster.worker_nodes  # it really was removed mid-run
    df = read_results(out)  # complete rows, each once, samples present
    assert sorted(df.row_id) == sorted(["mobilenetv2_100.default.ort-cpu.t1.b1.r64",
                                        "efficientmod_xxs.repeat.ort-cpu.t1.b1.r64"])
    assert set(n.split(":")[0] for n in df.node) == {cluster.node_b.node_id}


def test_lost_target_is_reported_missing_and_resume_finishes(cluster, tmp_path, capsys, short_grace,
                                                              monkeypatch):
    # The only node with cpu_c is lost after the first group: that row is kept, the
    # other is reported missing (no hang), and --resume on a new cpu_c node finishes.
    node_c = cluster.add_node(**LOCAL, resources={"bench_slot": 1, "cpu_c": 1})
    out = tmp_path / "lost.csv"
    append = ResultsWriter.append

    def append_then_lose_the_node(self, row, samples):
        # The node is timing the second group when the first one's row is written
        # (a real write, then a real node loss, at a known point of the run).
        append(self, row, samples)
        if node_c in cluster.worker_nodes:
            _lose(cluster, node_c)

    monkeypatch.setattr(ResultsWriter, "append", append_then_lose_the_node)
    assert _run(out, "--cluster", cluster.address, "--on", "cpu_c") == 2
    monkeypatch.setattr(ResultsWriter, "append", append)
    err = capsys.readouterr().err.strip().splitlines()
    assert "1 of 2 rows missing" in err[-1] and f"--resume {out} --cluster" in err[-1]
    first = read_results(out)
    assert len(first) == 1

    # a resumed fleet run needs the cluster again
    assert main(["run", "--resume", str(out)]) == 2
    assert "is a fleet run on cpu_c" in capsys.readouterr().err
    node_c2 = cluster.add_node(**LOCAL, resources={"bench_slot": 1, "cpu_c": 1})
    assert main(["run", "--resume", str(out), "--cluster", cluster.address]) == 0
    df = read_results(out)
    assert sorted(df.row_id) == sorted(["mobilenetv2_100.default.ort-cpu.t1.b1.r64",
                                        "efficientmod_xxs.repeat.ort-cpu.t1.b1.r64"])
    assert df.row_id[0] == first.row_id[0]  # the kept row is untouched
    assert df.node[1].split(":")[0] == node_c2.node_id
    cluster.remove_node(node_c2)


@pytest.fixture
def node_with_pythonpath(cluster, tmp_path, monkeypatch):
    """Add a node whose processes see `tmp_path/site` first on their Python path
    (a node's environment is the one it was started with)."""
    site = tmp_path / "site"
    site.mkdir()
    added = []

    def add(resources):
        with monkeypatch.context() as m:
            m.setenv("PYTHONPATH", str(site))
            added.append(cluster.add_node(**LOCAL, resources=dict(resources, bench_slot=1)))
        return added[-1]

    yield site, add
    for node in added:
        if node in cluster.worker_nodes:
            cluster.remove_node(node)


@pytest.mark.parametrize("warm_up_wait", [20.0, 0.0])
def test_node_that_cannot_import_the_suite_is_one_line_not_a_hang(node_with_pythonpath, cluster, tmp_path,
                                                                  capsys, monkeypatch, warm_up_wait):
    # Found by the node's warm-up while the driver prepares: refused, nothing written.
    # With no wait for the warm-up, the node's group finds it: its rows are missing.
    monkeypatch.setattr(fleet, "WARM_UP_WAIT_S", warm_up_wait)
    site, add = node_with_pythonpath
    (site / "torch").mkdir()
    (site / "torch" / "__init__.py").write_text("raise ImportError('torch is broken on this node')\n")
    add({"cpu_d": 1})
    out = tmp_path / "broken.csv"
    assert _run(out, "--cluster", cluster.address, "--on", "cpu_d", models=MODELS[:1]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "cannot import the suite (ImportError: torch is broken on this node)" in err[-1]
    if warm_up_wait:
        assert err[-1].endswith("nothing was run")
        assert not out.exists()
    else:
        node_lines = [line for line in err if line.startswith("node ") and "cannot import the suite" in line]
        assert len(node_lines) == 1
        assert "1 of 1 rows missing" in err[-1]
        assert len(read_results(out)) == 0


def test_a_node_with_other_library_versions_is_shown_as_drift(node_with_pythonpath, cluster,
                                                              tmp_path, capsys):
    site, add = node_with_pythonpath
    # Another timm version as the node's metadata reports it (the package is the same).
    meta = site / "timm-0.0.1.dist-info"
    meta.mkdir()
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: timm\nVersion: 0.0.1\n")
    # ... and, as a GPU node would, an accelerator type (Ray's accelerator_type:<T> resource)
    add({"accelerator_type:FAKE9": 1})
    out = tmp_path / "drift.csv"
    assert _run(out, "--cluster", cluster.address, "--on", "FAKE9", models=MODELS[:1]) == 0
    drift = [line for line in capsys.readouterr().err.splitlines() if line.startswith("drift:")]
    assert len(drift) == 1 and "timm" in drift[0] and "0.0.1 there" in drift[0]
    assert read_results(out).timm_version[0] == "0.0.1"  # the row says what the node ran


def test_ctrl_c_stops_remote_work_and_keeps_finished_rows(cluster, tmp_path):
    import signal
    import subprocess
    import sys

    out = tmp_path / "interrupted.csv"
    # 4000 iterations: the groups after the first take many seconds, so a node that
    # goes idle right after Ctrl-C was stopped, not done.
    driver = subprocess.Popen(
        [sys.executable, "bench.py", "run", *MODELS, "mobilenetv2_140", *FAST, "--iters", "4000",
         "--out", str(out), "--cluster", cluster.address, "--on", "cpu_b"],
        cwd=str(fleet.__file__).rsplit("/bench/", 1)[0], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and driver.poll() is None:
        if out.exists() and len(out.read_text().splitlines()) >= 2 and _timing_on(cluster.node_b):
            break  # a finished row, and the next group timing on the node
        time.sleep(0.2)
    assert _timing_on(cluster.node_b), "the node was not timing the next group"
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=60)
    assert driver.returncode == 130, err
    assert "completed rows are kept" in err and f"--resume {out} --cluster" in err
    assert "Check failed" not in err  # Ray's task manager was not driven into a crash
    kept = read_results(out)
    assert 1 <= len(kept) < 3
    # nothing goes on timing on the node for a driver that is gone
    deadline = time.monotonic() + 8
    while _timing_on(cluster.node_b) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _timing_on(cluster.node_b)


def test_only_the_suite_code_is_shipped_to_the_nodes(tmp_path):
    """The nodes get the modbench package in its installed layout, one `modbench/`
    folder (a checkout's bench/, models/, exporters/, common/ mapped under it), and
    nothing else that lies in a checkout (a 256 MB wheel, results, an environment)."""
    staged = fleet.stage_code(tmp_path / "code")
    top = {p.name for p in staged.iterdir()}
    assert top == {"modbench"}
    files = {p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()}
    for want in ("modbench/fleet.py", "modbench/models/registry.py", "modbench/exporters/onnx.py",
                 "modbench/common/errors.py", "modbench/runners/ort_cpu.py", "modbench/models/paper_table1.tsv"):
        assert want in files, want
    assert not [f for f in files if "__pycache__" in f or f.endswith((".pyc", ".lock"))]
    assert {Path(f).suffix for f in files} <= {".py", ".tsv", ".txt"}
