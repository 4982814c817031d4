"""One resolution of model specs for every command and the Python API.

A command's MODEL arguments mix registry names and the user's own models
(`timm:NAME`, `PATH.onnx`, `module:function`, `PATH.py:function`, with
`--model-arg` and `--top1`); `resolve_models` checks them all before anything runs
(one line on bad input) and registers the user's ones for this process, so the
pipeline and the gate look every model up by name alike.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from modbench.common.errors import UsageError
from modbench.models import is_spec, parse_model_args, parse_top1, resolve_spec
from modbench.models.byo import check_onnx_shape, duplicate_names, unknown_top1_names


@dataclass
class Resolved:
    names: list[str]                      # the run's model names (ONNX files by absolute path)
    model_args: dict = field(default_factory=dict)
    top1: dict = field(default_factory=dict)
    entries: list = field(default_factory=list)  # ModelEntry of each user spec, in order


def resolve_models(names: list[str], model_arg_pairs: list[str] | None = None,
                   top1_items: list[str] | None = None, batch: int | None = None,
                   resolution: int | None = None) -> Resolved:
    """Check and register the user's specs among `names`. ONNX specs become absolute
    paths in `names` (what a run request stores for --resume)."""

    names = list(names)
    model_args, top1 = parse_model_args(model_arg_pairs), parse_top1(top1_items)
    specs = [n for n in names if is_spec(n)]
    if model_args and not any(":" in s and not s.startswith("timm:") for s in specs):
        raise UsageError("--model-arg applies to module:function models (or PATH.py:function); none is named")
    entries = [resolve_spec(n, model_args=model_args, top1=top1) for n in specs]
    clash = duplicate_names(specs, entries)
    if clash:
        raise UsageError(clash)
    for e in entries:
        if e.onnx_path is not None:
            # A dynamic dim must be given explicitly: --batch and --resolution have no default here.
            check_onnx_shape(e, batch, resolution)
    unknown = unknown_top1_names(top1, specs, [e.name for e in entries])
    if unknown:
        raise UsageError(f"--top1 names {', '.join(unknown)}, not one of your own models in this run "
                         "(registered models keep the paper's top-1)")
    for spec, e in zip(specs, entries):
        if spec in top1:
            top1[e.name] = top1.pop(spec)
        if e.onnx_path is not None:
            names[names.index(spec)] = e.onnx_path
    return Resolved(names, model_args, top1, entries)


def entry_names(names: list[str], model_arg_pairs: list[str] | None = None) -> list[str]:
    """The registered names of `names` (a spec's model name can differ from the spec:
    an ONNX file is called by its file name), each spec registered for this process."""

    r = resolve_models(names, model_arg_pairs)
    by_spec = dict(zip([n for n in names if is_spec(n)], r.entries))
    return [by_spec[n].name if n in by_spec else resolve_spec(n).name for n in names]
