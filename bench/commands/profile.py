"""modbench profile: where a model's time goes, per operator, on a runtime; and the
difference of two models or variants (docs/profiles.md)."""
from __future__ import annotations

import argparse
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

from modbench.common.errors import UsageError
from modbench.common.fsio import check_new_output, write_new

from ..env import fingerprint, machine_env
from ..pipeline import RunRequest, plan, prepare_all
from ..profiling import ProfileSettings, label_of, profile_group
from ..report import profiles as P
from ..runners import RUNNERS
from ..runplan import check_request, default_threads
from ..schedule import TimingProtocol
from ..specs import resolve_models
from . import COMMANDS
from . import _args as A


EXAMPLES = ("profile efficientmod_s",
            "profile efficientmod_s --variant repeat,reshape --compare reshape=repeat --out results/profiles/s",
            "profile mobilenetv2_100 timm:resnet18 --runtime torch-cpu --by op_type,block",
            "profile my_model.onnx --resolution 224 --batch 1")
READING = """The models are first timed plainly (interleaved, round-robin), then profiled apart, after the
same warm-up: the profiler slows what it measures. Each operator's share of the profiled
kernel time is shown as ms of the timed latency; "accounts for" is the profiled kernel time
over that latency."""


def add_parser(sub) -> None:
    p = sub.add_parser("profile", help=COMMANDS["profile"],
                       description="Per-operator profiles with the runtime's own profiler (ONNX Runtime's "
                                   "enable_profiling, torch.profiler), by operator type, stage, block and node, "
                                   "beside the latency of a plain timed run; --compare A=B gives the difference.",
                       **A.examples(*EXAMPLES, after=READING))
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="registry names, or your own: timm:NAME, PATH.onnx, module.path:function, PATH.py:function")
    p.add_argument("--runtime", default="ort-cpu",
                   help="ort-cpu (default), ort-cuda, ort-trt, torch-cpu, torch-cuda; coreml-* need macOS")
    p.add_argument("--variant", help="variant(s), comma list (EfficientMod: repeat,reshape); default: each "
                                     "model's default")
    p.add_argument("--threads", type=A.thread_count, default=None,
                   help="intra-op threads (default: as `run`: 4, or the physical cores if fewer)")
    p.add_argument("--batch", type=A.batch_size, default=1, help="batch size (default 1)")
    p.add_argument("--resolution", type=A.resolution, help="input side in pixels (default: the model's own)")
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                   help="keyword argument for module:function models (repeatable)")
    p.add_argument("--compare", action="append", default=[], metavar="A=B", type=_pair,
                   help="the difference A minus B (repeatable); A and B are profiled models (MODEL, or "
                        "MODEL@VARIANT where a model has variants), or two variants (reshape=repeat: every "
                        "model that has both)")
    g = p.add_argument_group("how much is timed and profiled")
    g.add_argument("--iters", type=A.iterations, default=300, help="timed iterations per model (default 300)")
    g.add_argument("--warmup", type=A.non_negative_int, default=30,
                   help="untimed iterations before timing, and before profiling (default 30)")
    g.add_argument("--block", type=A.positive_int, default=25, help="timed iterations per interleaved block "
                                                                   "(default 25)")
    g.add_argument("--rounds", type=A.bounded_int(2, 1000, "a number of rounds"), default=5,
                   help="profiled rounds per model, one model after another (default 5; their spread is the noise)")
    g.add_argument("--profile-iters", type=A.iterations, default=20,
                   help="profiled iterations per round (default 20)")
    o = p.add_argument_group("output")
    o.add_argument("--by", type=_levels, default=("category", "stage"),
                   help=f"tables printed per model, comma list of {', '.join(P.LEVELS[:-1])} (default "
                        "category,stage; the top nodes are always printed)")
    o.add_argument("--top", type=A.positive_int, default=10, help="nodes printed per model (default 10)")
    o.add_argument("--out", metavar="STEM",
                   help="write STEM.csv (every node), STEM.json (the summary) and, with --compare, "
                        "STEM.compare.csv; refused if any exists")
    o.add_argument("--format", choices=("text", "json"), default="text", help="stdout: tables (default) or JSON")
    p.set_defaults(func=run)


def _pair(text: str) -> tuple[str, str]:
    left, sep, right = str(text).partition("=")
    if not sep or not left.strip() or not right.strip():
        raise argparse.ArgumentTypeError(f"expected A=B, not {text!r}")
    return left.strip(), right.strip()


def _levels(text: str) -> tuple[str, ...]:
    levels = tuple(x.strip() for x in str(text).split(",") if x.strip())
    bad = [x for x in levels if x not in P.LEVELS[:-1]]
    if bad or not levels:
        raise argparse.ArgumentTypeError(f"expected levels among {', '.join(P.LEVELS[:-1])}, not {text!r}")
    return levels


def outputs(stem: str | None, compares: bool) -> dict[str, Path]:
    if stem is None:
        return {}
    base = Path(stem)
    if base.suffix in (".csv", ".json"):
        base = base.with_suffix("")
    out = {"nodes": base.with_name(base.name + ".csv"), "json": base.with_name(base.name + ".json")}
    if compares:
        out["compare"] = base.with_name(base.name + ".compare.csv")
    return out


