"""Runners, one module each, behind one interface (base.Runner), keyed by --runtime.

Adding a runtime is one new module here: each concrete Runner class is decorated
with @register_runner("its --runtime word") (base.py); every module of this package
is imported below."""
import importlib
import pkgutil

from .base import RUNNERS, RunSettings, Runner, RunnerOptionError, RunnerUnavailable, Session, register_runner

for _m in pkgutil.iter_modules(__path__):
    if _m.name != "base" and not _m.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_m.name}")


def get_runner(name: str) -> Runner:
    return RUNNERS.lookup(name)()


__all__ = ["RUNNERS", "RunnerOptionError", "RunSettings", "Runner", "RunnerUnavailable", "Session", "get_runner",
           "register_runner"]
