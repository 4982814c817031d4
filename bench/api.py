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
(export, parity check) and timing (`time_request`, which `bench.py run` calls too).
Bad input raises bench.errors.ModbenchError (or models.ModelError) with one line.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

__all__ = ["measure", "read", "time_request"]


def read(path, samples: bool = True):
    """A results CSV as a DataFrame (the schema of bench/store.py); with samples=True
    a `samples_ms` column holds each row's per-iteration milliseconds. The path is in
    df.attrs["path"]."""
    from .store import read_samples, read_results

    path = Path(path)
    df = read_results(path)
    if samples:
        df["samples_ms"] = [read_samples(path, r) for _, r in df.iterrows()]
    df.attrs["path"] = str(path)
    return df


def _names(models) -> list[str]:
    """Registered names for `models`: strings pass through, nn.Modules are registered
    (a dict gives their names; else the class name, numbered where two share one)."""
    from torch import nn

    from models.byo import module_entry

    from .errors import UsageError

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
    """`bench.py run` arguments for measure()'s keyword options: the request is built
    by the CLI's own parser, so every default and every check is the CLI's."""
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
    from .cli import build_parser
    from .commands.run import _request
    from .errors import UsageError
    from .pipeline import plan
    from .store import check_new_path

    if "model_args" in options:
        options["model_arg"] = options.pop("model_args")
    if {"resume", "cluster", "on", "suite"} & set(options):
        raise UsageError("measure() times here, a new run: --resume, --suite and --cluster are the CLI's")
    names = _names(models)
    args = build_parser().parse_args(_argv(names, options))
    req = _request(args)
    out = Path(out) if out else Path(tempfile.mkdtemp(prefix="modbench-")) / "results.csv"
    check_new_path(out)
    time_request(req, plan(req), out, quiet=quiet, default_threads_note=False)
    return read(out)


def time_request(req, jobs, out, *, writer=None, quiet: bool = False,
                 default_threads_note: bool = False, stream=None) -> list[dict]:
    """Prepare (build, export, parity-check) and time `jobs` of `req` here, appending
    each finished row to `out` (created unless a resumed `writer` is given); the rows.
    `bench.py run` and `measure` both time through this."""
    import io
    import time

    from .commands.run import _protocol_line, _say_interrupted, _warn_oversubscribed, default_threads
    from .pipeline import execute, interleave_groups, new_run_id, prepare_all
    from .progress import Progress, TerminalStatus
    from .runners import get_runner
    from .schedule import total_work
    from .store import ResultsWriter

    stream = stream or sys.stderr
    say = (lambda m: None) if quiet else (lambda m: print(m, file=stream))
    runner = get_runner(req.runtime)
    status = TerminalStatus(stream)
    t0 = time.monotonic()
    try:
        prepared = prepare_all(jobs, req, runner.artifact, lambda i, job: None if quiet else status.show(
            f"preparing {i}/{len(jobs)}: {job.model} ({job.variant}, {job.resolution}px, batch {job.batch})"))
    finally:
        status.clear()
    say(f"prepared {len(prepared)} jobs in {time.monotonic() - t0:.0f} s (built, exported, parity-checked)")
    if default_threads_note and runner.device == "cpu":
        say(default_threads()[1])  # after preparing: bad input stays one line
    if not quiet:
        _warn_oversubscribed(req, runner)
    own = writer is None
    if own:
        writer = ResultsWriter.create(Path(out), req.to_json())
    try:
        # A time budget bounds each interleave group: the whole run can take that many times it.
        budget = req.time_budget * len(interleave_groups(prepared, req.interleave)) \
            if req.auto and req.time_budget else None
        bar = Progress(total_work(len(prepared), req.iters, req.warmup, req.block, req.block_warmup),
                       label=f"timing {len(prepared)} on {req.runtime}", budget_s=budget,
                       stream=io.StringIO() if quiet else stream)
        say(_protocol_line(req))
        try:
            return execute(prepared, req, writer, new_run_id(), progress=bar, on_round=bar.precision)
        except KeyboardInterrupt:
            bar.close()
            _say_interrupted(out, writer.rows_written)
            raise
        finally:
            bar.close()
    finally:
        if own:
            writer.close(discard_empty=True)  # a new run that wrote no row leaves nothing behind
