"""GPU runners: what can be checked without a GPU (refusals, fallback detection,
option validation, the IOBinding loop on CPU buffers, environment capture), and
the real measurements, marked `gpu`, that skip where no GPU is usable."""
from __future__ import annotations

import json

import numpy as np
import pytest

from modbench.cli import main
from modbench.gpu_env import GPU_COLUMNS, ClockLog, _cudnn_text, gpu_columns
from modbench.pipeline import RunRequest
from modbench.store import COLUMNS, read_results
from modbench.runners import RUNNERS, RunnerUnavailable, RunSettings, get_runner
from modbench.runners.ort_cuda import OrtCudaSession, output_buffers_shape, probe
from modbench.exporters.base import ExportedModel

GPU_RUNNERS = ("ort-cuda", "ort-trt", "torch-cuda", "torch-compile-cuda")


def _torch_cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def _ort_cuda() -> bool:
    return probe("CUDAExecutionProvider") is None


def tiny_onnx(path, dynamic_batch: bool = False) -> ExportedModel:
    """Conv -> Relu -> GlobalAveragePool -> Flatten: a real ONNX file, small enough
    to open in milliseconds."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    batch = "batch" if dynamic_batch else 1
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("GlobalAveragePool", ["r"], ["g"]),
         helper.make_node("Flatten", ["g"], ["y"])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 8])], initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return ExportedModel(path, "onnx", "x", (1, 3, 16, 16))


# -- without a GPU ---------------------------------------------------------------

def test_gpu_runners_registered_with_gpu_device():
    for name in GPU_RUNNERS:
        r = get_runner(name)
        assert r.device == "cuda"
        assert r.artifact == ("onnx" if name.startswith("ort") else "torch")


@pytest.mark.parametrize("name", ["ort-cuda", "ort-trt"])
def test_ort_gpu_runner_refuses_in_one_line_without_provider(name):
    runner = get_runner(name)
    if probe(runner.provider) is None:
        pytest.skip(f"{runner.provider} works here")
    with pytest.raises(RunnerUnavailable) as info:
        runner.check_available()
    msg = str(info.value)
    # onnxruntime-gpu lists the provider and falls back; the CPU build has none to list
    assert "\n" not in msg and name in msg and ("fell back" in msg or "install onnxruntime-gpu" in msg)


@pytest.mark.parametrize("name", ["torch-cuda", "torch-compile-cuda"])
def test_torch_gpu_runner_refuses_in_one_line_without_cuda(name):
    if _torch_cuda():
        pytest.skip("CUDA is available here")
    with pytest.raises(RunnerUnavailable) as info:
        get_runner(name).check_available()
    msg = str(info.value)
    assert "\n" not in msg and "torch.cuda.is_available() is False" in msg


def test_ort_cuda_session_that_falls_back_to_cpu_is_refused(tmp_path):
    """Skipping check_available on purpose: open() itself must catch the fallback."""
    if _ort_cuda():
        pytest.skip("the CUDA provider works here; nothing falls back")
    art = tiny_onnx(tmp_path / "tiny.onnx")
    with pytest.raises(RunnerUnavailable, match="fell back to CPUExecutionProvider"):
        get_runner("ort-cuda").open(art, (1, 3, 16, 16), RunSettings(threads=1))


@pytest.mark.parametrize("name", GPU_RUNNERS)
def test_cli_refuses_gpu_runtime_without_gpu_exit_2(name, tmp_path, capsys):
    if (name.startswith("torch") and _torch_cuda()) or (name.startswith("ort") and probe(
            get_runner(name).provider) is None):
        pytest.skip("this runtime works here")
    out = tmp_path / "r.csv"
    assert main(["run", "efficientmod_xxs", "--runtime", name, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("modbench: error:")
    assert not out.exists()


@pytest.mark.parametrize("argv, needle", [
    (["--runtime", "ort-cpu", "--precision", "fp16"], "does not take --precision"),
    (["--runtime", "torch-cpu", "--cuda-graphs"], "does not take --cuda-graphs"),
    (["--runtime", "ort-cuda", "--precision", "fp16"], "takes --precision fp32, not fp16"),
    (["--runtime", "ort-trt", "--precision", "bf16"], "not bf16"),
    (["--runtime", "torch-cuda", "--end-to-end"], "does not take --end-to-end"),
    (["--runtime", "torch-cuda", "--compile-mode", "max-autotune"], "does not take --compile-mode"),
])
def test_cli_refuses_options_the_runner_does_not_take(argv, needle, tmp_path, capsys):
    assert main(["run", "efficientmod_xxs", *argv, "--out", str(tmp_path / "r.csv")]) == 2
    assert needle in capsys.readouterr().err


def test_run_request_options_default_and_round_trip():
    old = RunRequest(models=["m"]).to_json()
    del old["options"]  # a run.json written before options existed
    assert RunRequest.from_json(old).options == {}
    req = RunRequest(models=["m"], runtime="torch-cuda", options={"precision": "fp16", "cuda_graphs": True})
    assert RunRequest.from_json(json.loads(json.dumps(req.to_json()))).options == req.options


def test_every_runner_validates_its_own_options():
    for name, cls in RUNNERS.items():
        r = cls()
        r.check_options({})
        for key, allowed in r.supported_options.items():
            value = allowed[-1] if isinstance(allowed, tuple) else 0
            r.check_options({key: value})


def test_output_buffer_shapes_resolve_the_batch_dim(tmp_path):
    import onnxruntime as ort

    art = tiny_onnx(tmp_path / "dyn.onnx", dynamic_batch=True)
    sess = ort.InferenceSession(str(art.path), providers=["CPUExecutionProvider"])
    assert output_buffers_shape(sess, (4, 3, 16, 16)) == [(4, 8)]


@pytest.mark.parametrize("end_to_end", [False, True])
def test_iobinding_loop_on_cpu_buffers(tmp_path, end_to_end):
    """The IOBinding session on CPU-resident buffers: output matches a plain run,
    samples are positive, and end-to-end splits the time into its three parts."""
    import onnxruntime as ort

    art = tiny_onnx(tmp_path / "t.onnx", dynamic_batch=True)
    sess = ort.InferenceSession(str(art.path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16), dtype=np.float32)
    s = OrtCudaSession(sess, "x", x, x.shape, 0, end_to_end, False,
                       {"runtime": "onnxruntime", "device": "cuda"}, {"k": 1}, device_type="cpu")
    assert s.first_run() > 0
    samples = s.run_block(20)
    assert samples.shape == (20,) and (samples > 0).all()
    np.testing.assert_allclose(s._outs[0].numpy(), sess.run(None, {"x": x})[0], rtol=1e-5)
    extra = s.extra()
    assert extra["k"] == 1
    if end_to_end:
        parts = sum(extra[f"{k}_median_ms"] for k in ("h2d", "compute", "d2h"))
        assert parts <= float(np.max(samples)) * 3  # the parts are pieces of each sample
        assert {"h2d_mean_ms", "compute_mean_ms", "d2h_mean_ms"} <= set(extra)
    else:
        assert "h2d_median_ms" not in extra
    assert set(s.describe()) <= set(COLUMNS)
    s.close()


def test_gpu_env_columns_are_schema_columns_even_without_nvml():
    cols = gpu_columns(0, {"cuda_version": "13.0", "cudnn_version": "9.24.0"}, ClockLog(0))
    assert set(GPU_COLUMNS) <= set(cols) <= set(COLUMNS)
    assert cols["cuda_version"] == "13.0"


def test_cudnn_version_text():
    assert _cudnn_text(92400) == "9.24.0"
    assert _cudnn_text(8902) == "8.9.2"
    assert _cudnn_text(None) == ""


# -- on a GPU --------------------------------------------------------------------

def _run(tmp_path, runtime: str, *extra_args: str):
    out = tmp_path / f"{runtime}.csv"
    rc = main(["run", "efficientmod_xxs", "--runtime", runtime, "--iters", "100", "--warmup", "10",
               "--block", "25", "--out", str(out), *extra_args])
    assert rc == 0
    return read_results(out).iloc[0]


def _assert_gpu_row(row, provider: str):
    assert row["device"] == "cuda" and row["provider"] == provider
    assert row["gpu_driver"] and row["device_name"] and str(row["cuda_version"])
    assert row["iters"] == 100 and row["min_ms"] <= row["median_ms"] <= row["max_ms"]


gpu_ort = pytest.mark.skipif("not _ort_cuda()", reason="ONNX Runtime CUDA provider cannot create a session here")
gpu_torch = pytest.mark.skipif("not _torch_cuda()", reason="torch.cuda.is_available() is False")


@pytest.mark.gpu
@gpu_ort
def test_ort_cuda_row(tmp_path):
    row = _run(tmp_path, "ort-cuda")
    _assert_gpu_row(row, "CUDAExecutionProvider")
    settings = json.loads(row["runtime_settings"])
    assert settings["io_binding"] and settings["timed"] == "compute"
    assert settings["provider_options"]["CUDAExecutionProvider"]["cudnn_conv_algo_search"] == "EXHAUSTIVE"


@pytest.mark.gpu
@gpu_ort
def test_ort_cuda_end_to_end_reports_copies_apart(tmp_path):
    row = _run(tmp_path, "ort-cuda", "--end-to-end", "--cudnn-algo-search", "HEURISTIC")
    extra = json.loads(row["extra"])
    # Each part of an end-to-end iteration is shorter than the whole.
    for part in ("h2d", "d2h", "compute"):
        assert extra[f"{part}_median_ms"] < row["median_ms"]


@pytest.mark.gpu
@gpu_ort
def test_ort_cuda_graphs(tmp_path):
    row = _run(tmp_path, "ort-cuda", "--cuda-graphs")
    opts = json.loads(row["runtime_settings"])["provider_options"]["CUDAExecutionProvider"]
    assert opts["enable_cuda_graph"] == "1"


@pytest.mark.gpu
@pytest.mark.skipif("probe('TensorrtExecutionProvider') is not None",
                    reason="TensorRT provider cannot create a session here")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_ort_trt_row_records_engine_build(tmp_path, precision):
    row = _run(tmp_path, "ort-trt", "--precision", precision)
    _assert_gpu_row(row, "TensorrtExecutionProvider")
    assert row["precision"] == precision
    build_ms = json.loads(row["extra"])["engine_build_ms"]
    # The engine is built while the session is created, so the row's load time is that
    # build; building times each layer's candidate kernels, longer than one inference.
    assert build_ms == pytest.approx(row["load_ms"], abs=1e-3)
    assert build_ms > row["median_ms"]


@pytest.mark.gpu
@gpu_torch
@pytest.mark.parametrize("args, precision", [((), "fp32"), (("--precision", "fp16"), "fp16"),
                                             (("--cuda-graphs",), "fp32")])
def test_torch_cuda_row(tmp_path, args, precision):
    row = _run(tmp_path, "torch-cuda", *args)
    _assert_gpu_row(row, "eager")
    assert row["precision"] == precision
    extra = json.loads(row["extra"])
    # Events sit inside the host bracket of the same iterations.
    assert row["median_ms"] <= extra["host_wall_median_ms"] * 1.001
    if "--cuda-graphs" in args:
        # The capture runs the module eagerly three times before recording it: longer
        # than one replay of the recorded graph, which is what each iteration times.
        assert extra["graph_capture_ms"] > row["median_ms"]


@pytest.mark.gpu
@pytest.mark.slow
@gpu_torch
def test_torch_compile_cuda_records_compile_time(tmp_path):
    row = _run(tmp_path, "torch-compile-cuda")
    _assert_gpu_row(row, "compile")
    # compile_ms holds tracing, code generation and a first run of the compiled code:
    # longer than any one timed run of that code.
    assert json.loads(row["extra"])["compile_ms"] > row["max_ms"]


@pytest.mark.gpu
@gpu_ort
def test_ort_cuda_matches_cpu_output(tmp_path):
    import onnxruntime as ort

    art = tiny_onnx(tmp_path / "t.onnx")
    s = get_runner("ort-cuda").open(art, (1, 3, 16, 16), RunSettings(threads=1))
    s.first_run()
    x = s._x_host
    ref = ort.InferenceSession(str(art.path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(s._outs[0].numpy(), ref, rtol=1e-3, atol=1e-4)
    s.close()


@pytest.mark.gpu
@gpu_ort
def test_batch_and_resolution_sweep_rows(tmp_path):
    out = tmp_path / "sweep.csv"
    assert main(["run", "efficientmod_xxs", "--runtime", "ort-cuda", "--batch", "1,2",
                 "--resolution", "224,256", "--iters", "50", "--warmup", "5", 
                 "--out", str(out)]) == 0
    df = read_results(out)
    assert sorted(zip(df["batch"], df["resolution"])) == [(1, 224), (1, 256), (2, 224), (2, 256)]


def test_gpu_command_lists_each_gpu_runtime(capsys):
    assert main(["gpu", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["runtimes"]) == set(GPU_RUNNERS)
    for name, status in report["runtimes"].items():
        assert status == "available" or status.startswith("unavailable: ")
