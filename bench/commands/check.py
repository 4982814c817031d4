"""bench.py check: judge a run against a baseline; exit 1 on a regression.

Exit codes: 0 no regression, 1 at least one model slower (or, with --strict,
not comparable), 2 bad input (one line on stderr)."""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from modbench.common.errors import UsageError
from modbench.common.fsio import check_new_output, write_new
from modbench.models import is_spec

from ..env import cpu_fingerprint
from ..gate import baselines, render
from ..gate.interleaved import compare_ab, run_ab
from ..gate.verdicts import GateSettings, compare_runs, read_run, run_fingerprints
from ..runners import get_runner
from ..schedule import TimingProtocol
from ..specs import entry_names
from . import COMMANDS
from . import _args as A


def _assign(text: str) -> tuple[str, str]:
    if text.count("=") != 1 or not all(text.split("=")):
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, not {text!r}")
    a, b = text.split("=")
    return a.strip(), b.strip()


MIN_AB_BLOCKS = 3
# Seconds a model the interleaved gate may time until its change is decided.
DEFAULT_BUDGET_S = 180.0
STDOUT = "-"  # --markdown - / --junit -: the document on standard output


def add_parser(sub) -> None:
    p = sub.add_parser("check", help=COMMANDS["check"],
                       **A.examples("check results/now.csv --against results/before.csv",
                                    "check results/now.csv --baseline main",
                                    "check --interleaved --baseline main   # time both sides now"))
    p.add_argument("current", nargs="?", metavar="CURRENT.csv",
                   help="results of the current code (or, alone, an interleaved results file)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--baseline", metavar="NAME", help="a saved baseline of this machine (the baseline command)")
    src.add_argument("--against", metavar="BASE.csv", help="a baseline results file given by path")
    p.add_argument("--baseline-dir", default="baselines", help="where baselines live (default baselines/)")
    p.add_argument("--threshold", type=A.fraction, default=0.05,
                   help="minimum effect that counts as a change (default 0.05 = 5%%)")
    p.add_argument("--threshold-for", type=_assign, action="append", default=[], metavar="MODEL=FRAC",
                   help="per-model threshold, repeatable (e.g. efficientmod_s=0.1)")
    p.add_argument("--alpha", type=A.open_unit_float, default=0.01,
                   help="significance level of the test and 1 - confidence of the interval (default 0.01)")
    p.add_argument("--reference", metavar="MODEL",
                   help="judge each model by its latency relative to MODEL, timed in the same runs")
    p.add_argument("--pair", type=_assign, action="append", default=[], metavar="CURRENT=BASELINE",
                   help="judge current model CURRENT against baseline model BASELINE (renamed models)")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="compare even if machine fingerprints or settings differ")
    p.add_argument("--strict", action="store_true", help="exit 1 also when a row is not comparable")
    p.add_argument("--markdown", metavar="FILE", help="write a Markdown summary (pull-request comment); - for stdout")
    p.add_argument("--junit", metavar="FILE", help="write JUnit XML; - for stdout")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="what to print: a table (default) or JSON (docs/json-output.md)")
    p.add_argument("--boot", type=A.positive_int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=A.non_negative_int, default=0,
                   help="bootstrap seed (default 0: verdicts are reproducible)")
    ab = p.add_argument_group("interleaved mode (time the baseline's ONNX files and the current code alternately)")
    ab.add_argument("--interleaved", action="store_true",
                    help="time now, against the ONNX files saved with --baseline NAME")
    ab.add_argument("--models", help="interleaved: only these models (comma list of names or specs: "
                    "timm:NAME, module:function, PATH.py:function), imported from the current directory")
    ab.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                    help="interleaved: keyword argument for module:function models (repeatable)")
    ab.add_argument("--iters", type=A.iterations, default=300, help="interleaved: iterations per side (default 300)")
    ab.add_argument("--warmup", type=A.non_negative_int, default=20,
                    help="--interleaved: untimed iterations before timing (default 20)")
    ab.add_argument("--block", type=A.positive_int, default=25, help="interleaved: iterations per block (default 25)")
    ab.add_argument("--time-budget", type=A.positive_float, default=DEFAULT_BUDGET_S, metavar="SECONDS",
                    help=f"interleaved: a model whose change is still inconclusive after --iters is timed again, "
                         f"--iters more a side, within this many seconds a model (default {DEFAULT_BUDGET_S:g})")
    ab.add_argument("--out", help="interleaved: results file to create (default results/<time>-ab.csv)")
    p.set_defaults(func=run)


def _settings(args):
    if not 0 < args.alpha < 0.5:
        raise UsageError(f"--alpha must be in (0, 0.5), not {args.alpha}")
    if args.boot < 100:
        raise UsageError(f"--boot must be at least 100, not {args.boot}")
    per = {}
    for model, val in args.threshold_for:
        try:
            per[model] = A.fraction(val)
        except Exception:
            raise UsageError(f"--threshold-for {model}={val}: expected a fraction like 0.1 or 10%") from None
    return GateSettings(threshold=args.threshold, per_model=per, alpha=args.alpha, n_boot=args.boot,
                        seed=args.seed, reference=args.reference, pairs=dict(args.pair),
                        allow_mismatch=args.allow_mismatch)


