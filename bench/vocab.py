"""One vocabulary of devices, defined once.

A results row's `device` column is one of DEVICES' keys; runners, ModelBench ingest,
the store, reports, claims and the gate all take the word from here. Each device
belongs to a class that the paper's tables use for their columns (GPU, CPU, mobile).
"""
from __future__ import annotations

from dataclasses import dataclass

from modbench.common.errors import ModbenchError


@dataclass(frozen=True)
class Device:
    name: str        # the word in a results row
    kind: str        # the paper's column class: "gpu", "cpu", "mobile"
    label: str       # how a report prints it


DEVICES: dict[str, Device] = {d.name: d for d in (
    Device("cpu", "cpu", "CPU"),
    Device("cuda", "gpu", "GPU"),
    Device("mac", "mobile", "Mac"),        # Core ML on a Mac (compute units in `provider`)
    Device("iphone", "mobile", "iPhone"),  # ModelBench numbers, ingested
)}
KINDS = ("gpu", "cpu", "mobile")
# Rows written before the vocabulary existed used the class names as devices.
_LEGACY = {"gpu": "cuda", "mobile": "iphone"}


class UnknownDevice(ModbenchError):
    pass


def device(name: str) -> Device:
    key = str(name).strip().lower()
    key = _LEGACY.get(key, key)
    try:
        return DEVICES[key]
    except KeyError:
        raise UnknownDevice(f"unknown device {name!r}; known: {', '.join(DEVICES)}") from None


def device_kind(name: str) -> str:
    return device(name).kind


# Runtimes under an older name: rows written before the runners were named by
# runtime and device said `onnxruntime` for what is now `ort-cpu`. Read through
# runtime_name(), one machine's rows stay one column of a report.
_LEGACY_RUNTIMES = {("onnxruntime", "cpu"): "ort-cpu", ("onnxruntime", "cuda"): "ort-cuda",
                    ("onnxruntime", "gpu"): "ort-cuda"}


def runtime_name(runtime: str, device_name: str) -> str:
    """Today's name of a row's runtime (an older row's word mapped; others unchanged)."""
    key = (str(runtime).strip().lower(), str(device_name).strip().lower())
    return _LEGACY_RUNTIMES.get(key, str(runtime))