@dataclass
class ProfileRun:
    """What `profile` measured: the node table, the comparisons, and the facts of the run."""

    nodes: object             # pandas DataFrame (report.profiles.node_frame)
    comparisons: list
    facts: dict
    rows: dict                # label -> the timed results row

    def by(self, level: str):
        return P.aggregate(self.nodes, level)

    def to_json(self, top: int = 20) -> str:
        return P.to_json(self.nodes, self.comparisons, self.facts, self.rows, top)

    def text(self, levels=("category", "stage"), top: int = 10) -> str:
        return P.text(self.nodes, self.comparisons, levels, top)


def check_runtime(runtime: str) -> None:
    """Core ML's per-op plan (MLComputePlan) exists on macOS only; the other runtimes
    need a profiler this command reads."""
    if runtime.startswith("coreml"):
        if platform.system() != "Darwin":
            raise UsageError(f"profiling {runtime} needs macOS: Core ML's compute plan (MLComputePlan, macOS "
                             f"14.4+) gives each op's device and estimated cost; this machine runs "
                             f"{platform.system()}")
        raise UsageError(f"profiling {runtime}: reading Core ML's compute plan is not implemented yet; "
                         "`coreml-diagnose MODEL` shows the converted ops")
    if runtime not in RUNNERS:
        RUNNERS.lookup(runtime)  # one line with the closest names


def resolve_compares(pairs, labels: list[str]) -> list[tuple[str, str]]:
    """--compare A=B as pairs of profiled labels. A side that is no label but a
    variant pairs every model profiled in both variants."""
    out = []
    for a, b in pairs:
        if a in labels and b in labels:
            out.append((a, b))
            continue
        by_model: dict[str, dict[str, str]] = {}
        for lab in labels:
            model, _, variant = lab.rpartition("@")
            if model:
                by_model.setdefault(model, {})[variant] = lab
        found = [(v[a], v[b]) for v in by_model.values() if a in v and b in v]
        if not found:
            raise UsageError(f"--compare {a}={b}: not two profiled models (nor two variants of one); "
                             f"profiled: {', '.join(labels)}")
        out += found
    return out


def request(args) -> tuple[RunRequest, list]:
    check_runtime(args.runtime)
    r = resolve_models(args.models, args.model_arg, None, args.batch, args.resolution)
    variants = [v.strip() for v in args.variant.split(",")] if args.variant else [None]
    protocol = TimingProtocol(iters=args.iters, auto=False, warmup=args.warmup, block=args.block, block_warmup=2)
    threads = args.threads or default_threads()[0]
    req = RunRequest(models=r.names, runtime=args.runtime, variants=variants, threads=[threads],
                     batches=[args.batch], resolutions=[args.resolution], protocol=protocol,
                     model_args=r.model_args)
    return req, plan(req)


def collect(args, log=lambda m: print(m, file=sys.stderr)) -> ProfileRun:
    """Plan, prepare, time and profile what `args` (the command's namespace) asks."""
    settings = ProfileSettings(rounds=args.rounds, iters=args.profile_iters)
    req, jobs = request(args)
    runner = check_request(req)
    outs = outputs(args.out, bool(args.compare))
    for path in outs.values():
        check_new_output(path, "profile output")
    prepared = prepare_all(jobs, req, runner.artifact)
    labels = [label_of(p) for p in prepared]
    pairs = resolve_compares(args.compare, labels)
    log(f"prepared {len(prepared)} model(s): {', '.join(labels)}")
    profiled = profile_group(prepared, req, settings, log)
    nodes = P.node_frame(profiled)
    by_label = {mp.label: mp for mp in profiled}
    comparisons = [P.compare(nodes, a, b, by_label[a].samples_ms, by_label[b].samples_ms, req.protocol.block)
                   for a, b in pairs]
    facts = {"runtime": req.runtime, "machine": fingerprint(machine_env()),
             "timing": {"iters": req.protocol.iters, "warmup": req.protocol.warmup, "block": req.protocol.block,
                        "schedule": "round-robin"},
             "profile": {"rounds": settings.rounds, "iters": settings.iters, "warmup": req.protocol.warmup},
             "threshold": P.THRESHOLD, "min_share": P.MIN_SHARE}
    run = ProfileRun(nodes, comparisons, facts, {mp.label: mp.row for mp in profiled})
    if outs:
        write_new(outs["nodes"], nodes.to_csv(index=False), "profile output")
        write_new(outs["json"], run.to_json() + "\n", "profile output")
        if "compare" in outs:
            write_new(outs["compare"], P.compare_frame(comparisons).to_csv(index=False), "profile output")
        log("written: " + ", ".join(str(p) for p in outs.values()))
    return run


def run(args) -> int:
    result = collect(args)
    print(result.to_json() if args.format == "json" else result.text(args.by, args.top))
    return 0


__all__ = ["collect", "ProfileRun"]
