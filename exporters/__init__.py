"""Exporters: a built PyTorch model to a file a runtime loads. One class per format."""
from .base import ExportedModel, Exporter, ExportError, ExportRequest
from .cache import ExportCache
from .coreml import CoreMLExporter
from .onnx import OnnxExporter

EXPORTERS = {"onnx": OnnxExporter, "coreml": CoreMLExporter}


def get_exporter(fmt: str, **options) -> Exporter:
    try:
        return EXPORTERS[fmt](**options)
    except KeyError:
        raise ExportError(f"unknown export format {fmt!r}; known: {', '.join(EXPORTERS)}") from None


__all__ = ["CoreMLExporter", "EXPORTERS", "ExportCache", "ExportError", "ExportRequest", "ExportedModel",
           "Exporter", "OnnxExporter", "get_exporter"]
