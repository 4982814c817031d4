"""bench.py run: time models and write one results CSV (with samples) per run."""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import sys
import textwrap
import time
from pathlib import Path

from modbench.common.errors import UsageError
from modbench.common.fsio import portable_name
from modbench.common.invocation import command

from .. import fleet
from ..env import machine_env
from ..measurement import short_codes, split_codes
from ..pipeline import DEFAULT_REFERENCE, RunRequest, interleave_groups, new_run_id, plan, prepare_all
from ..progress import TerminalStatus
from ..runplan import (DEFAULT_PROTOCOL, DEFAULT_REQUEST, DEFAULT_RULE, DEFAULT_TIME_BUDGET_S,
                       OVERSUBSCRIBED_LIMIT, check_request, protocol_line, request_from_args, resume_conflicts,
                       say_interrupted, time_request)
from ..store import ResultsWriter, check_new_path, samples_file_of
from ..textable import render
from . import COMMANDS
from . import _args as A


# The options' defaults are the typed settings' own (bench/runplan.py); the parser's are
# None, "not given", which is how --resume tells what a command line asks.
D, PROTO, RULE, BUDGET = DEFAULT_REQUEST, DEFAULT_PROTOCOL, DEFAULT_RULE, DEFAULT_TIME_BUDGET_S


def add_parser(sub) -> None:
    p = sub.add_parser("run", help=COMMANDS["run"],
                       description="Time models (interleaved, in blocks) and write one results CSV with "
                                   "their samples; the summary marks each row VALID or INVALID.",
                       **A.examples(
                           "run efficientmod_xxs mobilenetv2_100 timm:resnet18 --iters 200",
                           "run --suite table1                 # the paper's Table 1, about 10 min",
                           "run mynet:build efficientmod_xs --top1 mynet:build=77.1   # mynet.py on sys.path",
                           "run --resume results/run-....csv   # finish an interrupted run"))
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="registry names, or your own: timm:NAME, PATH.onnx, module.path:function, "
                        "PATH.py:function")
    p.add_argument("--suite", help="a named set of models (see `list`), e.g. efficientmod, table1")
    p.add_argument("--runtime",
                   help=f"runner (default {D.runtime}); also torch-cpu, ort-cuda, ort-trt, torch-cuda, "
                        "torch-compile-cuda, coreml-cpu, coreml-gpu, coreml-all (see `gpu`)")
    p.add_argument("--threads", type=A.thread_list, default=None,
                   help="intra-op threads, comma list (default: the paper's 4 where the machine has 4 "
                        "physical cores, else its physical cores; --threads 4 is the paper's setting)")
    p.add_argument("--iters", type=A.iterations_or_auto,
                   help="timed iterations per model: 'auto' (default) times until the 95%% CI of each "
                        "row's headline statistic is within --target-ci, between --min-iters and "
                        "--max-iters; a number N times exactly N (the paper: --iters 4000)")
    p.add_argument("--target-ci", type=A.open_unit_fraction, metavar="FRACTION",
                   help=f"wanted 95%% CI half-width of the headline statistic, relative (default "
                        f"{RULE.target_ci:g} = {RULE.target_ci * 100:g}%%); "
                        "a row whose interval is wider is INVALID")
    p.add_argument("--stat", choices=("median", "mean"),
                   help=f"headline statistic the interval is about (default {RULE.stat}; the paper reports means)")
    p.add_argument("--min-iters", type=A.iterations,
                   help=f"auto: iterations before stopping (default {RULE.min_iters})")
    p.add_argument("--max-iters", type=A.iterations, help=f"auto: most iterations per row (default {PROTO.iters})")
    p.add_argument("--time-budget", type=A.positive_float, metavar="SECONDS",
                   help=f"auto: stop timing after this many seconds per interleave group (default {BUDGET:g}: "
                        "the default run ends in about 10 minutes; a row not yet precise is INVALID)")
    p.add_argument("--reference", metavar="MODEL|none",
                   help="a registry model timed beside every interleave group in the same rounds (CPU "
                        f"runtimes); each row then gets its latency relative to it, paired round by round, and "
                        f"calibrated ms, and with --iters auto is timed until that figure is within --target-ci "
                        f"(default: {DEFAULT_REFERENCE} for --iters auto, the default, round-robin on a CPU "
                        "runtime; none for a fixed count)")
    p.add_argument("--busy-cores", type=A.positive_float,
                   help=f"a block is disturbed when other processes used more cores than this (default {D.busy_cores:g})")
    p.add_argument("--max-disturbed", type=A.fraction,
                   help=f"a row with more disturbed blocks than this share is INVALID (default {D.max_disturbed:g})")
    p.add_argument("--warmup", type=A.non_negative_int,
                   help=f"untimed iterations before timing (default {PROTO.warmup})")
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
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="what to print at the end: a table (default) or JSON (docs/json-output.md)")
    p.add_argument("--results-dir", default="results",
                   help="where a run without --out writes its new CSV (default results/)")
    p.add_argument("--resume", metavar="FILE", help="finish an interrupted run in FILE")
    p.add_argument("--force-threads", action="store_true",
                   help=f"time --threads above {OVERSUBSCRIBED_LIMIT}x the logical cores anyway (refused otherwise)")
    p.add_argument("--schedule", choices=("round-robin", "sequential"),
                   help="round-robin (default): models take turns block by block, so drift hits all "
                        "alike; sequential: one model after another")
    p.add_argument("--block", type=A.positive_int, help=f"iterations per round-robin block (default {PROTO.block})")
    p.add_argument("--block-warmup", type=A.non_negative_int,
                   help=f"untimed iterations at the start of each block (default {PROTO.block_warmup})")
    p.add_argument("--interleave", type=A.non_negative_int,
                   help=f"models timed together per group (default {D.interleave}: all)")
    p.add_argument("--spinning", choices=("on", "off"),
                   help=f"ONNX Runtime intra-op spinning (default {'on' if D.spinning else 'off'}, ORT's default)")
    p.add_argument("--exporter", choices=("torchscript", "dynamo"),
                   help=f"torch's ONNX exporter (default {D.exporter})")
    p.add_argument("--opset", type=A.opset, help="ONNX opset (default: the exporter's)")
    p.add_argument("--dynamic-batch", action="store_true", default=None,
                   help="export with a dynamic batch axis (default: static shapes, as deployed)")
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
    f = p.add_argument_group("several machines (Ray; see docs/fleet.md)")
    f.add_argument("--cluster", metavar="ADDRESS",
                   help="run the jobs as Ray tasks on a running Ray cluster (HEAD:6379, or auto)")
    f.add_argument("--on", metavar="LABEL[,LABEL]",
                   help="with --cluster: the nodes to time on, by custom resource, accelerator type "
                        "(e.g. T4) or key=value label; each job runs once per label (default: any node)")
    p.set_defaults(func=run)


