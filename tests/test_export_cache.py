"""Issue 10: the export cache under damage and concurrency, with real ONNX exports.

- an entry is used only for the request it was made for (a swapped entry whose hash
  matches its bytes is rebuilt, never timed);
- a failed export leaves nothing in the scratch folder; what killed processes left is
  swept;
- two processes exporting the same key both succeed and leave one entry."""
import json
import multiprocessing as mp
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from modbench.exporters import ExportError, ExportRequest, OnnxExporter
from modbench.exporters.cache import ExportCache, _host
from modbench.common.fsio import sha256_file


class Tiny(nn.Module):
    """A tiny real network; `classes` changes the graph (and its output shape)."""

    def __init__(self, classes: int):
        super().__init__()
        torch.manual_seed(classes)
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.head = nn.Linear(8, classes)

    def forward(self, x):
        return self.head(self.conv(x).mean((2, 3)))


class Broken(nn.Module):
    """Fails half-way through tracing, like a model with an unsupported op."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        y = self.conv(x)
        raise RuntimeError("this layer cannot be exported")


def request(model: str, classes: int = 0) -> ExportRequest:
    return ExportRequest(model, "default", 64, 1, f"test-source-{model}-{classes}")


def ort_output_shape(path: Path) -> tuple:
    import onnxruntime as ort
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: np.zeros((1, 3, 64, 64), np.float32)})[0].shape


def test_a_swapped_entry_is_rebuilt_never_used(tmp_path):
    cache = ExportCache(tmp_path / "cache")
    ex = OnnxExporter(cache=cache)
    a = ex.export(Tiny(10), request("tiny_a"))
    b = ex.export(Tiny(7), request("tiny_b"))
    assert not a.meta["cache_hit"] and ex.export(Tiny(10), request("tiny_a")).meta["cache_hit"]
    # B's graph and B's sidecar copied over A's files: the hash matches the bytes.
    shutil.copy(b.path, a.path)
    shutil.copy(b.path.with_suffix(".json"), a.path.with_suffix(".json"))
    assert sha256_file(a.path) == json.loads(a.path.with_suffix(".json").read_text())["sha256"]

    again = ex.export(Tiny(10), request("tiny_a"))
    assert not again.meta["cache_hit"]  # rebuilt, not served
    assert again.meta["model"] == "tiny_a" and again.meta["key_fields"]["model"] == "tiny_a"
    assert ort_output_shape(again.path) == (1, 10)  # A's graph, not B's (1, 7)
    assert ex.export(Tiny(10), request("tiny_a")).meta["cache_hit"]


def test_an_entry_from_before_key_fields_is_rebuilt(tmp_path):
    cache = ExportCache(tmp_path / "cache")
    ex = OnnxExporter(cache=cache)
    a = ex.export(Tiny(10), request("tiny_a"))
    side = a.path.with_suffix(".json")
    meta = json.loads(side.read_text())
    del meta["key_fields"]
    side.write_text(json.dumps(meta))
    assert not ex.export(Tiny(10), request("tiny_a")).meta["cache_hit"]


def test_a_failed_export_leaves_no_scratch(tmp_path):
    cache = ExportCache(tmp_path / "cache")
    with pytest.raises(ExportError, match="cannot be exported"):
        OnnxExporter(cache=cache).export(Broken(), request("broken"))
    assert list((tmp_path / "cache" / "onnx" / "tmp").iterdir()) == []
    assert list((tmp_path / "cache" / "onnx").glob("*.onnx")) == []


def test_a_parity_failure_leaves_no_scratch(tmp_path):
    cache = ExportCache(tmp_path / "cache")
    ex = OnnxExporter(cache=cache, parity_tol=-1.0)  # nothing passes: the gate refuses the export
    with pytest.raises(ExportError, match="diverges"):
        ex.export(Tiny(10), request("tiny_a"))
    assert list((tmp_path / "cache" / "onnx" / "tmp").iterdir()) == []
    assert list((tmp_path / "cache" / "onnx").glob("*.onnx")) == []


def _dead_pid() -> int:
    p = mp.get_context("spawn").Process(target=time.sleep, args=(0,))
    p.start()
    p.join()
    return p.pid


def test_scratch_of_dead_processes_is_swept_on_open(tmp_path):
    root = tmp_path / "cache"
    tmp = root / "onnx" / "tmp"
    tmp.mkdir(parents=True)
    dead = tmp / f"{_host()}.{_dead_pid()}.abc"
    live = tmp / f"{_host()}.{os.getpid()}.def"
    old_unknown = tmp / "tmpx1y2z3"  # an old-style name: judged by age
    new_unknown = tmp / "tmpa1b2c3"
    for d in (dead, live, old_unknown, new_unknown):
        d.mkdir()
        (d / "model.onnx").write_bytes(b"\0" * 1024)
    two_hours_ago = time.time() - 7200
    os.utime(old_unknown, (two_hours_ago, two_hours_ago))
    ExportCache(root).open()
    assert sorted(p.name for p in tmp.iterdir()) == sorted([live.name, new_unknown.name])


def _export_in_child(root: str, q) -> None:
    from modbench.exporters import OnnxExporter
    from modbench.exporters.cache import ExportCache
    try:
        art = OnnxExporter(cache=ExportCache(Path(root))).export(Tiny(10), request("tiny_a"))
        q.put(("ok", str(art.path), art.meta["sha256"], art.meta["cache_hit"]))
    except BaseException as exc:  # report it to the parent
        q.put(("error", repr(exc), None, None))


def test_two_processes_exporting_the_same_key(tmp_path):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    root = tmp_path / "cache"
    procs = [ctx.Process(target=_export_in_child, args=(str(root), q)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [q.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [r[0] for r in results] == ["ok", "ok"], results
    assert len({r[1] for r in results}) == 1 and len({r[2] for r in results}) == 1
    assert sorted(r[3] for r in results) == [False, True]  # one built, the other found it
    assert len(list((root / "onnx").glob("*.onnx"))) == 1
    assert list((root / "onnx" / "tmp").iterdir()) == []
    assert sha256_file(Path(results[0][1])) == results[0][2]


def _measure_in_child(cache_root: str, name: str, q) -> None:
    os.environ["MODBENCH_CACHE"] = cache_root
    try:
        from modbench.catalog import measured_complexity
        from modbench.models import get_entry
        q.put(("ok", name, measured_complexity(get_entry(name), resolution=64)))
    except BaseException as exc:
        q.put(("error", name, repr(exc)))


def test_two_processes_filling_the_complexity_catalog_keep_both(tmp_path):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    names = ["efficientmod_xxs", "mobilenetv2_100"]
    procs = [ctx.Process(target=_measure_in_child, args=(str(tmp_path), n, q)) for n in names]
    for p in procs:
        p.start()
    results = [q.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(r[0] == "ok" for r in results), results
    catalog = json.loads((tmp_path / "complexity.json").read_text())
    assert sorted(k.split("|")[0] for k in catalog) == names
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
