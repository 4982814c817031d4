"""Registry rows with measured params and MACs, cached on disk (building all the
peers takes tens of seconds) keyed by the code that defines each model."""
from __future__ import annotations

import json
from pathlib import Path

from filelock import FileLock

from modbench.common.fsio import atomic_write, usable_cache_dir
from modbench.models import ModelEntry, create_model, list_entries
from modbench.models.complexity import count_macs, count_params


def _cache_path() -> Path:
    return usable_cache_dir() / "complexity.json"


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def measured_complexity(entry: ModelEntry, resolution: int | None = None) -> tuple[float, float] | None:
    """(params in M, MACs in G) of the built model, or None if it is not available."""
    if not entry.available:
        return None
    res = resolution or entry.default_resolution
    key = f"{entry.name}|{res}|{entry.source_id}"
    path = _cache_path()
    cached = _read(path).get(key)
    if isinstance(cached, list) and len(cached) == 2:
        return tuple(cached)
    import torch  # only to count what no cache has: seconds to import
    torch.manual_seed(0)
    m = create_model(entry.name, resolution=res)
    value = [count_params(m) / 1e6, count_macs(m, res) / 1e9]
    # Read-modify-write under a lock: two processes filling the catalog keep both entries.
    with FileLock(str(path) + ".lock", timeout=600):
        cache = _read(path)
        cache[key] = value
        atomic_write(path, json.dumps(cache, indent=0, sort_keys=True))
    return tuple(value)


def catalog(suite: str | None = None, measure: bool = True) -> list[dict]:
    rows = []
    for e in list_entries(suite):
        p = e.paper
        measured = measured_complexity(e) if measure else None
        rows.append({
            "name": e.name, "paper_name": p.paper_name, "available": e.available,
            "variants": "|".join(e.variants), "resolution": p.resolution,
            "params_m": measured[0] if measured else None, "paper_params_m": p.params_m,
            "macs_g": measured[1] if measured else None, "paper_macs_g": p.macs_g,
            "top1": p.top1, "top1_distilled": p.top1_distilled,
            "paper_gpu_ms": p.gpu_ms, "paper_cpu_ms": p.cpu_ms,
            "suites": "|".join(e.suites), "source": p.source,
            "note": e.unavailable_reason or ", ".join(e.tags + (("assumed config",) if e.assumption else ())),
            "assumption": e.assumption,
        })
    return rows
