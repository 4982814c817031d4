"""PyTorch eager on the CPU: the reference the exports are checked against, and
the number users get without any deployment runtime."""
from __future__ import annotations

import time

import numpy as np
import torch

from ..env import cpu_name
from .base import RunSettings, Runner, Session, random_input, register_runner, time_calls


class _ThreadsGuard:
    """torch's thread count is process-wide. The first open session remembers the
    caller's setting and the last one to close puts it back (sessions of a group are
    open together and close in any order)."""

    open_sessions = 0
    saved: int | None = None

    @classmethod
    def acquire(cls) -> None:
        if cls.open_sessions == 0:
            cls.saved = torch.get_num_threads()
        cls.open_sessions += 1

    @classmethod
    def release(cls) -> None:
        cls.open_sessions = max(0, cls.open_sessions - 1)
        if cls.open_sessions == 0 and cls.saved is not None:
            torch.set_num_threads(cls.saved)
            cls.saved = None


class TorchCpuSession(Session):
    def __init__(self, module, x, threads: int):
        self._module = module
        self._x = x
        self._threads = threads
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _ThreadsGuard.release()

    def _call(self):
        # The thread count is process-wide; another session may have changed it.
        torch.set_num_threads(self._threads)
        return torch.inference_mode()

    def first_run(self) -> float:
        with self._call():
            return float(time_calls(self._module, 1, self._x)[0])

    def run_block(self, n: int) -> np.ndarray:
        with self._call():
            return time_calls(self._module, n, self._x)

    def describe(self) -> dict:
        return {"provider": "eager", "device": "cpu",
                "device_name": cpu_name(), "threads": self._threads,
                "runtime_settings": {"mode": "eager", "inference_mode": True,
                                     "torch_version": torch.__version__}}


@register_runner("torch-cpu")
class TorchCpuRunner(Runner):
    artifact = "torch"
    device = "cpu"

    def open(self, artifact, input_shape, settings: RunSettings) -> Session:
        t0 = time.perf_counter_ns()
        module = artifact.eval()
        x = torch.from_numpy(random_input(input_shape))
        _ThreadsGuard.acquire()
        try:
            torch.set_num_threads(settings.threads)
            s = TorchCpuSession(module, x, torch.get_num_threads())
        except BaseException:
            _ThreadsGuard.release()
            raise
        s.load_ms = (time.perf_counter_ns() - t0) * 1e-6
        return s
