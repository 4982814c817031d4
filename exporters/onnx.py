"""ONNX export with a parity gate: an export whose outputs diverge from PyTorch's is
never handed to a runner.

Static batch-1 shapes by default: dynamic axes cost ONNX Runtime speed. Two torch
exporters are offered; 'torchscript' (the legacy one) is the default because it is
several times faster to export and writes one self-contained file.
"""
from __future__ import annotations

import time
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from modbench.common.errors import first_line

from .base import (ExportError, ExportRequest, ExportedModel, Exporter, example_input, module_fingerprint,
                   output_tensors, register_exporter)
from .cache import ExportCache

# torch's two ways to write ONNX (the --exporter option; the row's `exporter` column).
TORCH_ONNX_EXPORTERS = ("torchscript", "dynamo")
DEFAULT_OPSET = {"torchscript": 17, "dynamo": 18}
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
# max |ort - torch| / max |torch|; exports measured here agree to ~1e-6.
DEFAULT_PARITY_TOL = 1e-4


def relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    """Error relative to the output's scale: random weights make logits anywhere from
    1e-5 to 1e7, so an absolute tolerance means nothing."""
    scale = float(np.max(np.abs(ref)))
    return float(np.max(np.abs(got - ref))) / (scale if scale > 0 else 1.0)


@register_exporter("onnx")
class OnnxExporter(Exporter):

    def __init__(self, exporter: str = "torchscript", opset: int | None = None,
                 parity_tol: float = DEFAULT_PARITY_TOL, cache: ExportCache | None = None):
        if exporter not in TORCH_ONNX_EXPORTERS:
            raise ExportError(f"exporter must be one of {TORCH_ONNX_EXPORTERS}, not {exporter!r}")
        self.exporter = exporter
        self.opset = opset or DEFAULT_OPSET[exporter]
        if exporter == "dynamo" and self.opset < 18:
            # torch's dynamo exporter silently keeps 18 when asked for less.
            raise ExportError(f"the dynamo exporter cannot go below opset 18 (asked: --opset {self.opset})")
        self.parity_tol = parity_tol
        self.cache = cache or ExportCache()

    def key_fields(self, request: ExportRequest, model: nn.Module | None = None) -> dict:
        fields = {**request.key_fields(), "exporter": self.exporter, "opset": self.opset,
                  "torch": torch.__version__, "onnx": version("onnx")}
        if model is not None:
            fields["module"] = module_fingerprint(model)
        return fields

    def export(self, model: nn.Module, request: ExportRequest) -> ExportedModel:
        fields = self.key_fields(request, model)

        def still_this_model(path: Path) -> bool:
            # A hit proves it is the graph asked for: the cached file run on this
            # module's input agrees with this module (a forward changed without any
            # parameter changing is caught here and rebuilt).
            try:
                return self._parity(model, example_input(request), path) <= self.parity_tol
            except ExportError:
                return False

        def build(scratch: Path) -> tuple[Path, dict]:
            built = scratch / "model.onnx"
            x = example_input(request)
            t0 = time.perf_counter()
            try:
                self._export(model, x, built, request.dynamic_batch)
            except ExportError:
                raise
            except Exception as exc:
                raise ExportError(f"ONNX export of {request.model} failed: {first_line(exc, with_type=True)}") from exc
            export_s = time.perf_counter() - t0
            try:
                onnx.checker.check_model(str(built), full_check=True)
            except Exception as exc:
                raise ExportError(f"ONNX export of {request.model} is not a valid model: {first_line(exc, with_type=True)}") from exc
            err = self._parity(model, x, built)
            if not err <= self.parity_tol:
                raise ExportError(f"ONNX export of {request.model} ({request.variant}) diverges from "
                                  f"PyTorch: relative error {err:.3g} > tolerance {self.parity_tol:g}; not timed")
            ort_dist = "onnxruntime-gpu" if _has("onnxruntime-gpu") else "onnxruntime"
            return built, dict(fields, export_s=round(export_s, 3), parity_rel_err=err,
                               onnxruntime=version(ort_dist))

        path, meta, hit = self.cache.get_or_build("onnx", fields, ".onnx", build, verify=still_this_model)
        return ExportedModel(path, "onnx", INPUT_NAME, request.input_shape, dict(meta, cache_hit=hit))

    def _export(self, model: nn.Module, x: torch.Tensor, path: Path, dynamic_batch: bool) -> None:
        axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            if self.exporter == "torchscript":
                torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=self.opset,
                                  input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                  dynamic_axes=axes, do_constant_folding=True)
            else:
                shapes = ({0: torch.export.Dim("batch", min=1, max=1024)},) if dynamic_batch else None
                torch.onnx.export(model, (x,), str(path), dynamo=True, opset_version=self.opset,
                                  input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                  dynamic_shapes=shapes, external_data=False, verbose=False)

    @staticmethod
    def _parity(model: nn.Module, x: torch.Tensor, path: Path) -> float:
        """The largest relative error over every output (a detection or segmentation
        network returns several)."""
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
        with torch.no_grad():
            ref = [t.numpy() for t in output_tensors(model(x))]
        if len(got) != len(ref):
            raise ExportError(f"the ONNX graph has {len(got)} outputs, PyTorch's forward {len(ref)}")
        err = 0.0
        for i, (g, r) in enumerate(zip(got, ref)):
            if g.shape != r.shape:
                raise ExportError(f"ONNX output {i} has shape {g.shape}, PyTorch's {r.shape}")
            if r.dtype.kind in "fc":
                err = max(err, relative_error(g.astype(np.float64), r.astype(np.float64)))
            elif not np.array_equal(g, r):
                err = float("inf")
        return err


def _has(dist: str) -> bool:
    try:
        version(dist)
        return True
    except Exception:
        return False
