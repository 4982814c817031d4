"""ONNX Runtime, CUDA execution provider, with IOBinding.

Input and output are bound to buffers allocated once on the GPU, so a timed
iteration is the model alone: no host-device copy, no allocation. The optional
end-to-end mode puts the copies back in and reports them apart.
"""
from __future__ import annotations

import contextlib
import io
import re
import time
from functools import lru_cache

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

from modbench.common.errors import first_line

from ..gpu_env import ClockLog, gpu_columns, gpu_extra, ort_cuda_versions
from .base import RunSettings, Runner, RunnerUnavailable, Session, random_input, register_runner, time_calls
from .ort_cpu import cpu_session_options, end_ort_profiling

ALGO_SEARCH = ("EXHAUSTIVE", "HEURISTIC", "DEFAULT")
_NP_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16,
             "tensor(double)": np.float64, "tensor(int64)": np.int64, "tensor(int32)": np.int32}


@lru_cache(maxsize=1)
def load_cuda_libraries() -> None:
    """Make the CUDA runtime, cuBLAS and cuDNN libraries that torch ships
    loadable by ONNX Runtime's CUDA provider.

    The provider library finds them only through the dynamic loader. On a
    machine whose CUDA comes as pip packages (nvidia-*), importing torch loads
    them process-wide; `onnxruntime.preload_dlls()` would look next to the
    onnxruntime package instead, which misses them when onnxruntime-gpu is
    installed apart (`pip install --target`, tools/gpu_wheel.sh). If torch's
    CUDA major is not the one the onnxruntime-gpu build needs, the session
    still fails, and the refusal names the missing library."""
    with contextlib.suppress(Exception):  # no torch, or a torch that cannot load: ORT says why
        import torch  # noqa: F401  # seconds, and only to load CUDA libraries: on this path only


def quiet_session(model, opts, providers):
    """InferenceSession, with ORT's own fallback banner captured instead of printed.

    When a provider cannot be registered, the Python API prints an "EP Error"
    block and silently retries on CPU. The banner is kept to explain a refusal;
    the fallback itself is caught by checking `get_providers()`."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        sess = ort.InferenceSession(model, opts, providers=providers)
    return sess, _ep_error(buf.getvalue())


def _ep_error(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("EP Error"):
            # "EP Error <file>:<line> <C++ signature>) <the message>"
            m = re.search(r"\) ([A-Z].*)$", line)
            return (m.group(1) if m else line)[:300]
    return ""


@lru_cache(maxsize=4)
def probe(provider: str, device_id: int = 0) -> str | None:
    """Why `provider` cannot run a session here, or None if it can.

    `get_available_providers()` lists CUDA and TensorRT for every onnxruntime-gpu
    wheel, GPU or not; only creating a session shows whether the provider loads.
    A one-node model makes that cheap. ORT logs its own error when the provider
    fails and then falls back to CPU; that log is silenced here because the
    refusal says it in one line."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    ort.set_default_logger_severity(4)
    load_cuda_libraries()
    try:
        sess, ep_error = quiet_session(model.SerializeToString(), opts,
                                       [(provider, {"device_id": str(device_id)})])
    except Exception as exc:  # ORT raises its own pybind exception types
        return f"creating a session failed: {first_line(exc)}"
    finally:
        ort.set_default_logger_severity(2)  # ORT's default (warning)
    got = sess.get_providers()
    if got[0] != provider:
        return f"the session fell back to {got[0]}" + (f" ({ep_error})" if ep_error else "")
    return None


def output_buffers_shape(sess, input_shape: tuple[int, ...]) -> list[tuple[int, ...] | None]:
    """Concrete shape of each output, resolving symbolic dims shared with the input.

    A dynamic-batch export names its batch dim in input and output alike; its
    size is the batch the session is opened for. An output dim no input names
    cannot be known before a run: None."""
    sym = {}
    for d, n in zip(sess.get_inputs()[0].shape, input_shape):
        if not isinstance(d, int):
            sym[d] = n
    shapes = []
    for o in sess.get_outputs():
        dims = [d if isinstance(d, int) else sym.get(d) for d in o.shape]
        shapes.append(tuple(dims) if all(isinstance(d, int) for d in dims) else None)
    return shapes


