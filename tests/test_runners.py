import time

import numpy as np
import onnxruntime as ort
import pytest

from bench.runners import RunSettings, get_runner
from bench.schedule import TimingProtocol, time_sessions
from exporters import ExportCache, ExportRequest, OnnxExporter
from models import create_model, get_entry


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    e = get_entry("efficientmod_xxs")
    m = create_model("efficientmod_xxs")
    return OnnxExporter(cache=ExportCache(tmp_path_factory.mktemp("c"))).export(
        m, ExportRequest("efficientmod_xxs", "repeat", 224, 1, e.source_id))


def test_ort_cpu_session_times_real_runs(artifact):
    s = get_runner("ort-cpu").open(artifact, (1, 3, 224, 224), RunSettings(threads=2, spinning=False))
    d = s.describe()
    assert "runtime" not in d
    assert d["provider"] == "CPUExecutionProvider" and d["threads"] == 2 and d["device"] == "cpu"
    assert d["runtime_settings"]["spinning"] is False
    assert s.load_ms > 0 and s.first_run() > 0
    block = s.run_block(5)
    assert block.shape == (5,) and np.all(block > 0)


def test_round_robin_interleaves_and_counts(artifact):
    runner = get_runner("ort-cpu")
    sessions = [runner.open(artifact, (1, 3, 224, 224), RunSettings(threads=t)) for t in (1, 2)]
    seen = []
    ms = time_sessions(sessions, TimingProtocol(iters=12, auto=False, warmup=2, block=5, block_warmup=1),
                       progress=seen.append)
    assert [m.n for m in ms] == [12, 12]
    # First run, warm-up, timed, and each block's untimed settling (at least 1 each).
    assert all(len(m.settle) == 3 and min(m.settle) >= 1 for m in ms)
    assert sum(seen) == sum(1 + 2 + 12 + sum(m.settle) for m in ms)
    assert all(len(m.busy) == 3 for m in ms)
    assert all(m.first_run_ms > 0 and m.warmup == 2 for m in ms)


def test_torch_cpu_runner(artifact):
    m = create_model("efficientmod_xxs")
    s = get_runner("torch-cpu").open(m, (1, 3, 224, 224), RunSettings(threads=1))
    d = s.describe()
    assert d["threads"] == 1 and d["provider"] == "eager"
    # The row's runtime is the runner's registered name, written by the row builder.
    assert "runtime" not in d
    assert s.run_block(3).shape == (3,)


def test_harness_overhead_is_small(artifact):
    """The suite's loop against a bare session.run loop on the same session,
    interleaved in one process; generous bound, the benchmark script measures it."""
    s = get_runner("ort-cpu").open(artifact, (1, 3, 224, 224), RunSettings(threads=1))
    sess, feed = s._sess, s._feed
    suite, bare = [], []
    s.run_block(3)
    for _ in range(6):
        suite.append(np.median(s.run_block(5)))
        t = []
        for _ in range(5):
            t0 = time.perf_counter()
            sess.run(None, feed)
            t.append((time.perf_counter() - t0) * 1e3)
        bare.append(np.median(t))
    assert np.median(suite) / np.median(bare) < 1.5


def test_unknown_runtime():
    with pytest.raises(ValueError, match="unknown runtime 'tpu'"):
        get_runner("tpu")
    assert "CPUExecutionProvider" in ort.get_available_providers()
