"""The exporter interface: a built PyTorch model in, a file a runtime can load out."""
from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import torch
from torch import nn

from modbench.common.errors import ModbenchError, first_line
from modbench.common.registry import Registry


class ExportError(ModbenchError):
    """An export that failed or that cannot be trusted (e.g. its outputs diverge)."""


@dataclass(frozen=True)
class ExportRequest:
    """Everything that changes the exported graph; also the cache key."""

    model: str
    variant: str
    resolution: int
    batch: int
    source_id: str  # the code that defines the model (file digest, timm version)
    checkpoint_id: str = "random-init"
    dynamic_batch: bool = False

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, 3, self.resolution, self.resolution)

    def key_fields(self) -> dict:
        """The request's part of an export cache key; each exporter adds its own settings."""
        return {
            "model": self.model, "variant": self.variant, "resolution": self.resolution,
            "batch": self.batch, "dynamic_batch": self.dynamic_batch, "source": self.source_id,
            "checkpoint": self.checkpoint_id,
        }


def module_fingerprint(model: nn.Module) -> str:
    """A digest of the built module itself, the part of a cache key that says what is
    timed: every submodule's class (module and qualified name) and printed settings,
    and every parameter and buffer (name, shape, dtype). A source file's digest cannot
    see an imported helper change or a functools.partial. Weights are not in it (the
    checkpoint is a key field of its own); what the forward computes is proved on a
    hit by the exporter's parity check."""
    h = hashlib.sha256()
    for name, m in model.named_modules():
        cls = type(m)
        h.update(f"{name}|{cls.__module__}.{cls.__qualname__}|{m.extra_repr()}\n".encode())
    for kind, items in (("p", model.named_parameters()), ("b", model.named_buffers())):
        for name, t in items:
            h.update(f"{kind}|{name}|{tuple(t.shape)}|{t.dtype}\n".encode())
    return h.hexdigest()[:24]


def output_tensors(out, where: str = "the model") -> list:
    """A forward's outputs as a flat list of tensors: a tensor, or a tuple, list or
    dict of them (nested), in order (dict values in insertion order, as the ONNX
    exporter flattens them). Anything else is an ExportError naming what it is."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in output_tensors(o, where)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in output_tensors(o, where)]
    raise ExportError(f"{where} returned {type(out).__name__}; its forward must return a tensor, "
                      "or a tuple, list or dict of tensors")


def example_input(request: "ExportRequest"):
    """The seeded input an export traces and checks parity with; a shape too large to
    allocate is an ExportError (one line), not a traceback from deep inside torch."""
    shape = request.input_shape
    gb = 4 * shape[0] * shape[1] * shape[2] * shape[3] / 1e9
    avail_gb = psutil.virtual_memory().available / 1e9
    # The model's activations are many times its input: an input of a quarter of the
    # free memory cannot be traced, checked and timed.
    if gb > avail_gb / 4:
        raise ExportError(f"an input of shape {tuple(shape)} takes {gb:.1f} GB, more than a quarter of the "
                          f"{avail_gb:.1f} GB of free memory; use a smaller --batch or --resolution")
    try:
        return torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    except (RuntimeError, MemoryError) as exc:
        raise ExportError(f"cannot allocate an input of shape {tuple(shape)} ({gb:.1f} GB): "
                          f"{first_line(exc, 120)}; "
                          "use a smaller --batch or --resolution") from None


@dataclass
class ExportedModel:
    path: Path
    format: str
    input_name: str
    input_shape: tuple[int, ...]
    # How it was made: exporter, opset, versions, parity error, export seconds, cache hit.
    meta: dict = field(default_factory=dict)
    # The input's element type (numpy name): exports take float32; a user's ONNX file
    # may take float16 or integers, and is fed what it takes.
    input_dtype: str = "float32"


# Every exporter class, by its format word (--export): an exporter module registers its
# class with @register_exporter; exporters/__init__ imports the modules.
EXPORTERS: Registry[type["Exporter"]] = Registry("export format", ExportError)


def register_exporter(fmt: str):
    """Class decorator: register an Exporter subclass as the exporter of format `fmt`."""
    def decorate(cls: type["Exporter"]) -> type["Exporter"]:
        EXPORTERS.add(fmt, cls)
        cls.format = fmt
        return cls
    return decorate


def get_exporter(fmt: str, **options) -> "Exporter":
    return EXPORTERS.lookup(fmt)(**options)


class Exporter(ABC):
    format: str  # set by @register_exporter

    @abstractmethod
    def export(self, model: nn.Module, request: ExportRequest) -> ExportedModel:
        """Export `model` as described by `request`, reusing a valid cached export."""
