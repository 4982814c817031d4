"""bench.py run: time models and write one results CSV (with samples) per run."""
from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

from ..errors import UsageError


# More threads than this many times the logical cores is a typo, not a setting: 1000
# threads on 2 cores ran a 2 ms model at ~10 s per iteration (load average 900).
OVERSUBSCRIBED_LIMIT = 4


def default_threads() -> tuple[int, str]:
    """The paper's 4 intra-op threads where the machine has 4 physical cores; else as
    many as it has (4 threads on 2 cores were 2.3-2.9x slower here, and unstable)."""
    from ..env import physical_cores

    cores = physical_cores()
    if cores >= 4:
        return 4, "threads: 4 (the paper's setting)"
    return cores, (f"threads: {cores} (this machine's physical cores; the paper used 4: "
                   "pass --threads 4 for its setting)")


def add_parser(sub) -> None:
    from . import _args as A

    p = sub.add_parser("run", help="benchmark models")
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="registry names, or your own: timm:NAME, PATH.onnx, module.path:function")
    p.add_argument("--suite", help="a named set of models (see `list`), e.g. efficientmod, table1")
    p.add_argument("--runtime", default="ort-cpu", help="runner (default ort-cpu; also torch-cpu, ...)")
    p.add_argument("--threads", type=A.thread_list, default=None,
                   help="intra-op threads, comma list (default: the paper's 4 where the machine has 4 "
                        "physical cores, else its physical cores; --threads 4 is the paper's setting)")
    p.add_argument("--iters", type=A.iterations_or_auto, default="auto",
                   help="timed iterations per model: 'auto' (default) times until the 95%% CI of each "
                        "row's headline statistic is within --target-ci, between --min-iters and "
                        "--max-iters; a number N times exactly N (the paper: --iters 4000)")
    p.add_argument("--target-ci", type=A.open_unit_fraction, default=0.01, metavar="FRACTION",
                   help="wanted 95%% CI half-width of the headline statistic, relative (default 0.01 = 1%%); "
                        "a row whose interval is wider is INVALID")
    p.add_argument("--stat", choices=("median", "mean"), default="median",
                   help="headline statistic the interval is about (default median; the paper reports means)")
    p.add_argument("--min-iters", type=A.iterations, default=300, help="auto: iterations before stopping (default 300)")
    p.add_argument("--max-iters", type=A.iterations, default=4000, help="auto: most iterations per row (default 4000)")
    p.add_argument("--time-budget", type=A.positive_float, default=480, metavar="SECONDS",
                   help="auto: stop timing after this many seconds per interleave group (default 480: "
                        "the default run ends in about 10 minutes; a row not yet precise is INVALID)")
    p.add_argument("--busy-cores", type=A.positive_float, default=0.2,
                   help="a block is disturbed when other processes used more cores than this (default 0.2)")
    p.add_argument("--max-disturbed", type=A.fraction, default=0.10,
                   help="a row with more disturbed blocks than this share is INVALID (default 0.10)")
    p.add_argument("--warmup", type=A.non_negative_int, default=50, help="untimed iterations before timing (default 50)")
    p.add_argument("--batch", type=A.batch_list, default=None, help="batch size(s), comma list (default 1)")
    p.add_argument("--resolution", type=A.resolution_list, default=None,
                   help="input side(s), comma list (default: each model's paper resolution)")
    p.add_argument("--variant", default=None,
                   help="variant(s), comma list; EfficientMod: repeat (released) or reshape")
    p.add_argument("--checkpoint", help="state dict to load into the (single) model, strictly")
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                   help="keyword argument for module:function models (repeatable; Python literals)")
    p.add_argument("--top1", action="append", metavar="NAME=ACC|TSV",
                   help="top-1 accuracy of your own models for tables and the accuracy-latency plot "
                        "(repeatable), or a TSV of NAME<TAB>TOP1 lines")
    p.add_argument("--out", help="results CSV to create (default: a new file under --results-dir)")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--resume", metavar="FILE", help="finish an interrupted run in FILE")
    p.add_argument("--force-threads", action="store_true",
                   help=f"time --threads above {OVERSUBSCRIBED_LIMIT}x the logical cores anyway (refused otherwise)")
    p.add_argument("--schedule", choices=("round-robin", "sequential"), default="round-robin")
    p.add_argument("--block", type=A.positive_int, default=50, help="iterations per round-robin block (default 50)")
    p.add_argument("--block-warmup", type=A.non_negative_int, default=2,
                   help="untimed iterations at the start of each block (default 2)")
    p.add_argument("--interleave", type=A.non_negative_int, default=0,
                   help="models timed together per group (default 0: all)")
    p.add_argument("--spinning", choices=("on", "off"), default="on",
                   help="ONNX Runtime intra-op spinning (default on, ORT's default)")
    p.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript")
    p.add_argument("--opset", type=A.opset)
    p.add_argument("--dynamic-batch", action="store_true")
    g = p.add_argument_group("GPU runners (ort-cuda, ort-trt, torch-cuda, torch-compile-cuda)")
    g.add_argument("--precision", choices=("fp32", "fp16", "bf16"),
                   help="numeric precision (default fp32; ort-trt: fp16; torch-*: fp16, bf16)")
    g.add_argument("--cudnn-algo-search", choices=("EXHAUSTIVE", "HEURISTIC", "DEFAULT"),
                   help="cuDNN convolution algorithm search (default EXHAUSTIVE, done before timing)")
    g.add_argument("--cuda-graphs", action="store_true", default=None,
                   help="replay the model as a CUDA graph")
    g.add_argument("--end-to-end", action="store_true", default=None,
                   help="ort-cuda/ort-trt: time host->device and device->host copies too (reported apart)")
    g.add_argument("--compile-mode", choices=("default", "reduce-overhead", "max-autotune",
                                              "max-autotune-no-cudagraphs"),
                   help="torch-compile-cuda: torch.compile mode")
    g.add_argument("--device-id", type=A.non_negative_int, help="CUDA device index (default 0)")
    f = p.add_argument_group("several machines (Ray; see README 'Running on several machines')")
    f.add_argument("--cluster", metavar="ADDRESS",
                   help="run the jobs as Ray tasks on a running Ray cluster (HEAD:6379, or auto)")
    f.add_argument("--on", metavar="LABEL[,LABEL]",
                   help="with --cluster: the nodes to time on, by custom resource, accelerator type "
                        "(e.g. T4) or key=value label; each job runs once per label (default: any node)")
    p.set_defaults(func=run)


