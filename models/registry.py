"""One registry of every model the suite knows, keyed by a stable timm-style name.

Each family module registers its entries when imported, as timm's do: a builder
function decorated with `@register_model("name", ...)`, the name written where the
builder is defined. This module imports none of the families (models/__init__.py
discovers and imports them). The paper's metadata comes from data files
(paper_table1.tsv and friends), looked up by the registered name, never from code.
Models known only at run time (models/byo.py) go through `register(entry)`.
"""
from __future__ import annotations

import csv
import functools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from modbench.common.errors import ModbenchError, first_line
from modbench.common.fsio import sha256_file
from modbench.common.registry import Registry
from modbench.common.invocation import command

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
    # A model given as an ONNX file (bring-your-own): timed as the file is, never
    # built or exported; builder is None.
    onnx_path: str | None = None
    # What was assumed where the paper is silent (configs it does not publish).
    assumption: str = ""

    @property
    def available(self) -> bool:
        if self.unavailable_reason is not None:
            return False
        return self.builder is not None or self.onnx_path is not None

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


_REGISTRY: Registry[ModelEntry] = Registry("model", ModelError)
# suite -> models another family puts into it (a later paper table reusing a peer).
# Kept apart and merged on lookup, so families can register in any order.
_SUITE_ADDITIONS: dict[str, list[str]] = {}


def add_to_suite(name: str, suite: str) -> None:
    """Put a model, registered by any family (before or after this call), into one more suite."""
    members = _SUITE_ADDITIONS.setdefault(suite, [])
    if name not in members:
        members.append(name)


def suite_additions() -> dict[str, list[str]]:
    return {k: list(v) for k, v in _SUITE_ADDITIONS.items()}


def _with_added_suites(entry: ModelEntry) -> ModelEntry:
    extra = tuple(s for s, names in _SUITE_ADDITIONS.items()
                  if entry.name in names and s not in entry.suites)
    return replace(entry, suites=entry.suites + extra) if extra else entry


def register(entry: ModelEntry, *, replace: bool = False) -> ModelEntry:
    """Add an entry. replace: a run-time entry (a user's own model, models/byo.py)
    given again replaces the earlier one; a family registering a name twice is a bug."""
    return _REGISTRY.add(entry.name, entry, replace=replace)


def registered(name: str) -> ModelEntry | None:
    """The entry of that name, or None (no suggestions, no error)."""
    e = _REGISTRY.get(name)
    return _with_added_suites(e) if e is not None else None


def _num(text: str) -> float | None:
    return float(text) if text.strip() else None


@functools.cache
def read_paper_table(filename: str, table: str) -> dict[str, PaperFacts]:
    """Read one transcribed paper table (TSV, '#' comments) into PaperFacts by model name.
    A `source` column, where present, names the row's place in the paper verbatim."""
    lines = [ln for ln in (DATA_DIR / filename).read_text().splitlines() if not ln.startswith("#")]
    facts = {}
    for row in csv.DictReader(lines, delimiter="\t"):
        facts[row["name"]] = PaperFacts(
            paper_name=row["paper_name"],
            source=row.get("source") or f"{table} row {row['row']}",
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
    return sha256_file(path)[:16]


@dataclass(frozen=True)
class PaperTable:
    """A transcribed paper table; an entry's facts are its row of the entry's name."""

    filename: str
    label: str

    def facts(self, name: str) -> PaperFacts:
        return read_paper_table(self.filename, self.label)[name]


TABLE1 = PaperTable("paper_table1.tsv", "Table 1")
TABLE6 = PaperTable("paper_table6.tsv", "Table 6")
TABLE12 = PaperTable("paper_table12.tsv", "Table 12")
APPENDIX_L = PaperTable("paper_appendix_l.tsv", "App. L (kernel)")
# Rows of tables transcribed one or two at a time (Table 2/4/6, App. L's MLP row);
# each row gives its place in the paper in a `source` column.
OTHER_TABLES = PaperTable("paper_other.tsv", "")


def register_model(name: str, *, family: str, paper: PaperTable | Callable[[str], PaperFacts] | PaperFacts,
                   source_id: str, variants: tuple[str, ...] = ("default",), suites: tuple[str, ...] = (),
                   tags: tuple[str, ...] = (), assumption: str = "", unavailable: str | None = None):
    """Decorate a builder `fn(variant, resolution, checkpoint=None) -> nn.Module` to
    register it as model `name`, written literally where the builder is defined.

    paper: the PaperTable holding the row of that name, or a function of the name
    (facts derived from another entry's row), or PaperFacts for a model no paper
    reports. unavailable: why the model cannot be built; the entry gets no builder."""
    def decorate(builder):
        if isinstance(paper, PaperTable):
            facts = paper.facts(name)
        elif isinstance(paper, PaperFacts):
            facts = paper
        else:
            facts = paper(name)
        register(ModelEntry(
            name=name, family=family, builder=None if unavailable is not None else builder,
            paper=facts, variants=tuple(variants), source_id=source_id, unavailable_reason=unavailable,
            suites=tuple(suites), tags=tuple(tags), assumption=assumption))
        return builder
    return decorate


def get_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        # timm's own name is the better answer than a near one of ours.
        hint = f"; timm has it: name it timm:{name}" if _timm_has(name) else ""
        _REGISTRY.lookup(name, hint, otherwise=f"; see `{command()} list`")
    return _with_added_suites(_REGISTRY[name])


def _timm_has(name: str) -> bool:
    try:
        import timm  # only on this error path: it costs seconds
    except ImportError:
        return False
    return bool(name) and ":" not in name and timm.is_model(name)


def list_entries(suite: str | None = None) -> list[ModelEntry]:
    entries = [_with_added_suites(e) for e in _REGISTRY.values()]
    if suite is not None:
        entries = [e for e in entries if suite in e.suites]
    return sorted(entries, key=lambda e: (e.paper.group or 99, _row_number(e), e.name))


def _row_number(e: ModelEntry) -> int:
    try:
        return int(e.paper.source.rsplit(" ", 1)[-1])
    except ValueError:
        return 999


def suites() -> list[str]:
    return sorted({s for e in list_entries() for s in e.suites})


def create_model(name: str, *, variant: str | None = None, resolution: int | None = None,
                 checkpoint: str | Path | None = None) -> nn.Module:
    """Build a registered model in eval (deploy) form.

    variant: one of the entry's variants (EfficientMod: 'repeat' or 'reshape').
    resolution: input side length; models that bake it into the graph get it at build.
    checkpoint: a state dict file, loaded strictly (no missing or unexpected keys).
    """
    entry = get_entry(name)
    if entry.onnx_path is not None:
        raise ModelError(f"model {name!r} is an ONNX file; it has no PyTorch module to build")
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
    path = Path(path)
    if path.is_dir():
        raise ModelError(f"checkpoint {str(path)!r} is a folder; give the state dict file in it")
    if not path.is_file():
        raise ModelError(f"checkpoint {str(path)!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged or foreign file: say so in one line
        raise ModelError(f"checkpoint {str(path)!r} cannot be read: {first_line(exc)}") from None
    for key in ("model", "state_dict", "model_ema"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
            break
    if not isinstance(state, dict):
        raise ModelError(f"checkpoint {str(path)!r} holds no state dict")
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        k = not_tensors[0]
        raise ModelError(f"checkpoint {str(path)!r} is not a state dict: its value {k!r} is a "
                         f"{type(state[k]).__name__}, not a tensor ({len(not_tensors)} such values)")
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
