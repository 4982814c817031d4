"""Core ML through coremltools, on macOS: one runner per compute-unit setting.

Core ML itself runs only on Apple's operating systems; coremltools on Linux can
convert and read models but not load them for prediction, so these runners refuse
there with one line. Times are the wall clock around `MLModel.predict`, which
includes coremltools' Python-side conversion of the input dictionary: on the same
model that overhead is the same for every compute unit setting."""
from __future__ import annotations

import platform
import subprocess
import time

import numpy as np
from modbench.common.invocation import command

from .base import RunSettings, Runner, RunnerUnavailable, Session, random_input, register_runner, time_calls


def apple_chip() -> str:
    try:
        out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                             text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return out or platform.machine()


class CoreMLSession(Session):
    def __init__(self, model, input_name: str, x: np.ndarray, describe: dict):
        self._model = model
        self._feed = {input_name: x}
        self._describe = describe

    def first_run(self) -> float:
        return float(time_calls(self._model.predict, 1, self._feed)[0])

    def run_block(self, n: int) -> np.ndarray:
        return time_calls(self._model.predict, n, self._feed)

    def describe(self) -> dict:
        return dict(self._describe)

    def close(self) -> None:
        self._model = None


class _CoreMLRunner(Runner):
    artifact = "coreml"
    compute_units: str

    def check_available(self) -> None:
        if platform.system() != "Darwin":
            raise RunnerUnavailable(
                f"the {self.name} runner needs macOS: coremltools cannot run Core ML models on "
                f"{platform.system()}; export with `{command()} export --format coreml` and time it on a Mac, "
                f"or on an iPhone with ModelBench and `{command()} ingest-modelbench`")
        try:
            import coremltools  # noqa: F401  # optional (macOS only), slow to import
        except ImportError as exc:
            raise RunnerUnavailable(f"coremltools is not installed: {exc}") from None

    def open(self, artifact, input_shape, settings: RunSettings) -> Session:
        import coremltools as ct  # optional (macOS only), slow to import

        self.check_available()
        meta = getattr(artifact, "meta", {})
        if meta.get("image_input"):
            raise RunnerUnavailable("this runner feeds tensors; export without --modelbench to time here")
        t0 = time.perf_counter_ns()
        model = ct.models.MLModel(str(artifact.path),
                                  compute_units=getattr(ct.ComputeUnit, self.compute_units))
        load_ms = (time.perf_counter_ns() - t0) * 1e-6
        s = CoreMLSession(model, artifact.input_name, random_input(input_shape), {
            "provider": self.compute_units, "device": self.device,
            "device_name": apple_chip(), "precision": meta.get("precision", "fp16"),
            # Core ML picks its own threads; 0 says the count was not ours to set.
            "threads": 0,
            "runtime_settings": {"compute_units": self.compute_units, "target": meta.get("target"),
                                 "coremltools_version": ct.__version__,
                                 "macos": platform.mac_ver()[0]},
        })
        s.load_ms = load_ms
        return s


@register_runner("coreml-cpu")
class CoreMLCpuRunner(_CoreMLRunner):
    device = "mac"
    compute_units = "CPU_ONLY"


@register_runner("coreml-gpu")
class CoreMLGpuRunner(_CoreMLRunner):
    device = "mac"
    compute_units = "CPU_AND_GPU"


@register_runner("coreml-all")
class CoreMLAllRunner(_CoreMLRunner):
    device = "mac"
    compute_units = "ALL"
