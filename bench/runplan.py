"""A run from its options to its rows, shared by `modbench run` and the Python API
(bench/api.py): the request and its timing protocol built from the run options,
their defaults, the checks a request passes before anything is built, the protocol
line, and the timing of a run here.

Both front ends parse the same options, build the request, check it and time it
through this module, so the command line and `modbench.measure` cannot drift apart.
The options' defaults are the typed settings' own (RunRequest, TimingProtocol,
StoppingRule): the parser's defaults are None, "not given", which is also how
`--resume` knows what a command line asks of a stored run.
"""
from __future__ import annotations

import io
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from modbench.common.errors import UsageError
from modbench.common.invocation import command
from modbench.models import get_entry, list_entries, parse_model_args, parse_top1, suites

from .env import logical_cores, physical_cores
from .fleet import parse_on
from .pipeline import DEFAULT_REFERENCE, RunRequest, execute, interleave_groups, new_run_id, prepare_all
from .progress import Progress, TerminalStatus
from .runners import RUNNERS, get_runner
from .schedule import StoppingRule, TimingProtocol
from .specs import resolve_models
from .store import ResultsWriter

# More threads than this many times the logical cores is a typo, not a setting: 1000
# threads on 2 cores ran a 2 ms model at ~10 s per iteration (load average 900).
OVERSUBSCRIBED_LIMIT = 4


def default_threads() -> tuple[int, str]:
    """The paper's 4 intra-op threads where the machine has 4 physical cores; else as
    many as it has (4 threads on 2 cores were 2.3-2.9x slower here, and unstable)."""
    cores = physical_cores()
    if cores >= 4:
        return 4, "threads: 4 (the paper's setting)"
    return cores, (f"threads: {cores} (this machine's physical cores; the paper used 4: "
                   "pass --threads 4 for its setting)")


# The defaults of every run option: the typed settings' own. The time budget bounds
# precision-driven timing only (a fixed count is timed whole): 480 s a group ends the
# default Table 1 run in about 10 minutes.
DEFAULT_REQUEST = RunRequest(models=[])
DEFAULT_PROTOCOL = DEFAULT_REQUEST.protocol
DEFAULT_RULE = DEFAULT_PROTOCOL.stopping
DEFAULT_TIME_BUDGET_S = 480.0


def _or(value, default):
    return default if value is None else value


def protocol_from_args(args, base: TimingProtocol = DEFAULT_PROTOCOL) -> TimingProtocol:
    """The timing protocol of `run`'s options (an argparse namespace; None: not
    given, `base`'s value): --iters auto times between --min-iters and --max-iters
    within --time-budget; a number, exactly."""
    rule = StoppingRule(_or(args.target_ci, base.stopping.target_ci), _or(args.stat, base.stopping.stat),
                        _or(args.min_iters, base.stopping.min_iters))
    iters = _or(args.iters, "auto" if base.auto else base.iters)
    auto = iters == "auto"
    budget = _or(args.time_budget, base.time_budget_s if base is not DEFAULT_PROTOCOL else DEFAULT_TIME_BUDGET_S)
    return TimingProtocol(
        iters=_or(args.max_iters, base.iters) if auto else iters, auto=auto, stopping=rule,
        # A budget bounds precision-driven timing only: a fixed count is timed whole.
        time_budget_s=budget if auto else None,
        warmup=_or(args.warmup, base.warmup), block=_or(args.block, base.block),
        block_warmup=_or(args.block_warmup, base.block_warmup), schedule=_or(args.schedule, base.schedule))


def _runner_options(args) -> dict:
    return {k: v for k, v in (
        ("precision", args.precision), ("cudnn_algo_search", args.cudnn_algo_search),
        ("cuda_graphs", args.cuda_graphs), ("end_to_end", args.end_to_end),
        ("compile_mode", args.compile_mode), ("device_id", args.device_id)) if v is not None}