def _request(args):
    from models import list_entries, suites

    from ..pipeline import RunRequest

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
    model_args, top1 = _own_models(args, names)
    variants = [v.strip() for v in args.variant.split(",")] if args.variant else [None]
    kw = {}
    if args.iters == "auto":
        if args.min_iters > args.max_iters:
            raise UsageError(f"--min-iters {args.min_iters} is more than --max-iters {args.max_iters}")
        kw.update(auto=True, iters=args.max_iters)
    else:
        kw.update(auto=False, iters=args.iters)
    threads = args.threads
    if threads is None:
        threads = [default_threads()[0]]
    options = {k: v for k, v in (
        ("precision", args.precision), ("cudnn_algo_search", args.cudnn_algo_search),
        ("cuda_graphs", args.cuda_graphs), ("end_to_end", args.end_to_end),
        ("compile_mode", args.compile_mode), ("device_id", args.device_id)) if v is not None}
    return RunRequest(
        options=options, models=names, runtime=args.runtime, variants=variants, threads=threads,
        batches=args.batch or [1], resolutions=args.resolution or [None], target_ci=args.target_ci,
        stat=args.stat, min_iters=args.min_iters, time_budget=args.time_budget,
        busy_cores=args.busy_cores, max_disturbed=args.max_disturbed,
        warmup=args.warmup, block=args.block, block_warmup=args.block_warmup,
        schedule=args.schedule, interleave=args.interleave, spinning=args.spinning == "on",
        checkpoint=args.checkpoint, exporter=args.exporter, opset=args.opset,
        dynamic_batch=args.dynamic_batch, model_args=model_args, top1=top1,
        on=_fleet().parse_on(args.on), **kw)


