"""Runners, one module each, behind one interface (base.Runner), keyed by --runtime."""
from .base import RunnerOptionError, RunnerUnavailable, RunSettings, Runner, Session
from .coreml import CoreMLAllRunner, CoreMLCpuRunner, CoreMLGpuRunner
from .ort_cpu import OrtCpuRunner
from .ort_cuda import OrtCudaRunner
from .ort_trt import OrtTrtRunner
from .torch_cpu import TorchCpuRunner
from .torch_cuda import TorchCompileCudaRunner, TorchCudaRunner

RUNNERS: dict[str, type[Runner]] = {r.name: r for r in (
    OrtCpuRunner, TorchCpuRunner, OrtCudaRunner, OrtTrtRunner, TorchCudaRunner, TorchCompileCudaRunner,
    CoreMLCpuRunner, CoreMLGpuRunner, CoreMLAllRunner)}


def get_runner(name: str) -> Runner:
    try:
        return RUNNERS[name]()
    except KeyError:
        raise RunnerOptionError(f"unknown runtime {name!r}; known: {', '.join(sorted(RUNNERS))}") from None


__all__ = ["RUNNERS", "RunnerOptionError", "RunSettings", "Runner", "RunnerUnavailable", "Session", "get_runner"]
