"""The GPU a measurement ran on: name, driver, CUDA and cuDNN versions, clocks, memory.

NVML (nvidia-ml-py) is the only source that sees clocks and the driver without
starting a CUDA context. Every query here is best effort: a machine without
NVML still gets rows, with these columns empty, because the runner has already
proven (or refused) the GPU by other means.
"""
from __future__ import annotations

import statistics
from functools import lru_cache

GPU_COLUMNS = ("device_name", "gpu_driver", "cuda_version", "cudnn_version", "gpu_clock_mhz",
               "gpu_mem_clock_mhz", "gpu_memory_mb")


def _nvml():
    import pynvml  # the NVIDIA driver's library: only where a GPU is asked about

    pynvml.nvmlInit()
    return pynvml


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


@lru_cache(maxsize=8)
def _nvml_handle_key(device_index: int) -> tuple[str, int] | None:
    """How NVML should find CUDA device `device_index`: ('pci', bus id) or ('index', i).

    CUDA ordinals and NVML indices differ under CUDA_VISIBLE_DEVICES or
    CUDA_DEVICE_ORDER; the PCI bus id is the same device in both."""
    try:
        import torch  # seconds to import; only a GPU row asks

        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(device_index)
            return ("pci", f"{p.pci_domain_id:08x}:{p.pci_bus_id:02x}:{p.pci_device_id:02x}.0")
    except Exception:  # torch without CUDA, or an old torch without pci fields
        pass
    return ("index", device_index)


def _handle(nv, device_index: int):
    kind, key = _nvml_handle_key(device_index)
    if kind == "pci":
        try:
            return nv.nvmlDeviceGetHandleByPciBusId(key)
        except nv.NVMLError:
            pass
    return nv.nvmlDeviceGetHandleByIndex(device_index)


def sample_clocks(device_index: int = 0) -> tuple[float, float] | None:
    """Current SM and memory clocks (MHz), or None without NVML.

    Called right after a timed block, while the GPU is still at the clocks it
    ran at: an idle GPU drops its clocks within milliseconds, so a reading taken
    when the row is written would describe the idle GPU, not the measurement."""
    try:
        nv = _nvml()
        h = _handle(nv, device_index)
        return (float(nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM)),
                float(nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_MEM)))
    except Exception:
        return None


class ClockLog:
    """Clock readings taken between timed blocks; the row reports their median."""

    def __init__(self, device_index: int = 0):
        self.device_index = device_index
        self.sm: list[float] = []
        self.mem: list[float] = []

    def sample(self) -> None:
        c = sample_clocks(self.device_index)
        if c is not None:
            self.sm.append(c[0])
            self.mem.append(c[1])

    def columns(self) -> dict:
        if not self.sm:
            return {}
        return {"gpu_clock_mhz": statistics.median(self.sm),
                "gpu_mem_clock_mhz": statistics.median(self.mem)}

    def extra(self) -> dict:
        if not self.sm:
            return {}
        return {"gpu_clock_mhz_min": min(self.sm), "gpu_clock_mhz_max": max(self.sm),
                "gpu_clock_samples": len(self.sm)}


def nvml_info(device_index: int = 0) -> dict:
    """Static facts NVML knows about the device; {} without NVML."""
    try:
        nv = _nvml()
        h = _handle(nv, device_index)
    except Exception:
        return {}
    info: dict = {}

    def get(key, fn, *args):
        try:
            info[key] = fn(*args)
        except Exception:
            pass

    get("device_name", lambda: _text(nv.nvmlDeviceGetName(h)))
    get("gpu_driver", lambda: _text(nv.nvmlSystemGetDriverVersion()))
    get("gpu_memory_mb", lambda: round(nv.nvmlDeviceGetMemoryInfo(h).total / 2**20))
    get("cuda_driver_version", lambda: _cuda_int(nv.nvmlSystemGetCudaDriverVersion()))
    get("gpu_max_clock_mhz", nv.nvmlDeviceGetMaxClockInfo, h, nv.NVML_CLOCK_SM)
    get("gpu_max_mem_clock_mhz", nv.nvmlDeviceGetMaxClockInfo, h, nv.NVML_CLOCK_MEM)
    get("gpu_power_limit_w", lambda: nv.nvmlDeviceGetEnforcedPowerLimit(h) / 1000)
    get("gpu_temperature_c", nv.nvmlDeviceGetTemperature, h, nv.NVML_TEMPERATURE_GPU)
    get("gpu_persistence_mode", lambda: bool(nv.nvmlDeviceGetPersistenceMode(h)))
    get("gpu_pci_bus_id", lambda: _text(nv.nvmlDeviceGetPciInfo(h).busId))
    return info


def _cuda_int(v: int) -> str:
    return f"{v // 1000}.{(v % 1000) // 10}"


def torch_cuda_versions() -> dict:
    import torch  # seconds to import; only a GPU row asks

    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {"cuda_version": torch.version.cuda or "", "cudnn_version": _cudnn_text(cudnn)}


def ort_cuda_versions() -> dict:
    """CUDA the onnxruntime-gpu wheel was built for; cuDNN as loaded in this process.

    ONNX Runtime does not report its cuDNN; it loads the same shared library
    torch already loaded (the pipeline imports torch first), so torch's answer
    names the library ORT runs with."""
    out = {"cuda_version": "", "cudnn_version": ""}
    try:
        # Only the GPU build of ONNX Runtime has this module.
        from onnxruntime.capi import build_and_package_info as b
        out["cuda_version"] = getattr(b, "cuda_version", "") or ""
    except ImportError:
        pass
    try:
        out["cudnn_version"] = torch_cuda_versions()["cudnn_version"]
    except ImportError:
        pass
    return out


def _cudnn_text(v: int | None) -> str:
    if not v:
        return ""
    # cuDNN 9 encodes major*10000 + minor*100 + patch; cuDNN 8 used major*1000.
    if v >= 90000:
        return f"{v // 10000}.{(v % 10000) // 100}.{v % 100}"
    return f"{v // 1000}.{(v % 1000) // 100}.{v % 100}"


def gpu_columns(device_index: int, versions: dict, clocks: ClockLog | None = None) -> dict:
    """Row columns for a GPU session; the schema's GPU columns are always present."""
    info = nvml_info(device_index)
    cols = {k: "" for k in GPU_COLUMNS}
    cols.update({k: info[k] for k in ("device_name", "gpu_driver", "gpu_memory_mb") if k in info})
    cols.update(versions)
    if clocks is not None:
        cols.update(clocks.columns())
    if not cols["device_name"]:
        cols["device_name"] = _torch_device_name(device_index)
    return cols


def gpu_extra(device_index: int, clocks: ClockLog | None = None) -> dict:
    """What NVML knows beyond the schema's columns, for the row's `extra`."""
    info = nvml_info(device_index)
    extra = {k: v for k, v in info.items() if k not in GPU_COLUMNS}
    if clocks is not None:
        extra.update(clocks.extra())
    return extra


def _torch_device_name(device_index: int) -> str:
    try:
        import torch  # seconds to import; only a GPU row asks
        if torch.cuda.is_available():
            return torch.cuda.get_device_name(device_index)
    except Exception:
        pass
    return ""