class OrtCudaSession(Session):
    def __init__(self, sess, input_name: str, x: np.ndarray, input_shape, device_id: int,
                 end_to_end: bool, cuda_graphs: bool, describe: dict, extra: dict,
                 device_type: str = "cuda"):
        """`device_type` is where the bound buffers live: "cuda" for every
        measurement; the binding logic itself is device-agnostic, which lets the
        tests run it on a CPU-only machine."""
        self._sess = sess
        self._x_host = x
        self._describe = describe
        self._extra = dict(extra)
        self._end_to_end = end_to_end
        self._clocks = ClockLog(device_id)
        self._device_id = device_id
        self._copies: dict[str, list[np.ndarray]] = {"h2d_ms": [], "compute_ms": [], "d2h_ms": []}
        self._io = sess.io_binding()
        self._x_dev = ort.OrtValue.ortvalue_from_numpy(x, device_type, device_id)
        self._io.bind_ortvalue_input(input_name, self._x_dev)
        # Outputs pre-allocated once: a CUDA graph replays fixed addresses, and a
        # per-run allocation would otherwise be timed.
        self._outs = []
        for o, shape in zip(sess.get_outputs(), output_buffers_shape(sess, input_shape)):
            if shape is None:
                if cuda_graphs:
                    raise RunnerUnavailable(f"CUDA graphs need a fixed output buffer; output {o.name} "
                                            "has a shape unknown before running")
                self._io.bind_output(o.name, device_type, device_id)
                continue
            buf = ort.OrtValue.ortvalue_from_shape_and_type(shape, _NP_TYPES.get(o.type, np.float32),
                                                            device_type, device_id)
            self._io.bind_ortvalue_output(o.name, buf)
            self._outs.append(buf)
        self._ro = ort.RunOptions()
        # ORT synchronizes the device at the end of Run unless told not to; the
        # host clock then brackets the GPU work. Set explicitly so it never
        # depends on a default.
        self._ro.add_run_config_entry("disable_synchronize_execution_providers", "0")

    def _once(self) -> None:
        self._sess.run_with_iobinding(self._io, self._ro)
        self._io.synchronize_outputs()

    def first_run(self) -> float:
        # The first run carries cuDNN's algorithm search (EXHAUSTIVE) and, with
        # CUDA graphs, the capture; it is reported apart, never a sample.
        return float(time_calls(self._once, 1)[0])

    def run_block(self, n: int) -> np.ndarray:
        out = self._run_end_to_end(n) if self._end_to_end else self._run_compute(n)
        self._clocks.sample()  # outside the timed loop, while the clocks are still up
        return out

    def _run_compute(self, n: int) -> np.ndarray:
        return time_calls(self._once, n)

    def _run_end_to_end(self, n: int) -> np.ndarray:
        run, io, ro = self._sess.run_with_iobinding, self._io, self._ro
        x_dev, x_host, clock = self._x_dev, self._x_host, time.perf_counter_ns
        t = np.empty((n, 4), dtype=np.int64)
        for i in range(n):
            t[i, 0] = clock()
            # Copies into the bound buffer: its address stays fixed (CUDA graphs).
            x_dev.update_inplace(x_host)
            io.synchronize_inputs()
            t[i, 1] = clock()
            run(io, ro)
            io.synchronize_outputs()
            t[i, 2] = clock()
            io.copy_outputs_to_cpu()
            t[i, 3] = clock()
        d = np.diff(t, axis=1) * 1e-6
        for k, col in zip(("h2d_ms", "compute_ms", "d2h_ms"), d.T):
            self._copies[k].append(col)
        return (t[:, 3] - t[:, 0]) * 1e-6

    def describe(self) -> dict:
        return {**self._describe, **gpu_columns(self._device_id, ort_cuda_versions(), self._clocks)}

    def extra(self) -> dict:
        out = {**self._extra, **gpu_extra(self._device_id, self._clocks)}
        if self._end_to_end and self._copies["h2d_ms"]:
            for k, parts in self._copies.items():
                v = np.concatenate(parts)
                out[f"{k[:-3]}_median_ms"] = float(np.median(v))
                out[f"{k[:-3]}_mean_ms"] = float(np.mean(v))
        return out

    def end_profiling(self) -> str | None:
        return end_ort_profiling(self._sess)

    def close(self) -> None:
        self._io = self._x_dev = self._outs = self._sess = None


