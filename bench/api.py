"""The Python API, for notebooks and scripts: time models as `modbench run` does and
get the rows back as a pandas DataFrame.

    from bench.api import measure, read
    df = measure(["mobilenetv2_100", "mypkg.net:build", my_module], iters=200)
    df[["model", "median_ms", "valid"]]
    df.loc[0, "samples_ms"]          # every iteration's milliseconds (numpy array)
    df = read("results/20260101-120000-models-ort-cpu.csv")   # a results file of the CLI

`measure` takes registry names, the CLI's specs (timm:NAME, PATH.onnx,
module:function, PATH.py:function) and torch.nn.Module objects already in memory,
with the CLI's options under their Python names (see `bench.py run --help`), and
runs the CLI's own protocol: the same defaults, the same planning, preparation
(export, parity check) and timing (bench.runplan.time_request, which `bench.py run`
calls too).
Bad input raises common.errors.ModbenchError (or models.ModelError) with one line.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from torch import nn

from common.errors import UsageError
from models.byo import module_entry

from .cli import build_parser
from .pipeline import plan
from .runplan import request_from_args, time_request
from .store import check_new_path, read_results, read_samples

__all__ = ["measure", "read", "time_request"]


def read(path, samples: bool = True):
    """A results CSV as a DataFrame (the schema of bench/store.py); with samples=True
    a `samples_ms` column holds each row's per-iteration milliseconds. The path is in
    df.attrs["path"]."""
    path = Path(path)
    df = read_results(path)
    if samples:
        df["samples_ms"] = [read_samples(path, r) for _, r in df.iterrows()]
    df.attrs["path"] = str(path)
    return df


def _names(models) -> list[str]:
    """Registered names for `models`: strings pass through, nn.Modules are registered
    (a dict gives their names; else the class name, numbered where two share one)."""
    if isinstance(models, (str, nn.Module)):
        models = [models]
    items = list(models.items()) if isinstance(models, dict) else [(None, m) for m in models]
    names, used = [], set()
    for name, m in items:
        if isinstance(m, nn.Module):
            base = name or type(m).__name__
            name, k = base, 2
            while name in used:
                name, k = f"{base}-{k}", k + 1
            m = module_entry(m, name).name
        elif not isinstance(m, str):
            raise UsageError(f"a model is a name, a spec or a torch.nn.Module, not {type(m).__name__}")
        used.add(m)
        names.append(m)
    return names


def _argv(names: list[str], options: dict) -> list[str]:
    """`bench.py run` arguments for measure()'s keyword options: they are parsed by the
    CLI's own parser and built into a request (and its timing protocol) by the same
    bench.runplan code as the CLI's, so every default and every check is the CLI's."""
    argv = ["run", *names]
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif isinstance(value, dict):  # model_args / top1
            argv += [x for k, v in value.items() for x in (flag, f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}")]
        elif isinstance(value, (list, tuple)):
            argv += [flag, ",".join(map(str, value))]
        else:
            argv += [flag, str(value)]
    return argv


def measure(models, *, out=None, quiet: bool = False, **options):
    """Time `models` (a name, spec, nn.Module, a list of them, or a dict name ->
    nn.Module) with `bench.py run`'s protocol and return the rows as a DataFrame
    (samples in `samples_ms`; the results file in df.attrs["path"]).

    options: the run command's options by Python name, e.g. runtime="ort-cpu",
    threads=[1, 2], batch=[1], resolution=[224], iters=200 (or "auto", the default),
    warmup=50, block=50, target_ci=0.01, model_arg={"width": 2}, checkpoint="w.pt".
    out: the results CSV to create (default: a new one in a temporary folder)."""
    if "model_args" in options:
        options["model_arg"] = options.pop("model_args")
    if {"resume", "cluster", "on", "suite"} & set(options):
        raise UsageError("measure() times here, a new run: --resume, --suite and --cluster are the CLI's")
    names = _names(models)
    args = build_parser().parse_args(_argv(names, options))
    req = request_from_args(args)
    out = Path(out) if out else Path(tempfile.mkdtemp(prefix="modbench-")) / "results.csv"
    check_new_path(out)
    time_request(req, plan(req), out, quiet=quiet, default_threads_note=False)
    return read(out)
