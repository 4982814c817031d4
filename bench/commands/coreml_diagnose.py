"""bench.py coreml-diagnose: why a converted model is slow on Core ML.

Converts each model (cached) and tabulates what its ML program is made of: the
transposes the released EfficientMod's permutes become, LayerNorms, GELUs,
convolutions vs matmuls, tiles and reshapes, constant size; on macOS also where
Core ML's compute plan puts the operations."""
from __future__ import annotations

import csv
import json
import sys

from modbench.exporters.coreml import compute_plan_summary
from modbench.models import get_entry

from ..pipeline import RunRequest, plan, prepare
from ..specs import resolve_models
from ..textable import render
from . import COMMANDS
from . import _args as A

# The op columns, in the order the paper's argument reads them.
OP_COLUMNS = ("transpose", "layer_norm", "batch_norm", "gelu", "conv", "linear", "matmul",
              "tile", "reshape")


def add_parser(sub) -> None:
    p = sub.add_parser("coreml-diagnose", help=COMMANDS["coreml-diagnose"],
                       **A.examples("coreml-diagnose efficientmod_xxs efficientmod_xs",
                                    "coreml-diagnose efficientmod_xxs --format csv"))
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="registry names, or your own: timm:NAME, module.path:function, PATH.py:function")
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                   help="keyword argument for module:function models (repeatable)")
    p.add_argument("--checkpoint", help="state dict to load into the (single) model, strictly")
    p.add_argument("--variant", help="model variant (applied where the model has it)")
    p.add_argument("--precision", choices=("fp16", "fp32"), default="fp16",
                   help="Core ML compute precision (default fp16, as on an iPhone)")
    p.add_argument("--target", default="iOS16", help="minimum deployment target (iOS15..iOS18)")
    p.add_argument("--compute-units", choices=("CPU_ONLY", "CPU_AND_GPU", "ALL"), default="ALL",
                   help="compute units for the macOS compute plan")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="output format (default table)")
    p.set_defaults(func=run)


def diagnose_rows(models: list[str], variant: str | None = None, precision: str = "fp16",
                  target: str = "iOS16", compute_units: str = "ALL", model_args: dict | None = None,
                  checkpoint: str | None = None) -> list[dict]:


    req = RunRequest(models=models, variants=[variant], model_args=dict(model_args or {}),
                     checkpoint=checkpoint)
    options = {"precision": precision, "target": target}
    rows = []
    for job in plan(req):
        p = prepare(job, req, "coreml", options)
        meta = p.artifact.meta
        ops = meta["op_histogram"]
        paper = get_entry(job.model).paper
        row = {"model": job.model, "variant": job.variant,
               "params_m": p.columns["params_m"], "paper_params_m": paper.params_m,
               "macs_g": p.columns["macs_g"], "paper_macs_g": paper.macs_g,
               "paper_iphone_ms": paper.iphone_ms,
               "ops": sum(n for op, n in ops.items() if op != "const")}
        row.update({op: ops.get(op, 0) for op in OP_COLUMNS})
        row["other_ops"] = row["ops"] - sum(row[op] for op in OP_COLUMNS)
        row["consts"] = ops.get("const", 0)
        row["weights_mb"] = meta["weights_bytes"] / 1e6
        placement = compute_plan_summary(p.artifact.path, compute_units)
        row["placement"] = (" ".join(f"{d}:{n}" for d, n in sorted(placement.items()))
                            if placement is not None else None)
        row["op_histogram"] = ops
        row["package"] = str(p.artifact.path)
        rows.append(row)
    return rows


def headline(rows: list[dict]) -> list[str]:
    """The released model beside its channels-first / no-LayerNorm forms, when both are given."""
    by = {r["model"]: r for r in rows}
    lines = []
    for r in rows:
        for suffix in ("_cf", "_bn"):
            if r["model"].endswith(suffix) and r["model"][:-len(suffix)] in by:
                base = by[r["model"][:-len(suffix)]]
                lines.append(f"{r['model']} vs {base['model']}: transpose {base['transpose']} -> "
                             f"{r['transpose']}, layer_norm {base['layer_norm']} -> {r['layer_norm']}, "
                             f"ops {base['ops']} -> {r['ops']}")
    return lines


def run(args) -> int:
    r = resolve_models(args.models, args.model_arg)  # the user's specs checked as `run` checks them
    rows = diagnose_rows(r.names, args.variant, args.precision, args.target, args.compute_units,
                         r.model_args, args.checkpoint)
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=1)
        print()
        return 0
    if args.format == "csv":
        flat = [{k: v for k, v in r.items() if k != "op_histogram"} for r in rows]
        w = csv.DictWriter(sys.stdout, fieldnames=list(flat[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(flat)
        return 0
    cols = ["model", "variant", "params_m", "paper_params_m", "macs_g", "paper_macs_g", "ops",
            *OP_COLUMNS, "other_ops", "weights_mb", "placement"]
    heads = {"params_m": "params(M)", "paper_params_m": "paper", "macs_g": "MACs(G)",
             "paper_macs_g": "paper", "layer_norm": "LN", "batch_norm": "BN",
             "transpose": "transp", "weights_mb": "weights(MB)", "other_ops": "other"}
    print(render(rows, cols, heads))
    for line in headline(rows):
        print(line)
    if all(r["placement"] is None for r in rows):
        print(f"({args.precision}, {args.target}; compute-unit placement needs macOS: MLComputePlan "
              f"cannot be built on {sys.platform})")
    return 0