def request_from_args(args) -> RunRequest:
    """The run request of `run`'s options (an argparse namespace); one line on bad input."""
    if args.suite:
        if args.suite not in suites():
            raise UsageError(f"unknown suite {args.suite!r}; known: {', '.join(suites())}")
        names = [e.name for e in list_entries(args.suite) if e.available]
        skipped = [e.name for e in list_entries(args.suite) if not e.available]
        if skipped:
            print(f"note: not available yet, skipped: {', '.join(skipped)}", file=sys.stderr)
    else:
        names = []
    names += [m for m in args.models if m not in names]
    if not names:
        raise UsageError("name at least one MODEL or a --suite")
    # The bring-your-own specs are checked now (one line on bad input); ONNX specs
    # become absolute paths, and --model-arg/--top1 are stored for --resume.
    r = resolve_models(names, args.model_arg, args.top1, args.batch[0] if args.batch else None,
                       args.resolution[0] if args.resolution else None)
    d = DEFAULT_REQUEST
    req = RunRequest(
        options=_runner_options(args), models=r.names, runtime=_or(args.runtime, d.runtime),
        variants=_variants(args.variant) if args.variant else d.variants,
        threads=args.threads or [default_threads()[0]], batches=args.batch or d.batches,
        resolutions=args.resolution or d.resolutions, protocol=protocol_from_args(args),
        busy_cores=_or(args.busy_cores, d.busy_cores), max_disturbed=_or(args.max_disturbed, d.max_disturbed),
        interleave=_or(args.interleave, d.interleave),
        spinning=d.spinning if args.spinning is None else args.spinning == "on",
        checkpoint=args.checkpoint, exporter=_or(args.exporter, d.exporter), opset=args.opset,
        dynamic_batch=bool(args.dynamic_batch), model_args=r.model_args, top1=r.top1, on=parse_on(args.on),
        reference=None)
    return replace(req, reference=default_reference(req) if args.reference is None else _reference(args.reference))


def default_reference(req: RunRequest) -> str | None:
    """The reference a run gets unless --reference says otherwise: DEFAULT_REFERENCE for
    a precision-driven round-robin run on a CPU runtime, whose rows it then stops on their
    relative figure; none for a fixed count (a paper's protocol, as it was published),
    a sequential schedule or a GPU."""
    p = req.protocol
    if req.runtime not in RUNNERS:  # check_request refuses it in one line
        return None
    if p.auto and p.schedule == "round-robin" and RUNNERS[req.runtime].device == "cpu":
        return DEFAULT_REFERENCE
    return None


def _reference(name: str) -> str | None:
    """--reference NAME (a registry model) or none."""
    if name.strip().lower() == "none":
        return None
    return get_entry(name.strip()).name  # an unknown name: one line with the closest names


def _variants(text: str) -> list[str]:
    return [v.strip() for v in text.split(",")]


# --- what a stored request holds, option by option (for --resume) --------------------

@dataclass(frozen=True)
class Setting:
    """A run option whose value a request stores: how to read it from the request and
    from the parsed option, comparably."""

    flag: str
    dest: str
    stored: Callable[[RunRequest], object]
    asked: Callable[[object], object] | None = None  # None: the parsed value as it is


def _option(name: str) -> Callable[[RunRequest], object]:
    return lambda r: r.options.get(name)


SETTINGS: tuple[Setting, ...] = (
    Setting("--runtime", "runtime", lambda r: r.runtime),
    Setting("--variant", "variant", lambda r: r.variants, _variants),
    Setting("--threads", "threads", lambda r: r.threads),
    Setting("--batch", "batch", lambda r: r.batches),
    Setting("--resolution", "resolution", lambda r: r.resolutions),
    Setting("--iters", "iters", lambda r: "auto" if r.protocol.auto else r.protocol.iters),
    Setting("--max-iters", "max_iters", lambda r: r.protocol.iters),
    Setting("--target-ci", "target_ci", lambda r: r.protocol.stopping.target_ci),
    Setting("--stat", "stat", lambda r: r.protocol.stopping.stat),
    Setting("--min-iters", "min_iters", lambda r: r.protocol.stopping.min_iters),
    Setting("--time-budget", "time_budget", lambda r: r.protocol.time_budget_s),
    Setting("--warmup", "warmup", lambda r: r.protocol.warmup),
    Setting("--block", "block", lambda r: r.protocol.block),
    Setting("--block-warmup", "block_warmup", lambda r: r.protocol.block_warmup),
    Setting("--schedule", "schedule", lambda r: r.protocol.schedule),
    Setting("--busy-cores", "busy_cores", lambda r: r.busy_cores),
    Setting("--max-disturbed", "max_disturbed", lambda r: r.max_disturbed),
    Setting("--interleave", "interleave", lambda r: r.interleave),
    Setting("--spinning", "spinning", lambda r: r.spinning, lambda v: v == "on"),
    Setting("--checkpoint", "checkpoint", lambda r: r.checkpoint),
    Setting("--exporter", "exporter", lambda r: r.exporter),
    Setting("--opset", "opset", lambda r: r.opset),
    Setting("--dynamic-batch", "dynamic_batch", lambda r: r.dynamic_batch),
    Setting("--model-arg", "model_arg", lambda r: r.model_args, parse_model_args),
    Setting("--reference", "reference", lambda r: r.reference, _reference),
    Setting("--top1", "top1", lambda r: sorted(r.top1.values()), lambda v: sorted(parse_top1(v).values())),
    *(Setting(f"--{name.replace('_', '-')}", name, _option(name))
      for name in ("precision", "cudnn_algo_search", "cuda_graphs", "end_to_end", "compile_mode", "device_id")),
)


