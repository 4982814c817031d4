"""ONNX Runtime, CPU execution provider: the paper's CPU setting."""
from __future__ import annotations

import time

import numpy as np
import onnxruntime as ort

from ..env import cpu_name
from .base import RunSettings, Runner, RunnerUnavailable, Session, random_input, register_runner, time_calls


class OrtSession(Session):
    def __init__(self, sess, input_name: str, x: np.ndarray, describe: dict):
        self._sess = sess
        self._feed = {input_name: x}
        self._out = [o.name for o in sess.get_outputs()]
        self._describe = describe

    def first_run(self) -> float:
        return float(time_calls(self._sess.run, 1, self._out, self._feed)[0])

    def run_block(self, n: int) -> np.ndarray:
        return time_calls(self._sess.run, n, self._out, self._feed)

    def describe(self) -> dict:
        return dict(self._describe)

    def end_profiling(self) -> str | None:
        return end_ort_profiling(self._sess)

    def close(self) -> None:
        self._sess = None


def end_ort_profiling(sess) -> str | None:
    """The trace file of a session opened with profiling (None for one without)."""
    return sess.end_profiling() if sess.get_session_options().enable_profiling else None


def cpu_session_options(settings: RunSettings):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = settings.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if settings.spinning else "0")
    if settings.profile_prefix:
        opts.enable_profiling = True
        opts.profile_file_prefix = settings.profile_prefix
    return opts


@register_runner("ort-cpu")
class OrtCpuRunner(Runner):
    artifact = "onnx"
    device = "cpu"
    provider = "CPUExecutionProvider"

    def check_available(self) -> None:
        if self.provider not in ort.get_available_providers():
            raise RunnerUnavailable(f"ONNX Runtime here has no {self.provider}")

    def open(self, artifact, input_shape, settings: RunSettings) -> Session:
        opts = cpu_session_options(settings)
        t0 = time.perf_counter_ns()
        sess = ort.InferenceSession(str(artifact.path), opts, providers=[self.provider])
        load_ms = (time.perf_counter_ns() - t0) * 1e-6
        if sess.get_providers()[0] != self.provider:
            raise RunnerUnavailable(f"session fell back to {sess.get_providers()[0]}")
        s = OrtSession(sess, artifact.input_name, random_input(input_shape, dtype=getattr(artifact, "input_dtype", "float32")), {
            "provider": self.provider, "device": "cpu",
            "device_name": cpu_name(), "threads": opts.intra_op_num_threads,
            "runtime_settings": {"inter_op_threads": 1, "execution_mode": "sequential",
                                 "graph_optimization": "all", "spinning": settings.spinning,
                                 "ort_version": ort.__version__},
        })
        s.load_ms = load_ms
        return s
