"""bench.py export: export models (with the parity gate) and print where they are."""
from __future__ import annotations

import shutil
from pathlib import Path

from modbench.common.errors import UsageError
from modbench.common.fsio import atomic_dir, check_new_output, portable_name, write_new
from modbench.exporters import EXPORTERS

from ..pipeline import RunRequest, plan, prepare
from ..specs import resolve_models
from . import COMMANDS
from . import _args as A


def add_parser(sub) -> None:
    p = sub.add_parser("export", help=COMMANDS["export"],
                       **A.examples("export efficientmod_xxs",
                                    "export efficientmod_xxs --format coreml --modelbench"))
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="registry names, or your own: timm:NAME, PATH.onnx, module.path:function, "
                        "PATH.py:function")
    p.add_argument("--format", default="onnx", help="export format: onnx (default) or coreml")
    p.add_argument("--variant", help="model variant (EfficientMod: repeat|reshape)")
    p.add_argument("--batch", type=A.batch_size, default=1, help="batch size of the exported graph (default 1)")
    p.add_argument("--resolution", type=A.resolution, help="input side in pixels (default: the model's paper resolution)")
    p.add_argument("--checkpoint", help="state dict file to load (strict)")
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                   help="keyword argument for module:function models (repeatable)")
    p.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript",
                   help="torch's ONNX exporter (default torchscript)")
    p.add_argument("--opset", type=A.opset, help="ONNX opset (default: the exporter's)")
    p.add_argument("--dynamic-batch", action="store_true", help="dynamic batch axis (slower in ORT)")
    g = p.add_argument_group("Core ML (--format coreml)")
    g.add_argument("--precision", choices=("fp16", "fp32"), default="fp16",
                   help="Core ML compute precision (default fp16)")
    g.add_argument("--target", default="iOS16", help="minimum deployment target: iOS15..iOS18 "
                   "(default iOS16; iOS18 gives native attention ops)")
    g.add_argument("--modelbench", action="store_true",
                   help="ModelBench form: a 224x224 image input named 'input', batch 1")
    p.add_argument("--out", metavar="FOLDER", help="also copy each export into this folder, as MODEL.onnx "
                   "(or MODEL.mlpackage); never over an existing one")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.format not in EXPORTERS:
        raise UsageError(f"unknown export format {args.format!r}; known: {', '.join(EXPORTERS)}")
    options = None
    if args.format == "coreml":
        if args.modelbench:
            if args.batch != 1 or args.resolution not in (None, 224):
                raise UsageError("--modelbench feeds one 224x224 image: drop --batch/--resolution")
            args.resolution = 224
        options = {"precision": args.precision, "target": args.target, "image_input": args.modelbench}
    elif args.modelbench:
        raise UsageError("--modelbench applies to --format coreml only")
    r = resolve_models(args.models, args.model_arg, None, args.batch, args.resolution)
    req = RunRequest(models=r.names, variants=[args.variant], batches=[args.batch],
                     resolutions=[args.resolution], checkpoint=args.checkpoint,
                     exporter=args.exporter, opset=args.opset, dynamic_batch=args.dynamic_batch,
                     model_args=r.model_args)
    out = Path(args.out) if args.out else None
    suffix = ".mlpackage" if args.format == "coreml" else f".{args.format}"
    jobs = plan(req)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        several = len({j.variant for j in jobs}) > 1  # variants of one model get a file each
        names = [out / f"{portable_name(j.model)}{'.' + j.variant if several else ''}{suffix}" for j in jobs]
        for path in names:
            check_new_output(path, "export", folder=args.format == "coreml")
    for job in jobs:
        p = prepare(job, req, args.format, options)
        meta = p.artifact.meta
        parity = meta.get("parity_rel_err")
        parity = f"{parity:.2g}" if parity is not None else meta.get("parity_checked", "-")
        if args.format == "coreml":
            how = f"{meta.get('precision')}, {meta.get('target')}, {meta.get('weights_bytes', 0) / 1e6:.1f} MB weights"
        else:
            how = f"{meta.get('exporter')} opset {meta.get('opset')}"
        path = p.artifact.path
        if out is not None:
            path = names[jobs.index(job)]
            if args.format == "coreml":
                with atomic_dir(path) as tmp:  # a failed copy leaves no half package
                    shutil.copytree(p.artifact.path, tmp, dirs_exist_ok=True)
            else:
                write_new(path, Path(p.artifact.path).read_bytes(), "export")
        print(f"{job.model} ({job.variant}, {job.resolution}px, batch {job.batch}): {path}  "
              f"[{how}, parity {parity}{', cached' if meta.get('cache_hit') else ''}]")
    return 0
