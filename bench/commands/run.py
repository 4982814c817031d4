"""bench.py run: time models and write one results CSV (with samples) per run."""
from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path


def _int_list(text: str) -> list[int]:
    import argparse
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, not {text!r}") from None


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="benchmark models")
    p.add_argument("models", nargs="*", metavar="MODEL")
    p.add_argument("--suite", help="a named set of models (see `list`), e.g. efficientmod, table1")
    p.add_argument("--runtime", default="ort-cpu", help="runner (default ort-cpu; also torch-cpu, ...)")
    p.add_argument("--threads", type=_int_list, default=[4],
                   help="intra-op threads, comma list (default 4, as in the paper)")
    p.add_argument("--iters", type=int, default=4000, help="timed iterations per model (default 4000)")
    p.add_argument("--warmup", type=int, default=50, help="untimed iterations before timing (default 50)")
    p.add_argument("--batch", type=_int_list, default=[1], help="batch size(s), comma list")
    p.add_argument("--resolution", type=_int_list, default=None,
                   help="input side(s), comma list (default: each model's paper resolution)")
    p.add_argument("--variant", default=None,
                   help="variant(s), comma list; EfficientMod: repeat (released) or reshape")
    p.add_argument("--checkpoint", help="state dict to load into the (single) model, strictly")
    p.add_argument("--out", help="results CSV to create (default: a new file under --results-dir)")
    p.add_argument("--results-dir", default="results")
    p.add_argument("--resume", metavar="FILE", help="finish an interrupted run in FILE")
    p.add_argument("--schedule", choices=("round-robin", "sequential"), default="round-robin")
    p.add_argument("--block", type=int, default=50, help="iterations per round-robin block (default 50)")
    p.add_argument("--block-warmup", type=int, default=2,
                   help="untimed iterations at the start of each block (default 2)")
    p.add_argument("--interleave", type=int, default=0,
                   help="models timed together per group (default 0: all)")
    p.add_argument("--spinning", choices=("on", "off"), default="on",
                   help="ONNX Runtime intra-op spinning (default on, ORT's default)")
    p.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript")
    p.add_argument("--opset", type=int)
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
    g.add_argument("--device-id", type=int, help="CUDA device index (default 0)")
    f = p.add_argument_group("several machines (Ray; see README 'Running on several machines')")
    f.add_argument("--cluster", metavar="ADDRESS",
                   help="run the jobs as Ray tasks on a running Ray cluster (HEAD:6379, or auto)")
    f.add_argument("--on", metavar="LABEL[,LABEL]",
                   help="with --cluster: the nodes to time on, by custom resource, accelerator type "
                        "(e.g. T4) or key=value label; each job runs once per label (default: any node)")
    p.add_argument("--min-valid-iters", type=int, default=None)
    p.add_argument("--max-cv", type=float, default=None)
    p.set_defaults(func=run)


def _request(args):
    from models import list_entries, suites

    from ..errors import UsageError
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
    variants = [v.strip() for v in args.variant.split(",")] if args.variant else [None]
    kw = {}
    if args.min_valid_iters is not None:
        kw["min_valid_iters"] = args.min_valid_iters
    if args.max_cv is not None:
        kw["max_cv"] = args.max_cv
    options = {k: v for k, v in (
        ("precision", args.precision), ("cudnn_algo_search", args.cudnn_algo_search),
        ("cuda_graphs", args.cuda_graphs), ("end_to_end", args.end_to_end),
        ("compile_mode", args.compile_mode), ("device_id", args.device_id)) if v is not None}
    return RunRequest(
        options=options, models=names, runtime=args.runtime, variants=variants, threads=args.threads,
        batches=args.batch, resolutions=args.resolution or [None], iters=args.iters,
        warmup=args.warmup, block=args.block, block_warmup=args.block_warmup,
        schedule=args.schedule, interleave=args.interleave, spinning=args.spinning == "on",
        checkpoint=args.checkpoint, exporter=args.exporter, opset=args.opset,
        dynamic_batch=args.dynamic_batch, on=_fleet().parse_on(args.on), **kw)


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