def resume_conflicts(args, stored: RunRequest) -> list[str]:
    """The options given with --resume that differ from what the stored run asked
    (`--warmup 10` for a run timed with 50): each would not apply, so each is named."""
    out = []
    for s in SETTINGS:
        value = getattr(args, s.dest, None)
        if value is None or value is False:
            continue
        asked, had = (s.asked(value) if s.asked else value), s.stored(stored)
        if asked != had:
            out.append(f"{s.flag} {value if not isinstance(value, list) else ','.join(map(str, value))} "
                       f"(the run has {had if not isinstance(had, list) else ','.join(map(str, had))})")
    return out


def protocol_line(req: RunRequest) -> str:
    """The settings that change the numbers, printed with them (as trtexec does)."""
    return (f"protocol: {req.runtime}, threads {','.join(map(str, req.threads))}, batch "
            f"{','.join(map(str, req.batches))}, {req.protocol.describe()}")


def check_request(req: RunRequest, *, force_threads: bool = False, cluster: bool = False):
    """Every check a request passes before anything is built, for the command line and
    the Python API alike: the runtime exists, takes the options asked, works here (a
    fleet run's nodes check their own), and the thread count is sane. The runner."""
    try:
        runner = get_runner(req.runtime)
        runner.check_options(req.options)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if not cluster:
        runner.check_available()
    elif "device_id" in req.options:
        raise UsageError("--device-id does not apply to --cluster: Ray gives each task one GPU, "
                         "its only visible device; pick machines with --on")
    check_thread_count(req, runner, force_threads or cluster)
    if req.reference is not None and req.protocol.schedule != "round-robin":
        raise UsageError(f"--reference {req.reference} needs --schedule round-robin: a figure relative to the "
                         "reference pairs the blocks both timed in the same round")
    return runner


def check_thread_count(req: RunRequest, runner, force: bool) -> None:
    """Refuse (one line, before anything is built) a thread count no machine of this
    size should run, unless forced."""
    cores = logical_cores()
    if runner.device == "cpu" and max(req.threads) > OVERSUBSCRIBED_LIMIT * cores and not force:
        raise UsageError(f"--threads {max(req.threads)} is more than {OVERSUBSCRIBED_LIMIT}x this machine's "
                         f"{cores} logical cores: timing it would take hours and measure the scheduler; "
                         "pass --force-threads to time it anyway")


def warn_oversubscribed(req: RunRequest, runner, stream=None) -> None:
    if runner.device == "cpu" and max(req.threads) > logical_cores():
        print(f"warning: {max(req.threads)} threads asked on {logical_cores()} logical cores: "
              "oversubscribed; timing it anyway and recording the threads used", file=stream or sys.stderr)


def say_interrupted(out, n_rows: int, cluster=None) -> None:
    again = f" --cluster {cluster}" if cluster else ""
    if n_rows:
        print(f"\ninterrupted: the {n_rows} completed rows are kept in {out}; finish with "
              f"`{command()} run --resume {out}{again}`", file=sys.stderr)
    else:
        print("\ninterrupted before any row was complete; nothing was written", file=sys.stderr)


def time_request(req: RunRequest, jobs, out, *, writer=None, quiet: bool = False,
                 default_threads_note: bool = False, stream=None) -> list[dict]:
    """Prepare (build, export, parity-check) and time `jobs` of `req` here, appending
    each finished row to `out` (created unless a resumed `writer` is given); the rows.
    `bench.py run` and bench.api.measure both time through this."""
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
        warn_oversubscribed(req, runner, stream)
    own = writer is None
    if own:
        writer = ResultsWriter.create(Path(out), req.to_json())
    try:
        protocol = req.protocol
        # A time budget bounds each interleave group: the whole run can take that many times it.
        budget = protocol.time_budget_s * len(interleave_groups(prepared, req.interleave)) \
            if protocol.time_budget_s else None
        bar = Progress(protocol.total_work(len(prepared)), label=f"timing {len(prepared)} on {req.runtime}",
                       budget_s=budget, stream=io.StringIO() if quiet else stream)
        say(protocol_line(req))
        try:
            return execute(prepared, req, writer, new_run_id(), progress=bar, on_round=bar.precision)
        except KeyboardInterrupt:
            bar.close()
            say_interrupted(out, writer.rows_written)
            raise
        finally:
            bar.close()
    finally:
        if own:
            writer.close(discard_empty=True)  # a new run that wrote no row leaves nothing behind
