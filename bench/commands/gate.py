"""modbench gate: a pull request's latency gate. The base's models, imported from the
base's checkout, are exported and saved as a baseline; the head's, imported from the
head's checkout, are timed against the base's graphs alternately in one process and
judged (`check --interleaved`). The composite action (action.yml) is this command.

Exit codes: 0 pass, 1 a regression (or, with --fail-on-not-comparable true, a model
that could not be judged), 2 bad input (one line)."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

from modbench.common.errors import ModbenchError, UsageError, first_line
from modbench.common.fsio import ensure_writable_dir, write_new
# Each side imports the user's models from its own checkout: this variable puts the
# checkout's source folder before an installed copy of the user's package.
from modbench.models.byo import USER_PATH_ENV

from ..env import cpu_fingerprint
from ..gate import baselines, render
from ..gate.interleaved import compare_ab, run_ab
from ..gate.pull_request import (Sides, git_label, log_group, parse_bool, shown_path, split_models,
                                 write_github_outputs)
from ..gate.verdicts import Comparison, GateSettings
from ..schedule import TimingProtocol
from ..specs import entry_names
from . import COMMANDS
from . import _args as A
from .check import DEFAULT_BUDGET_S, MIN_AB_BLOCKS

BASELINE_NAME = "pr-base"


def add_parser(sub) -> None:
    p = sub.add_parser("gate", help=COMMANDS["gate"],
                       description="Time a pull request's base and head models alternately on this machine "
                                   "and judge each: the GitHub action's work, runnable anywhere.",
                       **A.examples("gate --models mypkg.net:build --base-ref origin/main",
                                    "gate --models src/net.py:build --base-dir ../base-checkout --iters 600"))
    p.add_argument("--models", required=True, metavar="SPECS",
                   help="model specs separated by commas or newlines (mypkg.net:build, src/net.py:build, timm:NAME)")
    base = p.add_mutually_exclusive_group(required=True)
    base.add_argument("--base-ref", metavar="REF", help="the base commit or ref (checked out into a worktree here)")
    base.add_argument("--base-dir", metavar="DIR", help="a checkout of the base, made by you")
    p.add_argument("--head-dir", default=".", metavar="DIR", help="the head's checkout (default: this folder)")
    p.add_argument("--work", metavar="DIR", help="scratch folder: export cache, results, baseline, summary "
                   "(default: $RUNNER_TEMP/modbench-gate, else .modbench-gate)")
    p.add_argument("--source-dir", default=".", metavar="DIR",
                   help="the folder of each checkout that holds the importable code (e.g. src)")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="keyword argument for module:function models (repeatable)")
    p.add_argument("--iters", type=A.iterations, default=300, help="timed iterations per side (default 300)")
    p.add_argument("--warmup", type=A.non_negative_int, default=20, help="untimed iterations first (default 20)")
    p.add_argument("--block", type=A.positive_int, default=25, help="iterations per alternating block (default 25)")
    p.add_argument("--threshold", type=A.fraction, default=0.05,
                   help="smallest slow-down that counts as a regression (default 0.05 = 5%%)")
    p.add_argument("--time-budget", type=A.positive_float, default=DEFAULT_BUDGET_S, metavar="SECONDS",
                   help=f"a model still inconclusive after --iters is timed again within this many seconds "
                        f"(default {DEFAULT_BUDGET_S:g})")
    p.add_argument("--threads", type=A.thread_count, help="intra-op threads (default: the runner's physical cores)")
    p.add_argument("--resolution", type=A.resolution, help="input side in pixels (default: each model's own)")
    p.add_argument("--fail-on-not-comparable", default="true", metavar="true|false",
                   help="whether a model that could not be judged fails the gate (default true)")
    p.set_defaults(func=run)


def run(args) -> int:
    # Every input is checked before the base is timed.
    models = split_models(args.models)
    strict = parse_bool(args.fail_on_not_comparable, "--fail-on-not-comparable")
    blocks = args.iters // args.block
    if blocks < MIN_AB_BLOCKS:
        raise UsageError(f"--iters {args.iters} with --block {args.block} is {blocks} paired block(s); an "
                         f"interval needs at least {MIN_AB_BLOCKS} (e.g. --iters {MIN_AB_BLOCKS * args.block})")
    head = _folder(args.head_dir, "--head-dir")
    work = Path(args.work or Path(os.environ.get("RUNNER_TEMP") or ".") / (
        "modbench-gate" if os.environ.get("RUNNER_TEMP") else ".modbench-gate")).resolve()
    ensure_writable_dir(work, "--work folder")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    files = {"base": work / f"base-{stamp}.csv", "ab": work / f"ab-{stamp}.csv",
             "summary": work / f"summary-{stamp}.md", "sides": work / f"base-models-{stamp}.json"}
    protocol = TimingProtocol(iters=args.iters, auto=False, warmup=args.warmup, block=args.block,
                              block_warmup=2, schedule="round-robin")
    settings = GateSettings(threshold=args.threshold)
    os.environ["MODBENCH_CACHE"] = str(work / "cache")  # one export cache: the baseline keeps the base's graphs

    base_dir, worktree = _base_checkout(args, head, work, stamp)
    try:
        with log_group(f"base ({git_label(base_dir)}): export and a short run"):
            base = _base_side(base_dir, args, models, files)
        with log_group(f"head ({git_label(head)}) against the base, interleaved"):
            sides = Sides(base=base, head=_resolve_here(head, args, models))
            if sides.broken:
                model, why = sides.broken[0]
                raise UsageError(f"{model} builds on neither side: {why}")
            comp = _judge(sides, files, protocol, settings, head, args)
    finally:
        if worktree:
            subprocess.run(["git", "worktree", "remove", "--force", str(base_dir)], cwd=head,
                           capture_output=True, timeout=120)
    comp.baseline = f"base, {git_label(base_dir) if not worktree else args.base_ref}"
    comp.current = f"head, {git_label(head)}"
    summary = render.markdown(comp)
    write_new(files["summary"], summary, "summary")
    print(render.text(comp))
    print(f"summary: {shown_path(files['summary'], head, work.parent)}", file=sys.stderr)
    code = comp.exit_code(strict)
    write_github_outputs({"results": str(files["ab"]) if files["ab"].exists() else "",
                          "summary": str(files["summary"]), "exit-code": str(code)}, summary)
    return code


def _folder(text: str, what: str) -> Path:
    path = Path(text).expanduser().resolve()
    if not path.is_dir():
        raise UsageError(f"{what} {text!r} is not a folder")
    return path


def _base_checkout(args, head: Path, work: Path, stamp: str) -> tuple[Path, bool]:
    """The base's checkout: --base-dir as given, or a worktree of --base-ref (removed
    when the gate ends)."""
    if args.base_dir:
        return _folder(args.base_dir, "--base-dir"), False
    where = work / f"base-worktree-{stamp}"
    r = subprocess.run(["git", "worktree", "add", "--detach", str(where), args.base_ref], cwd=head,
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        why = (r.stderr.strip().splitlines() or ["git failed"])[-1]
        raise UsageError(f"--base-ref {args.base_ref}: cannot check it out ({why})")
    return where, True


def _user_env(checkout: Path, source_dir: str) -> dict:
    return dict(os.environ, **{USER_PATH_ENV: str(checkout / source_dir)})


# The base side runs in a process of its own, inside the base's checkout: its user
# code and the head's share module names and must never meet in one interpreter.
_BASE_SIDE = "import sys; from modbench.commands.gate import base_side; sys.exit(base_side(sys.argv[1]))"


def _base_side(base_dir: Path, args, models: tuple[str, ...], files: dict) -> dict[str, str | None]:
    """Resolve each model in the base's checkout, run those it has and save the run as
    the baseline; each model's reason where the base cannot build it."""
    job = {"models": list(models), "model_args": args.model_arg, "threads": args.threads,
           "resolution": args.resolution, "block": args.block, "out": str(files["base"]),
           "baselines": str(files["base"].parent / "baselines"), "sides": str(files["sides"])}
    job_file = files["sides"].with_suffix(".job.json")
    write_new(job_file, json.dumps(job), "gate job file")
    r = subprocess.run([sys.executable, "-c", _BASE_SIDE, str(job_file)], cwd=base_dir,
                       env=_user_env(base_dir, args.source_dir), timeout=None)
    if r.returncode != 0 or not files["sides"].is_file():
        raise UsageError("the base's models could not be timed (the base's output is above)")
    return json.loads(files["sides"].read_text())


