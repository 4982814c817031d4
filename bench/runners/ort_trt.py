"""ONNX Runtime, TensorRT execution provider (fp32 or fp16), with IOBinding.

The same session and timing loop as ort-cuda; the CUDA provider stays behind
TensorRT for any node TensorRT does not take. Building the TensorRT engine is the
expensive part of opening: it is recorded apart as engine_build_ms and the
on-disk engine cache is off, so that number is a real build every time.
"""
from __future__ import annotations

from .base import register_runner
from .ort_cuda import OrtCudaRunner


@register_runner("ort-trt")
class OrtTrtRunner(OrtCudaRunner):
    provider = "TensorrtExecutionProvider"
    supported_options = {"precision": ("fp32", "fp16"), "cudnn_algo_search": OrtCudaRunner.supported_options[
        "cudnn_algo_search"], "cuda_graphs": (False, True), "end_to_end": (False, True), "device_id": int}

    def trt_options(self, options: dict) -> dict:
        return {"device_id": str(options.get("device_id", 0)),
                "trt_fp16_enable": "1" if self.precision(options) == "fp16" else "0",
                "trt_engine_cache_enable": "0",
                "trt_cuda_graph_enable": "1" if options.get("cuda_graphs") else "0"}

    def providers(self, options: dict) -> list:
        cuda = self.cuda_options(options)
        # Graph capture belongs to TensorRT here; the CUDA provider only runs leftovers.
        cuda["enable_cuda_graph"] = "0"
        return [(self.provider, self.trt_options(options)), ("CUDAExecutionProvider", cuda)]

    def open_extra(self, load_ms: float, options: dict) -> dict:
        # With static input shapes (the default export) TensorRT builds its engine
        # while the session is created; with a dynamic batch it builds on the first
        # run, which the row reports as first_run_ms.
        return {"engine_build_ms": load_ms,
                "engine_build_ms_includes": "session creation: ONNX parse, partitioning, "
                                            "TensorRT engine build (static shapes)",
                "trt_engine_cache": False}
