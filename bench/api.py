"""The Python API, for notebooks and scripts: time models as `modbench run` does and
get the rows back as a pandas DataFrame.

    from modbench.api import measure, read
    df = measure(["mobilenetv2_100", "mypkg.net:build", my_module], iters=200)
    df[["model", "median_ms", "valid"]]
    df.loc[0, "samples_ms"]          # every iteration's milliseconds (numpy array)
    df = modbench.read("results/20260101-120000-models-ort-cpu.csv")   # a results file of the CLI

`measure` takes registry names, the CLI's specs (timm:NAME, PATH.onnx,
module:function, PATH.py:function) and torch.nn.Module objects already in memory,
with the CLI's options under their Python names (see `modbench run --help`), and
runs the CLI's own protocol: the same defaults, the same planning, preparation
(export, parity check) and timing (modbench.runplan.time_request, which `modbench
run` calls too).
Bad input raises modbench.common.errors.ModbenchError (ModelError, UsageError, ...)
with one line.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from torch import nn

from modbench.common.errors import UsageError
from modbench.models.byo import module_entry

from .cli import build_parser
from .commands.profile import collect as collect_profile
from .pipeline import plan
from .runplan import check_request, request_from_args, time_request
from .schema import SCHEMA
from .store import check_new_path, read_results, read_samples

__all__ = ["measure", "profile", "read", "time_request"]


def read(path, samples: bool = True):
    """A results CSV as a DataFrame (the schema of bench/store.py); with samples=True
    a `samples_ms` column holds each row's per-iteration milliseconds. The path is in
    df.attrs["path"]."""
    path = Path(path)
    df = read_results(path)
    for name in (c.name for c in SCHEMA if c.type == "json" and c.name in df.columns):
        # JSON columns as the objects they hold (the file keeps their text).
        df[name] = [json.loads(v) if isinstance(v, str) and v[:1] in "{[" else v for v in df[name]]
    if samples:
        df["samples_ms"] = [read_samples(path, r) for _, r in df.iterrows()]
    df.attrs["path"] = str(path)
    return df


def _names(models, quiet: bool) -> list[str]:
    """Registered names for `models`: strings pass through, nn.Modules are registered
    (a dict gives their names; else the class name, numbered where two share one)."""
    if isinstance(models, (str, nn.Module)):
        models = [models]
    if isinstance(models, dict):
        items = list(models.items())
        bad = [k for k, _ in items if not isinstance(k, str) or not k.strip()]
        if bad:
            raise UsageError(f"measure({{name: module}}): a name is {bad[0]!r}; give each model a non-empty name")
    else:
        try:
            items = [(None, m) for m in models]
        except TypeError:
            raise UsageError(f"measure() takes a model (a name, a spec or a torch.nn.Module), a list of them "
                             f"or a dict {{name: module}}, not {type(models).__name__}") from None
    if not items:
        raise UsageError("measure() was given no models")
    names, used = [], set()
    for name, m in items:
        if isinstance(m, nn.Module):
            base = name or type(m).__name__
            name, k = base, 2
            while name in used:
                name, k = f"{base}-{k}", k + 1
            was_training = m.training
            m = module_entry(m, name).name
            if was_training and not quiet:
                print(f"note: {m} is in train mode; it is timed in eval mode (on a copy: your module is "
                      "not changed)", file=sys.stderr)
        elif not isinstance(m, str):
            raise UsageError(f"a model is a name, a spec or a torch.nn.Module, not {type(m).__name__}")
        used.add(m)
        names.append(m)
    return names


def _argv(names: list[str], options: dict, command: str = "run") -> list[str]:
    """`bench.py run` (or `command`) arguments for measure()'s keyword options: they are
    parsed by the CLI's own parser and built into a request (and its timing protocol) by
    the same bench.runplan code as the CLI's, so every default and every check is the CLI's."""
    argv = [command, *names]
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


def profile(models, *, compare=(), quiet: bool = True, **options):
    """Profile `models` (as measure() takes them) per operator, as `modbench profile`
    does; returns a ProfileRun: `.nodes` (a DataFrame, one row per node), `.by(level)`
    (category, op_type, stage, block, module, node), `.comparisons`, `.text()`, `.to_json()`.

    compare: pairs (A, B) of profiled models (or of variants); options: the profile
    command's by Python name, e.g. runtime="torch-cpu", resolution=64, rounds=5,
    profile_iters=20, iters=300, out="results/profiles/mine" (writes its CSV and JSON)."""
    names = _names(models, quiet)
    argv = _argv(names, options, "profile")
    for a, b in compare:
        argv += ["--compare", f"{a}={b}"]
    args = build_parser().parse_args(argv)
    return collect_profile(args, log=(lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr)))


def measure(models, *, out=None, quiet: bool = False, **options):
    """Time `models` (a name, spec, nn.Module, a list of them, or a dict name ->
    nn.Module) with `modbench run`'s protocol and return the rows as a DataFrame
    (samples in `samples_ms`).

    options: the run command's options by Python name, e.g. runtime="ort-cpu",
    threads=[1, 2], batch=[1], resolution=[224], iters=200 (or "auto", the default),
    warmup=50, block=50, target_ci=0.01, model_arg={"width": 2}, checkpoint="w.pt".
    out: the results CSV to create and keep (with its samples folder), its path in
    df.attrs["path"]; without it the run is written to a temporary folder that is
    removed once read (df.attrs["path"] is then None)."""
    if "model_args" in options:
        options["model_arg"] = options.pop("model_args")
    if {"resume", "cluster", "on", "suite"} & set(options):
        raise UsageError("measure() times here, a new run: --resume, --suite and --cluster are the CLI's")
    names = _names(models, quiet)
    args = build_parser().parse_args(_argv(names, options))
    req = request_from_args(args)
    check_request(req)  # the command line's own checks, before anything is built
    scratch = None if out else Path(tempfile.mkdtemp(prefix="modbench-"))
    path = Path(out) if out else scratch / "results.csv"
    try:
        check_new_path(path)
        time_request(req, plan(req), path, quiet=quiet, default_threads_note=False)
        df = read(path)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if scratch is not None:
        df.attrs["path"] = None
    return df
