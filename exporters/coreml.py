"""Core ML export: an ML program (.mlpackage) through torch.export and coremltools.

The `torch.jit.trace` route breaks on the attention block with numpy 2.4, so the
model goes through `torch.export(...).run_decompositions({})`, the one route
coremltools 9 accepts from an ExportedProgram.

Linux can write and read a package but not run it, so every export is validated
by reading its spec back (input and output names and shapes as intended, program
op histogram recorded); the Core ML vs PyTorch parity check runs only on macOS.
"""
from __future__ import annotations

import collections
import contextlib
import io
import logging
import platform
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from torch import nn

from modbench.common.errors import first_line

from .base import (ExportError, ExportRequest, ExportedModel, Exporter, example_input, module_fingerprint,
                   register_exporter)
from .cache import ExportCache
from .onnx import relative_error

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
PRECISIONS = ("fp16", "fp32")
TARGETS = ("iOS15", "iOS16", "iOS17", "iOS18")
DEFAULT_TARGET = "iOS16"  # the paper's iPhone ran iOS 16.6.1
# ImageNet normalisation folded into the image input: Core ML takes one scale for
# all channels, so the mean of the three standard deviations stands in for them.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = 0.226
# max |coreml - torch| / max |torch| (macOS only); fp16 carries ~3 decimal digits.
PARITY_TOL = {"fp16": 5e-2, "fp32": 1e-3}


def is_macos() -> bool:
    return platform.system() == "Darwin"