def _own_models(args, names: list[str]) -> tuple[dict, dict]:
    """Check the bring-your-own specs now (one line on bad input) and return the
    --model-arg and --top1 values the request stores for --resume; ONNX specs in
    `names` become absolute paths."""
    from models import is_spec, parse_model_args, parse_top1, resolve_spec
    from models.byo import check_onnx_shape, duplicate_names, unknown_top1_names


    model_args, top1 = parse_model_args(args.model_arg), parse_top1(args.top1)
    specs = [n for n in names if is_spec(n)]
    if model_args and not any(":" in s and not s.startswith("timm:") for s in specs):
        raise UsageError("--model-arg applies to module:function models; none is named")
    entries = [resolve_spec(n, model_args=model_args, top1=top1) for n in specs]
    clash = duplicate_names(specs, entries)
    if clash:
        raise UsageError(clash)
    for e in entries:
        if e.onnx_path is not None:
            # A dynamic dim must be given explicitly: --batch and --resolution have no default here.
            check_onnx_shape(e, args.batch[0] if args.batch else None,
                             args.resolution[0] if args.resolution else None)
    unknown = unknown_top1_names(top1, specs, [e.name for e in entries])
    if unknown:
        raise UsageError(f"--top1 names {', '.join(unknown)}, not one of your own models in this run "
                         "(registered models keep the paper's top-1)")
    # Stored for --resume: ONNX files by absolute path, accuracies by model name.
    for spec, e in zip(specs, entries):
        if spec in top1:
            top1[e.name] = top1.pop(spec)
        if e.onnx_path is not None:
            names[names.index(spec)] = e.onnx_path
    return model_args, top1


def runtime_device(runtime: str) -> str | None:
    from ..runners import RUNNERS
    r = RUNNERS.get(runtime)
    return r.device if r else None


def _fleet():
    from .. import fleet

    return fleet


def _default_out(args, req) -> Path:
    label = args.suite or (req.models[0] if len(req.models) == 1 else "models")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(args.results_dir) / f"{stamp}-{label}-{req.runtime}"
    out, k = base.with_suffix(".csv"), 1
    while out.exists():
        out, k = Path(f"{base}-{k}.csv"), k + 1
    return out


# Settings stored in a run's request: --resume takes them from there, never from the
# command line (a different --iters would silently not apply).
_REQUEST_FLAGS = (("--iters", "iters", "auto"), ("--threads", "threads", None), ("--runtime", "runtime", "ort-cpu"),
                  ("--batch", "batch", None), ("--resolution", "resolution", None), ("--variant", "variant", None),
                  ("--warmup", "warmup", 50), ("--block", "block", 50), ("--min-iters", "min_iters", 300),
                  ("--max-iters", "max_iters", 4000), ("--target-ci", "target_ci", 0.01),
                  ("--checkpoint", "checkpoint", None), ("--model-arg", "model_arg", None),
                  ("--exporter", "exporter", "torchscript"), ("--opset", "opset", None))


def _open_results(args):
    """(writer or None, request, jobs still to time, results path) for a new run or a
    --resume. Everything that can fail on bad input happens before a file is created;
    a resumed file's writer holds its lock from here on."""
    from ..pipeline import RunRequest, plan
    from ..store import ResultsWriter, check_new_path

    if args.on is not None and not args.cluster:
        raise UsageError("--on places jobs on the nodes of a Ray cluster; give --cluster ADDRESS too")
    if args.resume:
        if args.models or args.suite or args.out or args.on is not None:
            raise UsageError("--resume takes the run's own request; do not name models, a suite, --on or --out")
        given = [flag for flag, attr, default in _REQUEST_FLAGS if getattr(args, attr, default) != default]
        if given:
            raise UsageError(f"--resume finishes the run as it was asked (its request is stored beside it); "
                             f"{', '.join(given)} would not apply: drop {'it' if len(given) == 1 else 'them'}, "
                             "or start a new run")
        writer, config, done = ResultsWriter.resume(Path(args.resume))
        try:
            req = RunRequest.from_json(config)
            if req.on and not args.cluster:
                raise UsageError(f"{writer.path} is a fleet run on {','.join(req.on)}; finish it with "
                                 f"--resume {writer.path} --cluster ADDRESS")
            jobs = [j for j in plan(req) if j.row_id not in set(done["row_id"])]
            if jobs:
                for line in software_changes(done):
                    print(line, file=sys.stderr)
        except BaseException:
            writer.close()
            raise
        return writer, req, jobs, writer.path
    req = _request(args)
    out = Path(args.out) if args.out else _default_out(args, req)
    check_new_path(out)  # proves the folder writable by writing, without creating anything
    return None, req, plan(req), out


def software_changes(done) -> list[str]:
    """Notes for a --resume whose new rows will come from other code or libraries
    than the rows already there (each row records its own; this says it once)."""
    from ..env import machine_env

    env, notes = machine_env(), []
    for col, what in (("git_commit", "commit"), ("onnxruntime_version", "onnxruntime"),
                      ("onnxruntime_gpu_version", "onnxruntime-gpu"), ("torch_version", "torch")):
        if col not in done or not env.get(col):
            continue
        before = sorted({str(v) for v in done[col].dropna()} - {""})
        if before and before != [str(env[col])]:
            notes.append(f"note: the rows already in the file were made with {what} {', '.join(before)}; "
                         f"the new ones will be made with {env[col]} (each row records its own)")
    return notes


