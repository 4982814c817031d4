"""Exporters: a built PyTorch model to a file a runtime loads. One class per format,
each registered by its format word with @register_exporter (exporters/base.py)."""
from .base import (EXPORTERS, ExportError, ExportRequest, ExportedModel, Exporter, get_exporter,
                   register_exporter)
from .cache import ExportCache
from .coreml import CoreMLExporter
from .onnx import OnnxExporter

__all__ = ["CoreMLExporter", "EXPORTERS", "ExportCache", "ExportError", "ExportRequest", "ExportedModel",
           "Exporter", "OnnxExporter", "get_exporter", "register_exporter"]