def run(args) -> int:
    s = _settings(args)
    _probe_outputs(args)
    if args.interleaved:
        if not args.baseline or args.current:
            raise UsageError("--interleaved times now against --baseline NAME; do not name CURRENT.csv")
        if args.reference:
            raise UsageError("--reference is not needed with --interleaved: the baseline is its own reference")
        blocks = args.iters // args.block
        if blocks < MIN_AB_BLOCKS:
            # One block has no spread: its interval has zero width and calls anything "unchanged".
            raise UsageError(f"--interleaved --iters {args.iters} with --block {args.block} is {blocks} paired "
                             f"block(s); an interval needs at least {MIN_AB_BLOCKS} (e.g. --iters "
                             f"{MIN_AB_BLOCKS * args.block})")
        # The baseline's graphs and the current export, round-robin in blocks, a fixed count.
        protocol = TimingProtocol(iters=args.iters, auto=False, warmup=args.warmup, block=args.block,
                                  block_warmup=2, schedule="round-robin")
        base_csv, manifest = baselines.resolve(args.baseline, cpu_fingerprint(), args.baseline_dir)
        out = Path(args.out) if args.out else Path("results") / (
            dt.datetime.now().strftime("%Y%m%d-%H%M%S") + f"-ab-{args.baseline}.csv")
        get_runner("ort-cpu").check_available()
        models = _current_models(args, manifest)
        run_ab(base_csv, manifest, out, protocol, models=models, pairs=s.pairs,
               log=lambda m: print(m, file=sys.stderr), settings=s, budget_s=args.time_budget)
        print(f"interleaved timings written to {out}", file=sys.stderr)
        comp = compare_ab(out, s)
    elif args.model_arg:
        raise UsageError("--model-arg applies to --interleaved, which builds the current models")
    elif args.current and not (args.baseline or args.against):
        comp = compare_ab(args.current, s)
    else:
        if not args.current:
            raise UsageError("name CURRENT.csv and --baseline NAME or --against BASE.csv")
        if args.against:
            base_csv = Path(args.against)
        else:
            fps = run_fingerprints(read_run(args.current))
            if len(fps) != 1:
                raise UsageError(f"{args.current} mixes machines; compare it --against a file")
            base_csv, _ = baselines.resolve(args.baseline, fps.pop(), args.baseline_dir)
        comp = compare_runs(base_csv, args.current, s)

    # Outputs first: a file that cannot be written is exit 2, never a printed verdict + exit 1.
    documents = [(args.markdown, render.markdown(comp), "--markdown file"),
                 (args.junit, render.junit(comp), "--junit file")]
    for where, text, what in documents:
        if where and where != STDOUT:
            write_new(Path(where), text, what)
    shown = [text for where, text, _ in documents if where == STDOUT]
    # `-` is standard output, as for the JSON: the document alone, without the table.
    print("\n".join(shown) if shown else render.to_json(comp, args.strict) if args.format == "json"
          else render.text(comp))
    return comp.exit_code(args.strict)


def _current_models(args, manifest: dict) -> list[str] | None:
    """The current code's models to time against the baseline, resolved like `run`'s
    (the user's specs imported now, from this checkout): --models, else every model
    the baseline holds."""
    if args.models:
        wanted = [m.strip() for m in args.models.split(",")]
        if not all(wanted):
            raise UsageError(f"--models {args.models!r} has an empty item")
    else:
        wanted = [m for m in manifest.get("models", []) if is_spec(m)]
        if not wanted:
            if args.model_arg:
                raise UsageError("--model-arg applies to module:function models; the baseline holds none")
            return None  # registry models only: every one of the baseline
        wanted = list(manifest.get("models", []))
    return entry_names(wanted, args.model_arg)


def _probe_outputs(args) -> None:
    """Prove --markdown/--junit/--out can be written before judging anything (exit 1 is
    for a regression only, so a bad output must fail first, with exit 2)."""
    inputs = [args.current, args.against]
    if args.current and args.against and Path(args.current).resolve() == Path(args.against).resolve():
        raise UsageError(f"{args.current} is both the current run and the baseline; compare two runs")
    if [args.markdown, args.junit].count(STDOUT) > 1 or (STDOUT in (args.markdown, args.junit)
                                                         and args.format == "json"):
        raise UsageError("only one document can go to standard output ('-'): --markdown, --junit or --format json")
    outs = [(opt, f) for opt, f in (("--markdown", args.markdown), ("--junit", args.junit),
                                    ("--out", args.out)) if f and f != STDOUT]
    for i, (opt, f) in enumerate(outs):
        check_new_output(Path(f), f"{opt} file", inputs=inputs)
        for opt2, f2 in outs[:i]:
            if Path(f).resolve() == Path(f2).resolve():
                raise UsageError(f"{opt} and {opt2} both name {f}; give each output its own file")
