"""bench.py export: export models (with the parity gate) and print where they are."""
from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export models to a deployment format")
    p.add_argument("models", nargs="+", metavar="MODEL")
    p.add_argument("--format", default="onnx", help="export format (default onnx)")
    p.add_argument("--variant", help="model variant (EfficientMod: repeat|reshape)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--resolution", type=int)
    p.add_argument("--checkpoint", help="state dict file to load (strict)")
    p.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript")
    p.add_argument("--opset", type=int)
    p.add_argument("--dynamic-batch", action="store_true", help="dynamic batch axis (slower in ORT)")
    p.set_defaults(func=run)


def run(args) -> int:
    from exporters import EXPORTERS

    from ..cli import UsageError
    from ..pipeline import RunRequest, plan, prepare

    if args.format not in EXPORTERS:
        raise UsageError(f"unknown export format {args.format!r}; known: {', '.join(EXPORTERS)}")
    req = RunRequest(models=args.models, variants=[args.variant], batches=[args.batch],
                     resolutions=[args.resolution], checkpoint=args.checkpoint,
                     exporter=args.exporter, opset=args.opset, dynamic_batch=args.dynamic_batch,
                     iters=1)
    for job in plan(req):
        p = prepare(job, req, args.format)
        meta = p.artifact.meta
        print(f"{job.model} ({job.variant}, {job.resolution}px, batch {job.batch}): {p.artifact.path}  "
              f"[{meta.get('exporter')} opset {meta.get('opset')}, parity {meta.get('parity_rel_err'):.2g}"
              f"{', cached' if meta.get('cache_hit') else ''}]")
    return 0