def _runner_for(req, here: bool):
    from ..runners import get_runner

    try:
        runner = get_runner(req.runtime)
        runner.check_options(req.options)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if here:  # a fleet run's nodes check their own runtime; the driver may have none
        runner.check_available()
    return runner


def _prepare(jobs, req, runner):
    """Build, export and parity-check every job; progress on a terminal only, so
    bad input still ends in one line."""
    from ..pipeline import prepare_all
    from ..progress import TerminalStatus

    status = TerminalStatus(sys.stderr)
    t0 = time.monotonic()
    try:
        prepared = prepare_all(jobs, req, runner.artifact, lambda i, job: status.show(
            f"preparing {i}/{len(jobs)}: {job.model} ({job.variant}, {job.resolution}px, batch {job.batch})"))
    finally:
        status.clear()
    print(f"prepared {len(prepared)} jobs in {time.monotonic() - t0:.0f} s (built, exported, parity-checked)",
          file=sys.stderr)
    return prepared


def check_thread_count(req, runner, force: bool) -> None:
    """Refuse (one line, before anything is built) a thread count no machine of this
    size should run, unless forced."""
    from ..env import logical_cores

    cores = logical_cores()
    if runner.device == "cpu" and max(req.threads) > OVERSUBSCRIBED_LIMIT * cores and not force:
        raise UsageError(f"--threads {max(req.threads)} is more than {OVERSUBSCRIBED_LIMIT}x this machine's "
                         f"{cores} logical cores: timing it would take hours and measure the scheduler; "
                         "pass --force-threads to time it anyway")


def _warn_oversubscribed(req, runner) -> None:
    from ..env import logical_cores

    if runner.device == "cpu" and max(req.threads) > logical_cores():
        print(f"warning: {max(req.threads)} threads asked on {logical_cores()} logical cores: "
              "oversubscribed; timing it anyway and recording the threads used", file=sys.stderr)


def run(args) -> int:
    writer, req, jobs, out = _open_results(args)
    try:
        runner = _runner_for(req, here=not args.cluster)
        if args.cluster and "device_id" in req.options:
            raise UsageError("--device-id does not apply to --cluster: Ray gives each task one GPU, "
                             "its only visible device; pick machines with --on")
        check_thread_count(req, runner, getattr(args, "force_threads", False) or bool(args.cluster))
        if not jobs and args.resume:
            print(f"{out}: every row is already complete; nothing to do")
            return 0
        if not jobs:
            raise UsageError("the request plans no job (an empty --threads, --batch or model list?)")
        if args.cluster:
            rows, missing = _run_on_fleet(args, req, runner, jobs, out, writer)
        else:
            rows, missing = _run_here(args, req, runner, jobs, out, writer), None
    finally:
        if writer is not None:
            writer.close()
    print(summary(rows, where=bool(args.cluster)))
    print(f"\n{len(rows)} rows written to {out}")
    if missing:
        raise missing
    return 0


def _run_here(args, req, runner, jobs, out, writer) -> list[dict]:
    from ..pipeline import execute, new_run_id
    from ..progress import Progress
    from ..schedule import total_work
    from ..store import ResultsWriter

    prepared = _prepare(jobs, req, runner)
    if not args.resume and args.threads is None and runner.device == "cpu":
        print(default_threads()[1], file=sys.stderr)  # after preparing: bad input stays one line
    _warn_oversubscribed(req, runner)
    own = writer is None
    if own:
        writer = ResultsWriter.create(out, req.to_json())
    try:
        bar = Progress(total_work(len(prepared), req.iters, req.warmup, req.block, req.block_warmup),
                       label=f"timing {len(prepared)} on {req.runtime}")
        print(_protocol_line(req), file=sys.stderr)
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