@register_runner("ort-cuda")
class OrtCudaRunner(Runner):
    artifact = "onnx"
    device = "cuda"
    provider = "CUDAExecutionProvider"
    supported_options = {"precision": ("fp32",), "cudnn_algo_search": ALGO_SEARCH,
                         "cuda_graphs": (False, True), "end_to_end": (False, True), "device_id": int}

    def check_available(self) -> None:
        if self.provider not in ort.get_available_providers():
            raise RunnerUnavailable(f"{self.name}: this ONNX Runtime ({ort.__version__}) has no "
                                    f"{self.provider}; install onnxruntime-gpu")
        why = probe(self.provider)
        if why:
            raise RunnerUnavailable(f"{self.name} needs a working {self.provider} (a CUDA GPU), "
                                    f"and here {why}")

    # -- what differs between CUDA and TensorRT ------------------------------------
    def precision(self, options: dict) -> str:
        return options.get("precision", "fp32")

    def cuda_options(self, options: dict) -> dict:
        return {"device_id": str(options.get("device_id", 0)),
                "cudnn_conv_algo_search": options.get("cudnn_algo_search", "EXHAUSTIVE"),
                # Lets cuDNN pick its fastest algorithms, which may need more workspace.
                "cudnn_conv_use_max_workspace": "1",
                "do_copy_in_default_stream": "1",
                "enable_cuda_graph": "1" if options.get("cuda_graphs") else "0"}

    def providers(self, options: dict) -> list:
        return [(self.provider, self.cuda_options(options))]

    def open_extra(self, load_ms: float, options: dict) -> dict:
        return {}

    # ------------------------------------------------------------------------------
    def open(self, artifact, input_shape, settings: RunSettings) -> Session:
        options = settings.options
        device_id = int(options.get("device_id", 0))
        opts = cpu_session_options(settings)
        load_cuda_libraries()  # once, and not inside the session's load time
        t0 = time.perf_counter_ns()
        try:
            sess, ep_error = quiet_session(str(artifact.path), opts, self.providers(options))
        except Exception as exc:  # ORT raises its own pybind exception types
            raise RunnerUnavailable(f"{self.name}: ONNX Runtime could not create the session: "
                                    f"{first_line(exc)}") from None
        load_ms = (time.perf_counter_ns() - t0) * 1e-6
        got = sess.get_providers()
        if got[0] != self.provider:
            # A CPU session must never be reported as a GPU number.
            raise RunnerUnavailable(f"{self.name}: the session fell back to {got[0]}"
                                    + (f" ({ep_error})" if ep_error else "")
                                    + f"; refusing to time it as {self.provider}")
        effective = sess.get_provider_options()
        describe = {
            "provider": self.provider, "device": "cuda",
            "threads": opts.intra_op_num_threads, "precision": self.precision(options),
            "runtime_settings": {
                "io_binding": True,
                "timed": "end_to_end" if options.get("end_to_end") else "compute",
                "graph_optimization": "all", "ort_version": ort.__version__,
                "providers": got,
                # What ORT actually applied (use_tf32, algo search, graphs ...), not what was asked.
                "provider_options": {p: effective.get(p, {}) for p in got if p != "CPUExecutionProvider"},
            },
        }
        s = OrtCudaSession(sess, artifact.input_name, random_input(input_shape, dtype=getattr(artifact, "input_dtype", "float32")), input_shape,
                           device_id, bool(options.get("end_to_end")), bool(options.get("cuda_graphs")),
                           describe, self.open_extra(load_ms, options))
        s.load_ms = load_ms
        return s
