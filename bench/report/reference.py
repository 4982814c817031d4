"""The paper's numbers and latency claims, read from the transcribed data files."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from modbench.models import ModelError, get_entry

DATA_DIR = Path(__file__).resolve().parent / "data"
REFERENCE_FILE = DATA_DIR / "paper_reference.tsv"
CLAIMS_FILE = DATA_DIR / "paper_claims.tsv"

# The devices of the paper's main tables, and the class each one stands for.
PAPER_GPU = "P100"
PAPER_CPU = "Xeon E5-2680"
PAPER_DEVICE_CLASS = {PAPER_GPU: "gpu", PAPER_CPU: "cpu", "T4": "gpu", "V100-SXM2": "gpu", "A100": "gpu",
                      "iPhone 13": "mobile"}
RELATIONS = ("faster", "slower", "no_slower", "same")
# "same latency": the measured ratio's interval must lie within this of 1.
SAME_TOLERANCE = 0.10


@dataclass(frozen=True)
class RefValue:
    table: str
    row: int
    model: str
    label: str
    metric: str
    device: str
    batch: int
    value: float

    @property
    def source(self) -> str:
        return f"{self.table} row {self.row}"


@dataclass(frozen=True)
class Claim:
    id: str
    device: str  # "gpu" or "cpu"
    a: str
    a_variant: str | None
    b: str
    b_variant: str | None
    relation: str
    paper_change_pct: float | None
    statement: str
    source: str


def _rows(path: Path) -> list[dict]:
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t"))


@lru_cache(maxsize=1)
def reference() -> tuple[RefValue, ...]:
    return tuple(RefValue(r["table"], int(r["row"]), r["model"], r["label"], r["metric"], r["device"],
                          int(r["batch"]), float(r["value"])) for r in _rows(REFERENCE_FILE))


@lru_cache(maxsize=1)
def claims() -> tuple[Claim, ...]:
    out = []
    for r in _rows(CLAIMS_FILE):
        if r["relation"] not in RELATIONS or r["device"] not in ("gpu", "cpu"):
            raise ValueError(f"{CLAIMS_FILE.name}: claim {r['id']} has a bad relation or device")
        out.append(Claim(r["id"], r["device"], r["a"], r["a_variant"] or None, r["b"], r["b_variant"] or None,
                         r["relation"], float(r["paper_change_pct"]) if r["paper_change_pct"] else None,
                         r["statement"], r["source"]))
    return tuple(out)


def table(name: str) -> list[RefValue]:
    return [v for v in reference() if v.table == name]


def table_rows(name: str) -> list[tuple[int, str, str]]:
    """(row, model, label) of one paper table, in the paper's order."""
    seen = {}
    for v in table(name):
        seen.setdefault((v.row, v.model), v.label)
    return [(row, model, label) for (row, model), label in sorted(seen.items())]


def value(table_name: str, model: str, metric: str, device: str = "", batch: int = 1) -> float | None:
    for v in reference():
        if (v.table, v.model, v.metric, v.device, v.batch) == (table_name, model, metric, device, batch):
            return v.value
    return None


def paper_latency(model: str, device_class: str) -> tuple[float, str] | None:
    """The paper's main-setting latency of a model (P100 or Xeon) and where it is from."""
    device = PAPER_GPU if device_class == "gpu" else PAPER_CPU
    for t in ("Table 1", "Table 4", "Table 6", "App. L (attention)", "App. L (kernel)", "App. L (MLP)"):
        for v in table(t):
            if v.model == model and v.metric == "latency_ms" and v.device == device:
                return v.value, v.source
    return None


def paper_top1(model: str) -> tuple[float, bool] | None:
    """(top-1, distilled?) as the paper reports it; distilled only where no plain figure exists."""
    plain = distilled = None
    for v in reference():
        if v.model == model and v.metric == "top1" and plain is None:
            plain = v.value
        if v.model == model and v.metric == "top1_distilled" and distilled is None:
            distilled = v.value
    if plain is not None:
        return plain, False
    return (distilled, True) if distilled is not None else None


def paper_label(model: str) -> str:
    """The paper's name of a model: Table 1/10's label, else the registry's."""
    for v in reference():
        if v.model == model and v.table in ("Table 1", "Table 10"):
            return v.label
    try:
        return get_entry(model).paper.paper_name
    except ModelError:
        return model


def table1_group(model: str) -> int | None:
    """The paper's size group of a Table 1 model (1: ~4M, 2: ~6M, 3: ~12M params)."""
    g = value("Table 1", model, "group")
    return int(g) if g is not None else None
