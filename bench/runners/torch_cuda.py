"""PyTorch on a CUDA GPU: eager (optionally replayed as a CUDA graph) and torch.compile.

Each iteration is bracketed by CUDA events on the current stream and waited for
before the next starts, so a sample is one request's latency: launch overhead
included, no overlap with the previous iteration. The host wall clock of the
same iterations is kept as a cross-check in `extra`.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from modbench.common.errors import first_line

from ..gpu_env import ClockLog, gpu_columns, gpu_extra, torch_cuda_versions
from .base import RunSettings, Runner, RunnerUnavailable, Session, random_input, register_runner

PRECISIONS = ("fp32", "fp16", "bf16")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def _dtype(precision: str):
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


class TorchCudaSession(Session):
    def __init__(self, fn, x, device_index: int, describe: dict, extra: dict):
        self._fn = fn
        self._x = x
        self._device_index = device_index
        self._describe = describe
        self._extra = dict(extra)
        self._clocks = ClockLog(device_index)
        self._host_ms: list[np.ndarray] = []

    def first_run(self) -> float:
        return float(self._timed(1)[0])

    def run_block(self, n: int) -> np.ndarray:
        out = self._timed(n)
        self._clocks.sample()
        return out

    def _timed(self, n: int) -> np.ndarray:
        # Events made before the loop: creating them is not the model's time.
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        host = np.empty(n, dtype=np.int64)
        fn, x, clock = self._fn, self._x, time.perf_counter_ns
        with torch.inference_mode(), torch.cuda.device(self._device_index):
            torch.cuda.synchronize()
            for i in range(n):
                t0 = clock()
                starts[i].record()
                fn(x)
                ends[i].record()
                ends[i].synchronize()
                host[i] = clock() - t0
        self._host_ms.append(host * 1e-6)
        return np.array([s.elapsed_time(e) for s, e in zip(starts, ends)], dtype=np.float64)

    def describe(self) -> dict:
        return {**self._describe, **gpu_columns(self._device_index, torch_cuda_versions(), self._clocks)}

    def extra(self) -> dict:
        out = {**self._extra, **gpu_extra(self._device_index, self._clocks)}
        if len(self._host_ms) > 1:
            # The first entry is first_run; the rest are every block, warm-up
            # blocks included, so this median can only sit above the events'.
            host = np.concatenate(self._host_ms[1:])
            out["host_wall_median_ms"] = float(np.median(host))
        return out

    def close(self) -> None:
        self._fn = self._x = None


@register_runner("torch-cuda")
class TorchCudaRunner(Runner):
    artifact = "torch"
    device = "cuda"
    mode = "eager"
    supported_options = {"precision": PRECISIONS, "cudnn_algo_search": ("EXHAUSTIVE", "HEURISTIC", "DEFAULT"),
                         "cuda_graphs": (False, True), "device_id": int}

    def check_available(self) -> None:
        if not torch.cuda.is_available():
            raise RunnerUnavailable(
                f"{self.name} needs a CUDA GPU, and torch {torch.__version__} "
                f"(built for CUDA {torch.version.cuda or 'none'}) sees none: torch.cuda.is_available() is False")

    def check_device(self, options: dict) -> None:
        idx = int(options.get("device_id", 0))
        if idx >= torch.cuda.device_count():
            raise RunnerUnavailable(f"{self.name}: no CUDA device {idx} ({torch.cuda.device_count()} visible)")
        if options.get("precision") == "bf16" and not torch.cuda.is_bf16_supported():
            raise RunnerUnavailable(f"{self.name}: {torch.cuda.get_device_name(idx)} does not support bf16")

    def settings_record(self, options: dict) -> dict:
        return {"mode": self.mode, "inference_mode": True, "torch_version": torch.__version__,
                "timed_with": "cuda_events",
                "cudnn_benchmark": torch.backends.cudnn.benchmark,
                # TF32 changes fp32 convolution speed on Ampere and newer; record it.
                "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                "matmul_precision": torch.get_float32_matmul_precision(),
                "cuda_graphs": bool(options.get("cuda_graphs"))}

    def build(self, module, x, options: dict, extra: dict):
        """The callable to time; eager, or eager replayed as a CUDA graph."""
        if not options.get("cuda_graphs"):
            return module
        return _capture_graph(module, x, extra)

    def open(self, artifact, input_shape, settings: RunSettings) -> Session:
        options = settings.options
        self.check_device(options)
        idx = int(options.get("device_id", 0))
        precision = options.get("precision", "fp32")
        # EXHAUSTIVE maps onto cuDNN's benchmark mode: time every algorithm on the
        # first call of each shape. That first call is first_run / warm-up, never a sample.
        torch.backends.cudnn.benchmark = options.get("cudnn_algo_search", "EXHAUSTIVE") == "EXHAUSTIVE"
        t0 = time.perf_counter_ns()
        device = torch.device("cuda", idx)
        module = artifact.eval().to(device=device, dtype=_dtype(precision))
        x = torch.from_numpy(random_input(input_shape)).to(device=device, dtype=_dtype(precision))
        torch.cuda.synchronize(device)
        load_ms = (time.perf_counter_ns() - t0) * 1e-6
        extra: dict = {}
        fn = self.build(module, x, options, extra)
        describe = {"provider": self.mode, "device": "cuda",
                    "threads": torch.get_num_threads(), "precision": precision,
                    "runtime_settings": self.settings_record(options)}
        s = TorchCudaSession(fn, x, idx, describe, extra)
        s.load_ms = load_ms
        return s


def _capture_graph(module, x, extra: dict):
    t0 = time.perf_counter_ns()
    with torch.inference_mode():
        # Warm up on a side stream: cuDNN's algorithm search and lazy allocations
        # must happen before capture, and capture may not use the legacy stream.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                module(x)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            module(x)
    torch.cuda.synchronize()
    extra["graph_capture_ms"] = (time.perf_counter_ns() - t0) * 1e-6
    # The static input stays `x`; replay ignores its argument.
    return lambda _x: graph.replay()


@register_runner("torch-compile-cuda")
class TorchCompileCudaRunner(TorchCudaRunner):
    mode = "compile"
    supported_options = {**TorchCudaRunner.supported_options, "compile_mode": COMPILE_MODES}

    def compile_mode(self, options: dict) -> str:
        mode = options.get("compile_mode")
        if mode is None:
            # --cuda-graphs asks torch.compile for its own graph replay.
            return "reduce-overhead" if options.get("cuda_graphs") else "default"
        return mode

    def settings_record(self, options: dict) -> dict:
        rec = super().settings_record(options)
        mode = self.compile_mode(options)
        rec.update(compile_mode=mode, cuda_graphs=mode in ("reduce-overhead", "max-autotune"),
                   fullgraph=False, dynamic=False)
        return rec

    def build(self, module, x, options: dict, extra: dict):
        import torch._dynamo.config as dynamo_config  # the compiler: only torch.compile runs load it

        # Every job builds a new module of the same class; each one is a
        # recompile of the same code. Past the limit dynamo would quietly run
        # eager and the row would still say "compile", so raise the limit and
        # make hitting it an error.
        # Names moved between torch releases (cache_size_limit became recompile_limit).
        known = dynamo_config.get_config_copy()
        for names, floor in ((("recompile_limit", "cache_size_limit"), 256),
                             (("accumulated_recompile_limit", "accumulated_cache_size_limit"), 4096)):
            for key in names:
                if key in known:
                    setattr(dynamo_config, key, max(known[key], floor))
                    break
        if "fail_on_recompile_limit_hit" in known:
            dynamo_config.fail_on_recompile_limit_hit = True
        mode = self.compile_mode(options)
        compiled = torch.compile(module, mode=mode, dynamic=False)
        t0 = time.perf_counter_ns()
        try:
            with torch.inference_mode():
                compiled(x)
            torch.cuda.synchronize()
        except Exception as exc:
            raise RunnerUnavailable(f"{self.name}: torch.compile failed: {first_line(exc)}") from None
        # compile_ms: tracing, Inductor code generation, autotuning and the first
        # run of the compiled code; reported apart, never a sample.
        extra["compile_ms"] = (time.perf_counter_ns() - t0) * 1e-6
        extra["compile_mode"] = mode
        return compiled