def _default_out(args, req) -> Path:
    label = args.suite or (Path(req.models[0]).name if len(req.models) == 1 else "models")
    label = portable_name(label)  # a spec (mynet:build, src/net.py:build) is not a file name
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(args.results_dir) / f"{stamp}-{label}-{req.runtime}"
    out, k = base.with_suffix(".csv"), 1
    while out.exists():
        out, k = Path(f"{base}-{k}.csv"), k + 1
    return out


def _open_results(args):
    """(writer or None, request, jobs still to time, results path) for a new run or a
    --resume. Everything that can fail on bad input happens before a file is created;
    a resumed file's writer holds its lock from here on."""
    if args.on is not None and not args.cluster:
        raise UsageError("--on places jobs on the nodes of a Ray cluster; give --cluster ADDRESS too")
    if args.resume:
        if args.models or args.suite or args.out or args.on is not None:
            raise UsageError("--resume takes the run's own request; do not name models, a suite, --on or --out")
        writer, config, done = ResultsWriter.resume(Path(args.resume))
        try:
            req = RunRequest.from_json(config)
            differ = resume_conflicts(args, req)
            if differ:
                raise UsageError(f"--resume finishes the run as it was asked (its request is stored beside it); "
                                 f"{'; '.join(differ)} would not apply: drop "
                                 f"{'it' if len(differ) == 1 else 'them'}, or start a new run")
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
    req = request_from_args(args)
    out = Path(args.out) if args.out else _default_out(args, req)
    check_new_path(out)  # proves the folder writable by writing, without creating anything
    return None, req, plan(req), out


def software_changes(done) -> list[str]:
    """Notes for a --resume whose new rows will come from other code or libraries
    than the rows already there (each row records its own; this says it once)."""
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


def _prepare(jobs, req, runner):
    """Build, export and parity-check every job; progress on a terminal only, so
    bad input still ends in one line."""
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


def run(args) -> int:
    if args.format != "json":
        return _run(args, sys.stdout)
    # JSON on stdout is for a program: whatever the user's code prints while it is
    # imported, built and timed goes to stderr, so stdout holds the document alone.
    document = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        return _run(args, document)