@contextlib.contextmanager
def quiet():
    """coremltools prints progress bars, untested-torch warnings and, off macOS, a
    line per missing native proxy; none of it is actionable here."""
    loggers = [logging.getLogger(n) for n in ("coremltools", "root")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def import_coremltools():
    try:
        with quiet():
            import coremltools as ct  # optional (macOS), slow to import
    except ImportError as exc:
        raise ExportError(f"coremltools is not installed: {exc}") from None
    return ct


# --- reading a saved package (works on Linux) -------------------------------------

def read_spec(path: Path):
    ct = import_coremltools()
    path = Path(path)
    if not path.exists():
        raise ExportError(f"Core ML package {str(path)!r} does not exist")
    try:
        with quiet():
            return ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    except Exception as exc:
        raise ExportError(f"{path} is not a readable Core ML model: {first_line(exc, 200)}") from None


def op_histogram(spec) -> dict[str, int]:
    """Operation types of the ML program (nested blocks included), most frequent first;
    'const' counts the weights and scalars."""
    ops: collections.Counter = collections.Counter()

    def walk(block):
        for op in block.operations:
            ops[op.type] += 1
            for b in op.blocks:
                walk(b)

    if spec.WhichOneof("Type") != "mlProgram":
        raise ExportError("the model is not an ML program (neural network models have no op list here)")
    for fn in spec.mlProgram.functions.values():
        for block in fn.block_specializations.values():
            walk(block)
    return dict(sorted(ops.items(), key=lambda kv: (-kv[1], kv[0])))


def describe_features(spec) -> dict:
    """Input and output names, kinds and shapes as the spec declares them."""
    def feat(f):
        kind = f.type.WhichOneof("Type")
        if kind == "imageType":
            t = f.type.imageType
            from coremltools.proto import FeatureTypes_pb2 as ft  # optional, slow to import
            layout = ft.ImageFeatureType.ColorSpace.Name(t.colorSpace)
            return {"name": f.name, "kind": "image", "shape": [int(t.height), int(t.width)],
                    "color": layout}
        if kind == "multiArrayType":
            t = f.type.multiArrayType
            from coremltools.proto import FeatureTypes_pb2 as ft  # optional, slow to import
            dtype = ft.ArrayFeatureType.ArrayDataType.Name(t.dataType)
            return {"name": f.name, "kind": "tensor", "shape": [int(s) for s in t.shape],
                    "dtype": dtype}
        return {"name": f.name, "kind": kind, "shape": []}

    return {"inputs": [feat(f) for f in spec.description.input],
            "outputs": [feat(f) for f in spec.description.output],
            "spec_version": int(spec.specificationVersion)}


def weights_bytes(path: Path) -> int:
    """Bytes of the package's weight blobs (the constants Core ML stores out of line)."""
    return sum(f.stat().st_size for f in Path(path).rglob("weights/*") if f.is_file())


def inspect_package(path: Path) -> dict:
    spec = read_spec(path)
    return dict(describe_features(spec), ops=op_histogram(spec), weights_bytes=weights_bytes(path))


# --- export ------------------------------------------------------------------------

@register_exporter("coreml")
class CoreMLExporter(Exporter):

    def __init__(self, precision: str = "fp16", target: str = DEFAULT_TARGET,
                 image_input: bool = False, cache: ExportCache | None = None):
        if precision not in PRECISIONS:
            raise ExportError(f"Core ML precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
        if target not in TARGETS:
            raise ExportError(f"deployment target must be one of {', '.join(TARGETS)}, not {target!r}")
        self.precision = precision
        self.target = target
        self.image_input = image_input
        self.cache = cache or ExportCache()

    def key_fields(self, request: ExportRequest, model: nn.Module | None = None) -> dict:
        fields = {**request.key_fields(), "exporter": "torch.export+coremltools",
                  "precision": self.precision, "target": self.target, "image_input": self.image_input,
                  "torch": torch.__version__, "coremltools": version("coremltools")}
        if model is not None:
            fields["module"] = module_fingerprint(model)  # what is converted, not a source file
        return fields

    def export(self, model: nn.Module, request: ExportRequest) -> ExportedModel:
        if request.dynamic_batch:
            raise ExportError("Core ML export here is static-shape only; drop --dynamic-batch")
        if self.image_input and request.batch != 1:
            raise ExportError("an image input takes one image; use --batch 1")
        fields = self.key_fields(request, model)

        def build(scratch: Path) -> tuple[Path, dict]:
            built = scratch / "model.mlpackage"
            t0 = time.perf_counter()
            try:
                mlmodel = self._convert(model, request)
                with quiet():
                    mlmodel.save(str(built))
            except ExportError:
                raise
            except Exception as exc:
                raise ExportError(f"Core ML export of {request.model} failed: {first_line(exc, with_type=True)}") from exc
            export_s = time.perf_counter() - t0
            info = inspect_package(built)
            self._check_features(info, request)
            parity = self._parity(model, request, built) if is_macos() else None
            return built, dict(fields, export_s=round(export_s, 3), parity_rel_err=parity,
                               parity_checked="macOS" if parity is not None else "not on Linux (needs macOS)",
                               inputs=info["inputs"], outputs=info["outputs"], spec_version=info["spec_version"],
                               op_histogram=info["ops"], weights_bytes=info["weights_bytes"],
                               opset=self.target)

        path, meta, hit = self.cache.get_or_build("coreml", fields, ".mlpackage", build)
        return ExportedModel(path, "coreml", INPUT_NAME, request.input_shape, dict(meta, cache_hit=hit))

    def _convert(self, model: nn.Module, request: ExportRequest):
        ct = import_coremltools()
        x = example_input(request)
        with quiet(), torch.no_grad():
            program = torch.export.export(model.eval(), (x,)).run_decompositions({})
            if self.image_input:
                inp = ct.ImageType(name=INPUT_NAME, shape=request.input_shape,
                                   scale=1.0 / (255.0 * IMAGENET_STD),
                                   bias=[-m / IMAGENET_STD for m in IMAGENET_MEAN],
                                   color_layout=ct.colorlayout.RGB)
            else:
                inp = ct.TensorType(name=INPUT_NAME, shape=request.input_shape, dtype=np.float32)
            return ct.convert(
                program, inputs=[inp], outputs=[ct.TensorType(name=OUTPUT_NAME, dtype=np.float32)],
                convert_to="mlprogram",
                compute_precision=ct.precision.FLOAT16 if self.precision == "fp16" else ct.precision.FLOAT32,
                minimum_deployment_target=getattr(ct.target, self.target))

    def _check_features(self, info: dict, request: ExportRequest) -> None:
        ins, outs = info["inputs"], info["outputs"]
        want_shape = ([request.resolution, request.resolution] if self.image_input
                      else list(request.input_shape))
        if [i["name"] for i in ins] != [INPUT_NAME] or ins[0]["shape"] != want_shape:
            raise ExportError(f"Core ML export of {request.model} has inputs {ins}, expected one "
                              f"{INPUT_NAME!r} of shape {want_shape}")
        if self.image_input and ins[0]["kind"] != "image":
            raise ExportError(f"Core ML export of {request.model}: input is a {ins[0]['kind']}, not an image")
        if [o["name"] for o in outs] != [OUTPUT_NAME]:
            raise ExportError(f"Core ML export of {request.model} has outputs {[o['name'] for o in outs]}, "
                              f"expected [{OUTPUT_NAME!r}]")

    def _parity(self, model: nn.Module, request: ExportRequest, path: Path) -> float:
        """Core ML (CPU only, deterministic) vs PyTorch on one input; macOS only."""
        ct = import_coremltools()
        rng = np.random.default_rng(0)
        with quiet():
            ml = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)
        if self.image_input:
            from PIL import Image  # Pillow comes with coremltools, not with modbench
            pixels = rng.integers(0, 256, (request.resolution, request.resolution, 3), dtype=np.uint8)
            feed = Image.fromarray(pixels, "RGB")
            x = pixels.transpose(2, 0, 1)[None].astype(np.float32) / (255.0 * IMAGENET_STD)
            x -= np.asarray(IMAGENET_MEAN, np.float32)[None, :, None, None] / IMAGENET_STD
        else:
            x = rng.standard_normal(request.input_shape, dtype=np.float32)
            feed = x
        got = np.asarray(ml.predict({INPUT_NAME: feed})[OUTPUT_NAME], dtype=np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        err = relative_error(got.reshape(ref.shape), ref)
        if not err <= PARITY_TOL[self.precision]:
            raise ExportError(f"Core ML export of {request.model} diverges from PyTorch: relative error "
                              f"{err:.3g} > {PARITY_TOL[self.precision]:g} ({self.precision}); not timed")
        return err


# --- compute-unit placement (macOS only) -------------------------------------------

COMPUTE_UNITS = ("CPU_ONLY", "CPU_AND_GPU", "ALL")


def compute_plan_summary(path: Path, compute_units: str = "ALL") -> dict[str, int] | None:
    """Operations per preferred compute device ('cpu', 'gpu', 'ane') from Core ML's
    MLComputePlan, constants left out; None off macOS, where no plan can be built."""
    if not is_macos():
        return None
    ct = import_coremltools()
    # coremltools: optional (macOS), slow to import; only on this path.
    from coremltools.models.compute_device import (MLCPUComputeDevice, MLGPUComputeDevice,
                                                   MLNeuralEngineComputeDevice)
    from coremltools.models.compute_plan import MLComputePlan
    from coremltools.models.utils import compile_model

    with quiet():
        compiled = compile_model(str(path))
        plan = MLComputePlan.load_from_path(compiled, compute_units=getattr(ct.ComputeUnit, compute_units))
    names = {MLCPUComputeDevice: "cpu", MLGPUComputeDevice: "gpu", MLNeuralEngineComputeDevice: "ane"}
    counts: collections.Counter = collections.Counter()
    for fn in plan.model_structure.program.functions.values():
        for op in fn.block.operations:
            if op.operator_name == "const":
                continue
            usage = plan.get_compute_device_usage_for_mlprogram_operation(op)
            device = usage.preferred_compute_device if usage is not None else None
            counts[names.get(type(device), "none")] += 1
    return dict(counts)
