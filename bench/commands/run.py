"""bench.py run: time models and write one results CSV (with samples) per run."""
from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

from ..errors import UsageError


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
    p.add_argument("--min-valid-iters", type=int, default=None)
    p.add_argument("--max-cv", type=float, default=None)
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
        dynamic_batch=args.dynamic_batch, **kw)


def _default_out(args, req) -> Path:
    label = args.suite or (req.models[0] if len(req.models) == 1 else "models")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(args.results_dir) / f"{stamp}-{label}-{req.runtime}"
    out, k = base.with_suffix(".csv"), 1
    while out.exists():
        out, k = Path(f"{base}-{k}.csv"), k + 1
    return out


def _open_results(args):
    """(writer, request, jobs still to time) for a new run or a --resume.

    Everything that can fail on bad input happens before a file is created; the
    writer holds the results file's lock from here on."""
    from ..pipeline import RunRequest, plan
    from ..store import ResultsWriter, check_new_path

    if args.resume:
        if args.models or args.suite or args.out:
            raise UsageError("--resume takes the run's own request; do not name models, a suite or --out")
        writer, config, done = ResultsWriter.resume(Path(args.resume))
        try:
            req = RunRequest.from_json(config)
            _check_runner(req)
            jobs = [j for j in plan(req) if j.row_id not in set(done["row_id"])]
        except BaseException:
            writer.close()
            raise
        return writer, req, jobs
    req = _request(args)
    out = Path(args.out) if args.out else _default_out(args, req)
    check_new_path(out)
    _check_runner(req)
    return None, req, (out, plan(req))


def _check_runner(req):
    from ..runners import get_runner

    try:
        runner = get_runner(req.runtime)
        runner.check_options(req.options)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
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


def _warn_oversubscribed(req, runner) -> None:
    from ..env import logical_cores

    if runner.device == "cpu" and max(req.threads) > logical_cores():
        print(f"warning: {max(req.threads)} threads asked on {logical_cores()} logical cores: "
              "oversubscribed; timing it anyway and recording the threads used", file=sys.stderr)


def run(args) -> int:
    from ..pipeline import execute, new_run_id
    from ..progress import Progress
    from ..schedule import total_work
    from ..store import ResultsWriter

    writer, req, jobs = _open_results(args)
    runner = _check_runner(req)
    try:
        if writer is None:
            out, jobs = jobs
        else:
            out = writer.path
        if not jobs and args.resume:
            print(f"{out}: every row is already complete; nothing to do")
            return 0
        if not jobs:
            raise UsageError("the request plans no job (an empty --threads, --batch or model list?)")
        prepared = _prepare(jobs, req, runner)
        _warn_oversubscribed(req, runner)
        if writer is None:
            writer = ResultsWriter.create(out, req.to_json())
        bar = Progress(total_work(len(prepared), req.iters, req.warmup, req.block, req.block_warmup),
                       label=f"timing {len(prepared)} on {req.runtime}")
        try:
            rows = execute(prepared, req, writer, new_run_id(), progress=bar)
        except KeyboardInterrupt:
            bar.close()
            _say_interrupted(out, writer.rows_written)
            raise
        bar.close()
    finally:
        if writer is not None:
            # A new run that wrote no row leaves nothing behind.
            writer.close(discard_empty=True)
    print(summary(rows))
    print(f"\n{len(rows)} rows written to {out}")
    return 0


def _say_interrupted(out, n_rows: int) -> None:
    if n_rows:
        print(f"\ninterrupted: the {n_rows} completed rows are kept in {out}; finish with "
              f"`python bench.py run --resume {out}`", file=sys.stderr)
    else:
        print("\ninterrupted before any row was complete; nothing was written", file=sys.stderr)


def summary(rows: list[dict]) -> str:
    from ..table import render

    view = [dict(r, ci=f"{r['median_ci_low_ms']:.2f}-{r['median_ci_high_ms']:.2f}",
                 mean_std=f"{r['mean_ms']:.2f} ± {r['std_ms']:.2f}",
                 validity="VALID" if r["valid"] else f"INVALID ({r['invalid_reason']})",
                 paper=r["paper_cpu_ms"] if r["device"] == "cpu" else r["paper_gpu_ms"])
            for r in rows]
    cols = ["model", "variant", "runtime", "threads", "batch", "resolution", "median_ms", "ci",
            "mean_std", "p99_ms", "first_run_ms", "iters", "paper", "validity"]
    heads = {"median_ms": "median ms", "ci": "95% CI", "mean_std": "mean ± std", "p99_ms": "p99",
             "first_run_ms": "first run", "resolution": "res", "paper": "paper ms"}
    return render(view, cols, heads)