def _run(args, stdout) -> int:
    writer, req, jobs, out = _open_results(args)
    try:
        runner = check_request(req, force_threads=args.force_threads, cluster=bool(args.cluster))
        if not jobs and args.resume:
            print(rows_json([], out) if args.format == "json" else
                  f"{out}: every row is already complete; nothing to do", file=stdout)
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
    if args.format == "json":
        print(rows_json(rows, out), file=stdout)
        print(f"{len(rows)} rows written to {out}", file=sys.stderr)
    else:
        print(summary(rows, where=bool(args.cluster)))
        print(f"\n{len(rows)} rows written to {out}")
        if rows:
            print(next_steps(out))
    if missing:
        raise missing
    return 0


def _run_here(args, req, runner, jobs, out, writer) -> list[dict]:
    # The Python API's timing, so `run` and bench.api.measure cannot drift apart.
    return time_request(req, jobs, out, writer=writer,
                        default_threads_note=not args.resume and args.threads is None)


def _run_on_fleet(args, req, runner, jobs, out, writer):
    """(rows, the error to raise for missing rows or None): the run's groups as Ray tasks."""
    try:
        cluster = fleet.connect(args.cluster)
        gpu = runner.device != "cpu"
        nodes = fleet.live_nodes()
        placements = dict(zip(req.on or [None], fleet.resolve_placements(req.on, nodes, gpu)))
        for line in fleet.check_slots(nodes):
            print(line, file=sys.stderr)
        warm = fleet.warm_up(list(placements.values()), nodes, req.runtime, gpu)
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
            where = ", ".join(t.label or "any node" for t in placements.values())
            print(f"submitting {len(groups)} groups ({len(prepared)} jobs) to the cluster at {cluster} ({where})",
                  file=sys.stderr)
            print(protocol_line(req), file=sys.stderr)
            try:
                outcome = fleet.execute(groups, placements, req, writer, new_run_id(), cluster, gpu, machine_env())
            except KeyboardInterrupt:
                say_interrupted(out, writer.rows_written, cluster)
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
                                   f"`{command()} run --resume {out} --cluster {args.cluster}`")
    return outcome.rows, missing


def _host(node: str) -> str:
    """'hostname (node id prefix)' from a row's node column 'id:hostname'."""
    node_id, _, host = str(node).partition(":")
    return f"{host} ({node_id[:8]})" if node_id and node_id != "-" else host


JSON_VERSION = 1
# The row fields `run --format json` prints, besides the headline (docs/json-output.md).
JSON_FIELDS = ("row_id", "model", "variant", "runtime", "device", "precision", "threads", "batch",
               "resolution", "median_ms", "median_ci_low_ms", "median_ci_high_ms", "mean_ms", "std_ms",
               "p99_ms", "first_run_ms", "iters", "valid", "invalid_reason", "invalid_codes", "samples_file",
               "node", "rel_reference", "rel_latency", "rel_ci_low", "rel_ci_high", "calibrated_ms",
               "calibrated_ci_low_ms", "calibrated_ci_high_ms", "calibration")


