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
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="registry names, or your own: timm:NAME, PATH.onnx, module.path:function")
    p.add_argument("--suite", help="a named set of models (see `list`), e.g. efficientmod, table1")
    p.add_argument("--runtime", default="ort-cpu", help="runner (default ort-cpu; also torch-cpu, ...)")
    p.add_argument("--threads", type=_int_list, default=[4],
                   help="intra-op threads, comma list (default 4, as in the paper)")
    p.add_argument("--iters", type=int, default=4000, help="timed iterations per model (default 4000)")
    p.add_argument("--warmup", type=int, default=50, help="untimed iterations before timing (default 50)")
    p.add_argument("--batch", type=_int_list, default=None, help="batch size(s), comma list (default 1)")
    p.add_argument("--resolution", type=_int_list, default=None,
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

    from ..cli import UsageError
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
        batches=args.batch or [1], resolutions=args.resolution or [None], iters=args.iters,
        warmup=args.warmup, block=args.block, block_warmup=args.block_warmup,
        schedule=args.schedule, interleave=args.interleave, spinning=args.spinning == "on",
        checkpoint=args.checkpoint, exporter=args.exporter, opset=args.opset,
        dynamic_batch=args.dynamic_batch, model_args=model_args, top1=top1, **kw)


def _own_models(args, names: list[str]) -> tuple[dict, dict]:
    """Check the bring-your-own specs now (one line on bad input) and return the
    --model-arg and --top1 values the request stores for --resume; ONNX specs in
    `names` become absolute paths."""
    from models import is_spec, parse_model_args, parse_top1, resolve_spec
    from models.byo import check_onnx_shape, duplicate_names, unknown_top1_names

    from ..cli import UsageError

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


def _default_out(args, req) -> Path:
    label = args.suite or (req.models[0] if len(req.models) == 1 else "models")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(args.results_dir) / f"{stamp}-{label}-{req.runtime}"
    out, k = base.with_suffix(".csv"), 1
    while out.exists():
        out, k = Path(f"{base}-{k}.csv"), k + 1
    return out


def run(args) -> int:
    from ..cli import UsageError
    from ..env import logical_cores
    from ..pipeline import RunRequest, execute, new_run_id, plan, prepare_all
    from ..progress import Progress
    from ..results import ResultsWriter, check_writable_new, read_results, read_run_config
    from ..runners import get_runner
    from ..schedule import total_work

    if args.resume:
        if args.models or args.suite or args.out:
            raise UsageError("--resume takes the run's own request; do not name models, a suite or --out")
        out = Path(args.resume)
        done = set(read_results(out)["row_id"])
        req = RunRequest.from_json(read_run_config(out))
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
    runner.check_available()
    jobs = [j for j in plan(req) if j.row_id not in done]
    if not jobs:
        print(f"{out}: every row is already complete; nothing to do")
        return 0
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
    if runner.device == "cpu" and max(req.threads) > logical_cores():
        print(f"warning: {max(req.threads)} threads asked on {logical_cores()} logical cores: "
              "oversubscribed; timing it anyway and recording the threads used", file=sys.stderr)

    writer = ResultsWriter(out) if args.resume else ResultsWriter.create(out, req.to_json())
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


class _Interrupted(KeyboardInterrupt):
    def __init__(self, out):
        super().__init__()
        print(f"\ninterrupted: completed rows are kept in {out}; finish with "
              f"`python bench.py run --resume {out}`", file=sys.stderr)


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