def base_side(job_file: str) -> int:
    """In the base's checkout: which models resolve, a short run of those (its export
    is what counts) and the baseline saved from it."""
    from ..cli import main  # the command line, in the base's process (cli imports every command lazily)

    job = json.loads(Path(job_file).read_text())
    present = {m: _resolves(m, job["model_args"]) for m in job["models"]}
    for model, why in present.items():
        if why is not None:
            print(f"note: the base cannot build {model}: {why}", file=sys.stderr)
    here = [m for m, why in present.items() if why is None]
    if here:
        opts = ["--iters", str(job["block"]), "--warmup", "2", "--block", str(job["block"])]
        opts += ["--threads", str(job["threads"])] if job["threads"] else []
        opts += ["--resolution", str(job["resolution"])] if job["resolution"] else []
        opts += [x for kv in job["model_args"] for x in ("--model-arg", kv)]
        code = main(["run", *here, *opts, "--out", job["out"]])
        if code != 0:
            return code
        code = main(["baseline", "save", job["out"], "--name", BASELINE_NAME, "--dir", job["baselines"],
                     "--replace"])
        if code != 0:
            return code
    write_new(Path(job["sides"]), json.dumps(present), "the base's model list")
    return 0


def _resolves(model: str, model_args: list[str]) -> str | None:
    """None if this checkout builds `model`, else why not (one line)."""
    callable_spec = ":" in model and not model.startswith("timm:")
    try:
        entry_names([model], model_args if callable_spec else None)
    except ModbenchError as exc:
        return first_line(exc)
    return None


def _resolve_here(head: Path, args, models: tuple[str, ...]) -> dict[str, str | None]:
    os.environ[USER_PATH_ENV] = str(head / args.source_dir)
    previous = os.getcwd()
    os.chdir(head)
    try:
        return {m: _resolves(m, args.model_arg) for m in models}
    finally:
        os.chdir(previous)


def _judge(sides: Sides, files: dict, protocol, settings, head: Path, args) -> Comparison:
    if not sides.both:
        comp = Comparison([], "base", "head", settings, cpu_fingerprint())
    else:
        base_csv, manifest = baselines.resolve(BASELINE_NAME, cpu_fingerprint(), files["base"].parent / "baselines")
        previous = os.getcwd()
        os.chdir(head)  # the head's models are imported from its checkout
        try:
            run_ab(base_csv, manifest, files["ab"], protocol, models=entry_names(sides.both, args.model_arg),
                   log=lambda m: print(m, file=sys.stderr), settings=settings, budget_s=args.time_budget)
        finally:
            os.chdir(previous)
        comp = compare_ab(files["ab"], settings)
    comp.new, comp.removed = sides.new, sides.removed
    return comp
