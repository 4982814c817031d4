"""One registry of every model the suite knows, keyed by a stable timm-style name.

Each family module registers its entries; the paper's metadata for them comes from
data files (paper_table1.tsv and friends), never from code.
"""
from __future__ import annotations

import csv
import difflib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from torch import nn

from .errors import ModbenchError

DATA_DIR = Path(__file__).resolve().parent


class ModelError(ModbenchError):
    """A model request that cannot be satisfied (unknown name, bad option, bad checkpoint)."""


@dataclass(frozen=True)
class PaperFacts:
    """What the paper reports for a model (None where it reports nothing)."""

    paper_name: str
    source: str  # e.g. "Table 1 row 7"
    group: int | None = None
    top1: float | None = None
    top1_distilled: float | None = None
    gpu_ms: float | None = None
    cpu_ms: float | None = None
    params_m: float | None = None
    macs_g: float | None = None
    resolution: int = 224
    # Table 12: iPhone 13 latency through Apple's ModelBench app.
    iphone_ms: float | None = None


@dataclass(frozen=True)
class ModelEntry:
    name: str
    family: str
    # builder(variant=..., resolution=...) -> nn.Module in eval mode, deploy form.
    builder: Callable[..., nn.Module] | None
    paper: PaperFacts
    variants: tuple[str, ...] = ("default",)
    # Identifies the code that defines the graph, for export caches.
    source_id: str = ""
    unavailable_reason: str | None = None
    suites: tuple[str, ...] = ()
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def available(self) -> bool:
        return self.builder is not None and self.unavailable_reason is None

    @property
    def default_variant(self) -> str:
        return self.variants[0]

    @property
    def default_resolution(self) -> int:
        return self.paper.resolution

    def resolve_variant(self, requested: str | None) -> str:
        """The variant this model runs as when `requested` is asked of a whole suite.

        Models without that variant run in their only form: asking a suite for
        `reshape` changes EfficientMod and leaves MobileNetV2 as it is."""
        if requested is None or requested not in self.variants:
            return self.default_variant
        return requested


_REGISTRY: dict[str, ModelEntry] = {}


def add_to_suite(name: str, suite: str) -> None:
    """Put an already registered model into one more suite (a later paper table)."""
    from dataclasses import replace

    entry = _REGISTRY[name]
    if suite not in entry.suites:
        _REGISTRY[name] = replace(entry, suites=entry.suites + (suite,))


def register(entry: ModelEntry) -> ModelEntry:
    if entry.name in _REGISTRY:
        raise RuntimeError(f"model {entry.name!r} registered twice")
    _REGISTRY[entry.name] = entry
    return entry


def _num(text: str) -> float | None:
    return float(text) if text.strip() else None


def load_paper_table(filename: str, table: str) -> dict[str, PaperFacts]:
    """Read one transcribed paper table (TSV, '#' comments) into PaperFacts by model name."""
    lines = [ln for ln in (DATA_DIR / filename).read_text().splitlines() if not ln.startswith("#")]
    facts = {}
    for row in csv.DictReader(lines, delimiter="\t"):
        facts[row["name"]] = PaperFacts(
            paper_name=row["paper_name"],
            source=f"{table} row {row['row']}",
            group=int(row["group"]) if row.get("group") else None,
            top1=_num(row["top1"]),
            top1_distilled=_num(row.get("top1_distilled", "")),
            gpu_ms=_num(row.get("gpu_ms", "")),
            cpu_ms=_num(row.get("cpu_ms", "")),
            iphone_ms=_num(row.get("iphone_ms", "")),
            params_m=_num(row["params_m"]),
            macs_g=_num(row["flops_g"]),
            resolution=int(row["resolution"]),
        )
    return facts


def file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def get_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name.lower(), _REGISTRY, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `bench.py list`"
        raise ModelError(f"unknown model {name!r}{hint}") from None


def list_entries(suite: str | None = None) -> list[ModelEntry]:
    _ensure_loaded()
    entries = list(_REGISTRY.values())
    if suite is not None:
        entries = [e for e in entries if suite in e.suites]
    return sorted(entries, key=lambda e: (e.paper.group or 99, _row_number(e), e.name))


def _row_number(e: ModelEntry) -> int:
    try:
        return int(e.paper.source.rsplit(" ", 1)[-1])
    except ValueError:
        return 999


def suites() -> list[str]:
    _ensure_loaded()
    return sorted({s for e in _REGISTRY.values() for s in e.suites})


def create_model(name: str, *, variant: str | None = None, resolution: int | None = None,
                 checkpoint: str | Path | None = None) -> nn.Module:
    """Build a registered model in eval (deploy) form.

    variant: one of the entry's variants (EfficientMod: 'repeat' or 'reshape').
    resolution: input side length; models that bake it into the graph get it at build.
    checkpoint: a state dict file, loaded strictly (no missing or unexpected keys).
    """
    entry = get_entry(name)
    if not entry.available:
        raise ModelError(f"model {name!r} is not available yet: {entry.unavailable_reason}")
    variant = variant or entry.default_variant
    if variant not in entry.variants:
        raise ModelError(f"model {name!r} has no variant {variant!r}; it has {', '.join(entry.variants)}")
    resolution = resolution or entry.default_resolution
    model = entry.builder(variant=variant, resolution=resolution, checkpoint=checkpoint)
    return model.eval()


def load_checkpoint(model: nn.Module, path: str | Path) -> None:
    """Load a state dict strictly; released checkpoints may nest it under 'model'."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged or foreign file: say so in one line
        raise ModelError(f"checkpoint {str(path)!r} cannot be read: {str(exc).splitlines()[0]}") from None
    for key in ("model", "state_dict", "model_ema"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise ModelError(f"checkpoint {str(path)!r} holds no state dict")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    misshapen = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or misshapen:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshapen)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {keys[0]})")
        raise ModelError(f"checkpoint {str(path)!r} does not fit the model: " + ", ".join(parts))
    model.load_state_dict(state, strict=True)


_LOADED = False


def _ensure_loaded() -> None:
    # Family modules register on import; import them lazily so `import models`
    # stays cheap (timm alone costs seconds).
    global _LOADED
    if not _LOADED:
        _LOADED = True
        from . import efficientmod, regressed, timm_peers, unavailable  # noqa: F401
        from . import mobile_variants  # noqa: F401  (after the models it adds to Table 12)
