"""The runner interface. A Runner opens a Session on an artifact; the scheduler
only ever calls `first_run` and `run_block`, so every runtime is timed by the same
loop shape and lands in the same Measurement."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np


class RunnerUnavailable(RuntimeError):
    """This runner cannot run here (no GPU, wrong OS, missing package, fell back)."""


@dataclass(frozen=True)
class RunSettings:
    """Settings that change latency; every one of them is recorded in the row."""

    threads: int = 4
    # ONNX Runtime: let intra-op workers spin between runs (its default).
    spinning: bool = True
    # Free-form options a specific runner understands (e.g. cudnn_conv_algo_search).
    options: dict = field(default_factory=dict)


class Session(ABC):
    """A loaded model ready to time. `load_ms` is set by `Runner.open`."""

    load_ms: float = float("nan")

    @abstractmethod
    def first_run(self) -> float:
        """Run once (the first inference after loading) and return its milliseconds."""

    @abstractmethod
    def run_block(self, n: int) -> np.ndarray:
        """Run n timed inferences back to back; per-iteration milliseconds."""

    @abstractmethod
    def describe(self) -> dict:
        """Row columns: runtime, provider, device, device_name, threads, runtime_settings."""

    def close(self) -> None:
        pass


class Runner(ABC):
    name: str           # the --runtime value, e.g. "ort-cpu"
    artifact: str       # what it loads: "onnx" file or "torch" module
    device: str         # "cpu", "cuda", ...

    def check_available(self) -> None:
        """Raise RunnerUnavailable with one clear line if this runner cannot run here."""

    @abstractmethod
    def open(self, artifact, input_shape: tuple[int, ...], settings: RunSettings) -> Session:
        """Load `artifact` and return a Session with `load_ms` set."""


def random_input(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