def rows_json(rows: list[dict], out) -> str:
    """The run's rows as JSON (schema version JSON_VERSION). `latency_ms` is the
    headline figure, the median where a row has no other."""
    def val(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v.item() if hasattr(v, "item") else v

    def headline(r, key, fallback):
        v = r.get(key)
        return val(r.get(fallback)) if v is None or (isinstance(v, float) and v != v) else val(v)

    out_rows = []
    for r in rows:
        d = {k: val(r.get(k)) for k in JSON_FIELDS}
        d["samples_file"] = r.get("samples_file") or samples_file_of(out, r["row_id"])
        d["latency_ms"] = headline(r, "latency_ms", "median_ms")
        d["latency_ci_low_ms"] = headline(r, "latency_ci_low_ms", "median_ci_low_ms")
        d["latency_ci_high_ms"] = headline(r, "latency_ci_high_ms", "median_ci_high_ms")
        lat = r.get("latency_ms")
        d["latency_stat"] = r.get("latency_stat") if lat is not None and lat == lat else "median of all samples"
        d["invalid_codes"] = list(split_codes(r.get("invalid_codes")))
        d["rel_codes"] = list(split_codes(r.get("rel_codes")))
        out_rows.append(d)
    return json.dumps({"kind": "modbench.run", "version": JSON_VERSION, "results": str(out),
                       "rows": out_rows}, indent=2, default=str)


SUMMARY_WIDTH = 100
MODEL_WIDTH = 26


def validity_code(r: dict) -> str:
    """'VALID', or 'INVALID' with how precise the row is and a word for each other
    code (the full reasons are listed under the table)."""
    return short_codes(split_codes(r.get("invalid_codes")), r.get("ci_rel_half_width"))


def _short(text: str, width: int) -> str:
    text = str(text)
    return text if len(text) <= width else text[: width - 1] + "…"


def _headline(r: dict) -> tuple:
    """(figure's name, value, low, high): latency_ms where the row has it, else the median."""
    lat = r.get("latency_ms")
    if isinstance(lat, (int, float)) and lat == lat:
        return "latency ms", lat, r.get("latency_ci_low_ms"), r.get("latency_ci_high_ms")
    return "median ms", r.get("median_ms"), r.get("median_ci_low_ms"), r.get("median_ci_high_ms")


def summary(rows: list[dict], where: bool = False) -> str:
    """The rows as a table that fits 100 columns: settings shared by every row on one
    line above it, a short validity code per row, the full reasons below it."""
    if not rows:
        return "no rows"
    figure = _headline(rows[0])[0]

    def ci(r):
        _, _, lo, hi = _headline(r)
        ok = all(isinstance(v, (int, float)) and v == v for v in (lo, hi))
        return f"{lo:.2f}-{hi:.2f}" if ok else "-"

    def rel(r):
        est, lo, hi = r.get("rel_latency"), r.get("rel_ci_low"), r.get("rel_ci_high")
        if not isinstance(est, (int, float)) or est != est:
            return "ref" if (r.get("rel_reference") is None and "reference_of_group" in str(r.get("extra"))) else "-"
        half = f" ±{(hi - lo) / 2 / est:.1%}" if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) else ""
        return f"{est:.3f}{half}{'‡' if r.get('rel_codes') else ''}"

    view = [dict(r, model=_short(r["model"], MODEL_WIDTH), head=_headline(r)[1], ci=ci(r), rel=rel(r),
                 validity=validity_code(r),
                 paper=r["paper_cpu_ms"] if r["device"] == "cpu" else r["paper_gpu_ms"],
                 host=_short(_host(r.get("node", "")), 18))
            for i, r in enumerate(rows, 1)]
    varying = [c for c in ("variant", "runtime", "threads", "batch", "resolution")
               if len({str(r.get(c)) for r in rows}) > 1]
    shared = [f"{c} {rows[0].get(c)}" for c in ("runtime", "threads", "batch", "resolution") if c not in varying]
    # No separate "CI ±" column: the validity code carries it where it failed.
    cols = ["model"] + varying + ["head", "ci", "paper", "validity"]
    reference = next((r["rel_reference"] for r in rows if r.get("rel_reference")), None)
    if reference:  # timed beside a reference: the figure a shared machine reproduces
        cols.insert(cols.index("paper"), "rel")
    if where:  # a fleet run: which machine each number is from
        cols.insert(1, "host")
    heads = {"head": figure, "ci": "95% CI", "resolution": "res", "paper": "paper ms",
             "threads": "thr", "rel": f"vs {_short(reference or '', 16)}"}
    lines = []
    if shared:
        lines.append("all rows: " + ", ".join(shared))
    table = render(view, cols, heads)
    # Many settings varying at once: the paper's figure goes first, then the variant's width.
    for drop in ("paper", "variant"):
        if max(map(len, table.splitlines())) > SUMMARY_WIDTH and drop in cols:
            cols.remove(drop)
            table = render(view, cols, heads)
    lines.append(table)
    if reference:
        lines.append(textwrap.fill(
            f"vs {reference}: latency relative to {reference}, timed beside each row in the same rounds (±: its "
            "95% interval; ‡: wider than --target-ci); on a shared machine this is the figure that reproduces. "
            "calibrated_ms in the results file is it times the reference's latency kept for this machine.",
            SUMMARY_WIDTH))
    bad = [(i, r) for i, r in enumerate(rows, 1) if not r["valid"]]
    if bad:
        lines.append("")
        lines.append("why INVALID (a row's number is printed, but not to be trusted as it is):")
        for i, r in bad:
            who = f"{r['model']} on {_host(r.get('node', ''))}" if where else r["model"]
            why = f"{who}: {r.get('invalid_reason') or 'failed its validity check'}"
            lines.append(textwrap.fill(why, SUMMARY_WIDTH, initial_indent="  ", subsequent_indent="    "))
    return "\n".join(lines)


def next_steps(out) -> str:
    """What to do with the file just written."""
    report = f"{command()} report {out} --out report-{Path(out).stem}"
    claims = f"{command()} claims {out}"
    w = max(len(report), len(claims))
    return (f"next:\n  {report.ljust(w)}   # tables, plots, claims\n"
            f"  {claims.ljust(w)}   # the paper's claims, judged")