def run(args) -> int:
    from ..errors import UsageError
    from ..pipeline import RunRequest, plan
    from ..results import COLUMNS, check_writable_new, read_results, read_run_config
    from ..runners import get_runner

    if args.on is not None and not args.cluster:
        raise UsageError("--on places jobs on the nodes of a Ray cluster; give --cluster ADDRESS too")
    if args.resume:
        if args.models or args.suite or args.out or args.on is not None:
            raise UsageError("--resume takes the run's own request; do not name models, a suite, --on or --out")
        out = Path(args.resume)
        df = read_results(out)
        if list(df.columns) != COLUMNS:
            missing = [c for c in COLUMNS if c not in df.columns]
            raise UsageError(f"{out} was written with another results schema"
                             + (f" (no column {missing[0]!r})" if missing else "")
                             + "; it cannot be resumed by this version, start a new run")
        done = set(df["row_id"])
        req = RunRequest.from_json(read_run_config(out))
        if req.on and not args.cluster:
            raise UsageError(f"{out} is a fleet run on {','.join(req.on)}; finish it with "
                             f"--resume {out} --cluster ADDRESS")
    else:
        req = _request(args)
        out = Path(args.out) if args.out else _default_out(args, req)
        check_writable_new(out)
        done = set()

    try:
        runner = get_runner(req.runtime)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        runner.check_options(req.options)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.cluster and "device_id" in req.options:
        raise UsageError("--device-id does not apply to --cluster: Ray gives each task one GPU, "
                         "its only visible device; pick machines with --on")
    jobs = [j for j in plan(req) if j.row_id not in done]
    if not jobs:
        print(f"{out}: every row is already complete; nothing to do")
        return 0
    if not args.cluster:
        return _run_here(args, req, runner, jobs, out)
    # A fleet run: the nodes check their own runtime; the driver may have none.
    fleet = _fleet()
    from ..env import REPO_ROOT

    try:
        cluster = fleet.connect(args.cluster, REPO_ROOT)
        gpu = runner.device != "cpu"
        nodes = fleet.live_nodes()
        targets = dict(zip(req.on or [None], fleet.resolve_targets(req.on, nodes, gpu)))
        for line in fleet.check_slots(nodes):
            print(line, file=sys.stderr)
        warm = fleet.warm_up(list(targets.values()), nodes, req.runtime, gpu)
        return _run_on_fleet(args, req, runner, jobs, out, cluster, targets, gpu, warm)
    finally:
        fleet.disconnect()


def _prepare(req, runner, jobs):
    from ..pipeline import prepare_all

    # Bad input must end in one line: progress goes to a terminal only (it is
    # overwritten in place), and the warning comes once everything is prepared.
    tty = sys.stderr.isatty()
    t0 = time.monotonic()

    def announce(i, job):
        if tty:
            sys.stderr.write(f"\rpreparing {i}/{len(jobs)}: {job.model} ({job.variant}, "
                             f"{job.resolution}px, batch {job.batch})\033[K")
            sys.stderr.flush()

    try:
        prepared = prepare_all(jobs, req, runner.artifact, announce)
    except BaseException:
        if tty:  # leave the terminal line to the error message alone
            sys.stderr.write("\r\033[K")
        raise
    done_line = f"prepared {len(prepared)} jobs in {time.monotonic() - t0:.0f} s (built, exported, parity-checked)"
    print("\r" + done_line + "\033[K" if tty else done_line, file=sys.stderr)
    return prepared


def _writer(args, req, out):
    from ..results import ResultsWriter

    return ResultsWriter(out) if args.resume else ResultsWriter.create(out, req.to_json())


