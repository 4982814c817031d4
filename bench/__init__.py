"""modbench: latency benchmarks for efficient vision networks.

    import modbench
    df = modbench.measure(["mobilenetv2_100", "mypkg.net:build", my_module], iters=200)
    df = modbench.read("results/run.csv")

`measure` and `read` (bench/api.py) load torch and ONNX Runtime when first used, so
`import modbench` and the command line's --help stay fast.
"""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("modbench")
except PackageNotFoundError:  # a checkout on sys.path without `pip install -e .`
    __version__ = "0+unknown"

__all__ = ["__version__", "measure", "read"]


def __getattr__(name: str):
    if name in ("measure", "read", "time_request"):
        from . import api  # torch and ONNX Runtime load only when the API is asked for

        return getattr(api, name)
    raise AttributeError(f"module 'modbench' has no attribute {name!r}")
