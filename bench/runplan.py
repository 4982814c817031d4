"""A run from its options to its rows, shared by `bench.py run` and the Python API
(bench/api.py): the request and its timing protocol built from the run options,
the protocol line, the thread-count checks, and the timing of a run here.

Both front ends build the request and time through this module, so the command
line and `bench.api.measure` cannot drift apart.
"""
from __future__ import annotations

import io
import sys
import time
from pathlib import Path

from common.errors import UsageError
from models import list_entries, suites

from .env import logical_cores, physical_cores
from .fleet import parse_on
from .pipeline import RunRequest, execute, interleave_groups, new_run_id, prepare_all
from .progress import Progress, TerminalStatus
from .runners import get_runner
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


def protocol_from_args(args) -> TimingProtocol:
    """The timing protocol of `run`'s options (an argparse namespace): --iters auto
    times between --min-iters and --max-iters within --time-budget; a number, exactly."""
    rule = StoppingRule(args.target_ci, args.stat, args.min_iters)
    auto = args.iters == "auto"
    return TimingProtocol(
        iters=args.max_iters if auto else args.iters, auto=auto, stopping=rule,
        # A budget bounds precision-driven timing only: a fixed count is timed whole.
        time_budget_s=args.time_budget if auto else None,
        warmup=args.warmup, block=args.block, block_warmup=args.block_warmup, schedule=args.schedule)


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
    variants = [v.strip() for v in args.variant.split(",")] if args.variant else [None]
    options = {k: v for k, v in (
        ("precision", args.precision), ("cudnn_algo_search", args.cudnn_algo_search),
        ("cuda_graphs", args.cuda_graphs), ("end_to_end", args.end_to_end),
        ("compile_mode", args.compile_mode), ("device_id", args.device_id)) if v is not None}
    return RunRequest(
        options=options, models=r.names, runtime=args.runtime, variants=variants,
        threads=args.threads or [default_threads()[0]], batches=args.batch or [1],
        resolutions=args.resolution or [None], protocol=protocol_from_args(args),
        busy_cores=args.busy_cores, max_disturbed=args.max_disturbed,
        interleave=args.interleave, spinning=args.spinning == "on",
        checkpoint=args.checkpoint, exporter=args.exporter, opset=args.opset,
        dynamic_batch=args.dynamic_batch, model_args=r.model_args, top1=r.top1, on=parse_on(args.on))


def protocol_line(req: RunRequest) -> str:
    """The settings that change the numbers, printed with them (as trtexec does)."""
    return (f"protocol: {req.runtime}, threads {','.join(map(str, req.threads))}, batch "
            f"{','.join(map(str, req.batches))}, {req.protocol.describe()}")


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
              f"`python bench.py run --resume {out}{again}`", file=sys.stderr)
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