def _run_on_fleet(args, req, runner, jobs, out, writer):
    """(rows, the error to raise for missing rows or None): the run's groups as Ray tasks."""
    from ..env import REPO_ROOT, machine_env
    from ..pipeline import interleave_groups, new_run_id
    from ..store import ResultsWriter

    fleet = _fleet()
    try:
        cluster = fleet.connect(args.cluster, REPO_ROOT)
        gpu = runner.device != "cpu"
        nodes = fleet.live_nodes()
        targets = dict(zip(req.on or [None], fleet.resolve_targets(req.on, nodes, gpu)))
        for line in fleet.check_slots(nodes):
            print(line, file=sys.stderr)
        warm = fleet.warm_up(list(targets.values()), nodes, req.runtime, gpu)
        # Prepared here too: bad input fails before anything runs, as in a local run,
        # and the driver's artifact SHA-256s are what each node's are compared with.
        prepared = _prepare(jobs, req, runner)
        broken = fleet.warm_up_errors(warm, timeout=fleet.WARM_UP_WAIT_S)
        if broken:
            more = f" (and {len(broken) - 1} more nodes)" if len(broken) > 1 else ""
            raise fleet.FleetError(f"{broken[0]}{more}; nothing was run")
        groups = interleave_groups(prepared, req.interleave)
        own = writer is None
        if own:
            writer = ResultsWriter.create(out, req.to_json())
        try:
            where = ", ".join(t.label or "any node" for t in targets.values())
            print(f"submitting {len(groups)} groups ({len(prepared)} jobs) to the cluster at {cluster} ({where})",
                  file=sys.stderr)
            print(_protocol_line(req), file=sys.stderr)
            try:
                outcome = fleet.execute(groups, targets, req, writer, new_run_id(), cluster, gpu, machine_env())
            except KeyboardInterrupt:
                _say_interrupted(out, writer.rows_written, cluster)
                raise
        except BaseException:
            if own:
                writer.close(discard_empty=True)  # a new run that wrote no row leaves nothing behind
            raise
        if own:
            writer.close()  # kept even with no row: missing rows are finished with --resume
    finally:
        fleet.disconnect()
    missing = None
    if outcome.missing:
        why = outcome.missing[0][1]
        missing = fleet.FleetError(f"{len(outcome.missing)} of {len(jobs)} rows missing ({why}); finish with "
                                   f"`python bench.py run --resume {out} --cluster {args.cluster}`")
    return outcome.rows, missing


def _protocol_line(req) -> str:
    """The settings that change the numbers, printed with them (as trtexec does)."""
    count = (f"until the 95% CI of the {req.stat} is within ±{req.target_ci:.1%} "
             f"({req.min_iters}..{req.iters} iterations"
             + (f", at most {req.time_budget:g} s" if req.time_budget else "") + ")"
             if req.auto else f"{req.iters} iterations (fixed)")
    return (f"protocol: {req.runtime}, threads {','.join(map(str, req.threads))}, batch "
            f"{','.join(map(str, req.batches))}, {req.schedule} blocks of {req.block}, warm-up {req.warmup}, "
            f"timing {count}")


def _say_interrupted(out, n_rows: int, cluster=None) -> None:
    again = f" --cluster {cluster}" if cluster else ""
    if n_rows:
        print(f"\ninterrupted: the {n_rows} completed rows are kept in {out}; finish with "
              f"`python bench.py run --resume {out}{again}`", file=sys.stderr)
    else:
        print("\ninterrupted before any row was complete; nothing was written", file=sys.stderr)


def _host(node: str) -> str:
    """'hostname (node id prefix)' from a row's node column 'id:hostname'."""
    node_id, _, host = str(node).partition(":")
    return f"{host} ({node_id[:8]})" if node_id and node_id != "-" else host


def summary(rows: list[dict], where: bool = False) -> str:
    from ..textable import render

    def ci(r):
        lo, hi = r.get("median_ci_low_ms"), r.get("median_ci_high_ms")
        return "-" if lo is None or hi is None else f"{lo:.2f}-{hi:.2f}"

    view = [dict(r, ci=ci(r),
                 mean_std=f"{r['mean_ms']:.2f} ± {r['std_ms']:.2f}",
                 known=None if r.get("ci_rel_half_width") is None else f"±{r['ci_rel_half_width']:.1%}",
                 validity="VALID" if r["valid"] else f"INVALID ({r['invalid_reason']})",
                 paper=r["paper_cpu_ms"] if r["device"] == "cpu" else r["paper_gpu_ms"],
                 host=_host(r.get("node", "")))
            for r in rows]
    cols = ["model", "variant", "runtime", "threads", "batch", "resolution", "median_ms", "ci",
            "mean_std", "known", "p99_ms", "first_run_ms", "iters", "paper", "validity"]
    if where:  # a fleet run: which machine each number is from
        cols.insert(1, "host")
    heads = {"median_ms": "median ms", "ci": "95% CI", "mean_std": "mean ± std", "p99_ms": "p99",
             "first_run_ms": "first run", "resolution": "res", "paper": "paper ms", "known": "CI ±"}
    return render(view, cols, heads)
