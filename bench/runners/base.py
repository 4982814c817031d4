"""The runner interface. A Runner opens a Session on an artifact; the scheduler
only ever calls `first_run` and `run_block`, so every runtime is timed by the same
loop shape and lands in the same Measurement."""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from modbench.common.errors import ModbenchError
from modbench.common.registry import Registry
from modbench.models.byo import input_array

from ..vocab import device as vocab_device


class RunnerUnavailable(ModbenchError):
    """This runner cannot run here (no GPU, wrong OS, missing package, fell back)."""


class RunnerOptionError(ModbenchError):
    """An option or value a runner does not take (a ValueError, as before)."""


@dataclass(frozen=True)
class RunSettings:
    """Settings that change latency; every one of them is recorded in the row."""

    threads: int = 4
    # ONNX Runtime: let intra-op workers spin between runs (its default).
    spinning: bool = True
    # Free-form options a specific runner understands (e.g. cudnn_conv_algo_search).
    options: dict = field(default_factory=dict)
    # ONNX Runtime: record its own profiler's trace (enable_profiling) into files
    # starting with this path; `Session.end_profiling` names the file. Never set for
    # timed sessions: the profiler changes the timing.
    profile_prefix: str | None = None


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
        """Row columns: provider, device, device_name, threads, runtime_settings (and
        version columns). Not `runtime`: the row builder writes the runner's registered
        name (the --runtime word) from the job."""

    def extra(self) -> dict:
        """Timings and facts reported apart from the samples (row `extra` column),
        e.g. compile_ms, engine_build_ms, host-device copy times. Called after timing."""
        return {}

    def end_profiling(self) -> str | None:
        """Stop the runtime's own profiler and return its trace file: only for a
        session opened with RunSettings.profile_prefix by a runner that has one."""
        return None

    def close(self) -> None:
        pass


# Every concrete runner class, by its --runtime name: a runner module registers each
# class with @register_runner("name"); runners/__init__ imports the modules.
RUNNERS: Registry[type["Runner"]] = Registry("runtime", RunnerOptionError)


def register_runner(name: str):
    """Class decorator: register a concrete Runner as the runtime `name` (the --runtime
    word). Its device must be a word of the one vocabulary (bench/vocab.py)."""
    def decorate(cls: type["Runner"]) -> type["Runner"]:
        vocab_device(cls.device)
        RUNNERS.add(name, cls)
        cls.name = name
        return cls
    return decorate


class Runner(ABC):
    name: str           # the --runtime value, e.g. "ort-cpu"; set by @register_runner
    artifact: str       # what it loads: "onnx" file or "torch" module
    device: str         # "cpu", "cuda", ...
    # RunSettings.options this runner understands, with the values each accepts
    # (a tuple of choices, or a type). Anything else is refused before any work:
    # an option silently ignored would label a number with a setting it never had.
    supported_options: dict = {}

    def check_options(self, options: dict) -> None:
        """Raise RunnerOptionError (one line) for an option or value this runner does not take."""
        for key, value in options.items():
            allowed = self.supported_options.get(key)
            flag = "--" + key.replace("_", "-")
            if allowed is None:
                raise RunnerOptionError(f"runtime {self.name} does not take {flag}")
            if isinstance(allowed, tuple) and value not in allowed:
                raise RunnerOptionError(f"runtime {self.name} takes {flag} "
                                 f"{' or '.join(map(str, allowed))}, not {value}")
            if isinstance(allowed, type) and not isinstance(value, allowed):
                raise RunnerOptionError(f"runtime {self.name}: {flag} must be {allowed.__name__}, not {value!r}")

    def check_available(self) -> None:
        """Raise RunnerUnavailable with one clear line if this runner cannot run here."""

    @abstractmethod
    def open(self, artifact, input_shape: tuple[int, ...], settings: RunSettings) -> Session:
        """Load `artifact` and return a Session with `load_ms` set."""


def time_calls(fn, n: int, *args) -> np.ndarray:
    """Milliseconds of n back-to-back calls fn(*args), each timed on its own: only
    the call sits between the two clock reads, so every runner is timed alike."""
    clock = time.perf_counter_ns
    samples = np.empty(n, dtype=np.int64)
    for i in range(n):
        t0 = clock()
        fn(*args)
        samples[i] = clock() - t0
    return samples * 1e-6


def random_input(shape: tuple[int, ...], seed: int = 0, dtype: str = "float32") -> np.ndarray:
    """The timed input: seeded noise of the input's own element type (a user's ONNX
    file may take float16 or integers; see models.byo.ONNX_ELEMENT_TYPES)."""

    return input_array(shape, dtype, seed)