def _run_here(args, req, runner, jobs, out) -> int:
    from ..env import logical_cores
    from ..pipeline import execute, new_run_id
    from ..progress import Progress
    from ..schedule import total_work

    runner.check_available()
    prepared = _prepare(req, runner, jobs)
    if runner.device == "cpu" and max(req.threads) > logical_cores():
        print(f"warning: {max(req.threads)} threads asked on {logical_cores()} logical cores: "
              "oversubscribed; timing it anyway and recording the threads used", file=sys.stderr)

    writer = _writer(args, req, out)
    run_id = new_run_id()
    n_sessions = len(prepared)
    bar = Progress(total_work(n_sessions, req.iters, req.warmup, req.block, req.block_warmup),
                   label=f"timing {n_sessions} on {req.runtime}")
    try:
        rows = execute(prepared, req, writer, run_id, progress=bar)
    except KeyboardInterrupt:
        bar.close()
        raise _Interrupted(out) from None
    bar.close()
    print(summary(rows))
    print(f"\n{len(rows)} rows written to {out}")
    return 0


def _run_on_fleet(args, req, runner, jobs, out, cluster, targets, gpu, warm) -> int:
    from ..env import machine_env
    from ..pipeline import interleave_groups, new_run_id

    fleet = _fleet()
    # Prepared here too: bad input fails before anything runs, as in a local run,
    # and the driver's artifact SHA-256s are what each node's are compared with.
    prepared = _prepare(req, runner, jobs)
    broken = fleet.warm_up_errors(warm, timeout=fleet.WARM_UP_WAIT_S)
    if broken:
        more = f" (and {len(broken) - 1} more nodes)" if len(broken) > 1 else ""
        raise fleet.FleetError(f"{broken[0]}{more}; nothing was run")
    groups = interleave_groups(prepared, req.interleave)
    writer = _writer(args, req, out)
    where = ", ".join(t.label or "any node" for t in targets.values())
    print(f"submitting {len(groups)} groups ({len(prepared)} jobs) to the cluster at {cluster} ({where})",
          file=sys.stderr)
    try:
        outcome = fleet.execute(groups, targets, req, writer, new_run_id(), cluster, gpu, machine_env())
    except KeyboardInterrupt:
        raise _Interrupted(out, cluster) from None
    if outcome.rows:
        print(summary(outcome.rows, where=True))
    print(f"\n{len(outcome.rows)} rows written to {out}")
    if outcome.missing:
        why = outcome.missing[0][1]
        raise fleet.FleetError(f"{len(outcome.missing)} of {len(jobs)} rows missing ({why}); finish with "
                               f"`python bench.py run --resume {out} --cluster {args.cluster}`")
    return 0


def _host(node: str) -> str:
    """'hostname (node id prefix)' from a row's node column 'id:hostname'."""
    node_id, _, host = str(node).partition(":")
    return f"{host} ({node_id[:8]})" if node_id and node_id != "-" else host


class _Interrupted(KeyboardInterrupt):
    def __init__(self, out, cluster=None):
        super().__init__()
        again = f" --cluster {cluster}" if cluster else ""
        print(f"\ninterrupted: completed rows are kept in {out}; finish with "
              f"`python bench.py run --resume {out}{again}`", file=sys.stderr)


def summary(rows: list[dict], where: bool = False) -> str:
    from ..table import render

    view = [dict(r, ci=f"{r['median_ci_low_ms']:.2f}-{r['median_ci_high_ms']:.2f}",
                 mean_std=f"{r['mean_ms']:.2f} ± {r['std_ms']:.2f}",
                 validity="VALID" if r["valid"] else f"INVALID ({r['invalid_reason']})",
                 paper=r["paper_cpu_ms"] if r["device"] == "cpu" else r["paper_gpu_ms"],
                 host=_host(r.get("node", "")))
            for r in rows]
    cols = ["model", "variant", "runtime", "threads", "batch", "resolution", "median_ms", "ci",
            "mean_std", "p99_ms", "first_run_ms", "iters", "paper", "validity"]
    if where:  # a fleet run: which machine each number is from
        cols.insert(1, "host")
    heads = {"median_ms": "median ms", "ci": "95% CI", "mean_std": "mean ± std", "p99_ms": "p99",
             "first_run_ms": "first run", "resolution": "res", "paper": "paper ms"}
    return render(view, cols, heads)
