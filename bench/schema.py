"""The results schema: every column of a results row, written once, as data.

Each column has a name (the CSV header, never renamed: users' files and scripts read
it), a type, a group and a one-line meaning. Everything else derives from this one
table: the column order, the required and identity columns, how a cell is written
and read back, the typed row parts (one frozen dataclass per group) and the
`ResultRow` they make.

Versions: files written before the schema had a number have no `schema_version`
column and are version 1 (their header is any older subset of these columns that
holds the required ones); every row written now carries SCHEMA_VERSION.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from dataclasses import dataclass
from typing import Mapping

import numpy as np

# 2: the `schema_version` column, and the columns below as one table.
# 3: `invalid_codes`, the codes of the checks a row failed (bench/measurement.py CODES).
SCHEMA_VERSION = 3
# What a file without a `schema_version` column is.
UNVERSIONED = 1

# The columns each version introduced: a file of that version or later has them.
COLUMNS_SINCE = {2: ("latency_ms", "latency_ci_low_ms", "latency_ci_high_ms", "latency_stat"),
                 3: ("invalid_codes",)}

TYPES = ("text", "int", "float", "bool", "json")
# The groups, in the order their columns appear in a file; each is one part of a ResultRow.
GROUPS = ("identity", "placement", "protocol", "headline", "statistics", "busy", "model",
          "artifact", "machine", "software", "provenance")


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    group: str
    meaning: str
    required: bool = False  # a file without it is not a results file
    key: int = 0            # its place in the row's comparable identity (row_identity); 0: not in it


def _c(name, type_, group, meaning, *, required=False, key=0) -> Column:
    return Column(name, type_, group, meaning, required, key)


_SOFTWARE = ("torch", "onnx", "onnxruntime_gpu", "onnxruntime", "timm", "numpy", "coremltools")

SCHEMA: tuple[Column, ...] = (
    _c("schema_version", "int", "provenance", "version of this schema the row was written with"),
    # identity: which measurement this is
    _c("row_id", "text", "identity", "the row's id in its file (also names its samples file)", required=True),
    _c("run_id", "text", "identity", "the run that wrote the row"),
    _c("model", "text", "identity", "model name or bring-your-own spec", required=True, key=1),
    _c("variant", "text", "identity", "the model's variant", required=True, key=2),
    _c("runtime", "text", "identity", "the runner, as named by --runtime", required=True, key=3),
    _c("provider", "text", "placement", "the library or execution provider the runner used"),
    _c("device", "text", "identity", "device class (cpu, cuda, mac, iphone)", required=True, key=4),
    _c("device_name", "text", "placement", "the device's own name"),
    _c("precision", "text", "identity", "numeric precision (fp32, fp16, ...)", key=5),
    _c("batch", "int", "identity", "images per inference", required=True, key=7),
    _c("resolution", "int", "identity", "input side in pixels", required=True, key=8),
    _c("threads", "int", "identity", "CPU threads the session used (empty on GPU)", key=6),
    _c("threads_requested", "int", "protocol", "threads asked for by --threads"),
    # placement: where it ran
    _c("cluster", "text", "placement", "Ray cluster address of a fleet run, or 'local'"),
    _c("node", "text", "placement", "the node it ran on (Ray id, or '-:HOSTNAME')"),
    # protocol: how it was timed
    _c("schedule", "text", "protocol", "how jobs were interleaved (round-robin, single, ...)"),
    _c("interleave_group", "text", "protocol", "rows timed together, block by block"),
    _c("block_size", "int", "protocol", "iterations per timing block"),
    _c("block_warmup", "int", "protocol", "untimed iterations before each block"),
    _c("warmup", "int", "protocol", "untimed iterations before timing"),
    _c("iters", "int", "protocol", "timed iterations (samples stored)"),
    # headline: the latency at the machine's normal speed (bench/measurement.py)
    _c("latency_ms", "float", "headline", "the model's latency at the machine's normal speed"),
    _c("latency_ci_low_ms", "float", "headline", "95% interval of latency_ms, low"),
    _c("latency_ci_high_ms", "float", "headline", "95% interval of latency_ms, high"),
    _c("latency_stat", "text", "headline", "the statistic latency_ms is (median or mean)"),
    _c("blocks_used", "int", "headline", "blocks timed at the machine's normal speed"),
    _c("slowed_share", "float", "headline", "share of blocks set aside as slowed by the host"),
    _c("slowed_factor", "float", "headline", "how much slower the set-aside blocks ran"),
    _c("machine_speed", "float", "headline", "the machine's speed while timing, against its reference"),
    _c("machine_ref_ms", "float", "headline", "the machine probe's reference time"),
    _c("machine_ref_source", "text", "headline", "where the probe's reference came from"),
    _c("model_ref_ms", "float", "headline", "this model's fast figure kept for the machine"),
    _c("rel_reference", "text", "headline", "the reference model timed beside the row in the same rounds (--reference)"),
    _c("rel_latency", "float", "headline", "the row's latency relative to the reference, paired round by round"),
    _c("rel_ci_low", "float", "headline", "95% interval of rel_latency, low"),
    _c("rel_ci_high", "float", "headline", "95% interval of rel_latency, high"),
    _c("rel_codes", "text", "headline", "the codes of the checks rel_latency failed (imprecise, no-interval, slowed); "
       "empty when it is VALID"),
    _c("calibrated_ms", "float", "headline", "rel_latency x the reference's fast-mode latency kept for this machine"),
    _c("calibrated_ci_low_ms", "float", "headline", "95% interval of calibrated_ms, low"),
    _c("calibrated_ci_high_ms", "float", "headline", "95% interval of calibrated_ms, high"),
    _c("calibration", "text", "headline", "where the reference's latency for calibrated_ms came from"),
    # statistics (milliseconds), all derived from the stored samples
    _c("mean_ms", "float", "statistics", "mean of the samples"),
    _c("std_ms", "float", "statistics", "standard deviation of the samples"),
    _c("median_ms", "float", "statistics", "median of the samples", required=True),
    _c("median_ci_low_ms", "float", "statistics", "95% interval of the median, low"),
    _c("median_ci_high_ms", "float", "statistics", "95% interval of the median, high"),
    _c("mean_ci_low_ms", "float", "statistics", "95% interval of the mean, low"),
    _c("mean_ci_high_ms", "float", "statistics", "95% interval of the mean, high"),
    _c("headline_stat", "text", "protocol", "the statistic the precision target is about (--stat)"),
    _c("ci_rel_half_width", "float", "statistics", "relative half-width of the headline's interval"),
    _c("target_ci", "float", "protocol", "wanted relative half-width (--target-ci)"),
    _c("p90_ms", "float", "statistics", "90th percentile of the samples"),
    _c("p99_ms", "float", "statistics", "99th percentile of the samples"),
    _c("min_ms", "float", "statistics", "fastest sample"),
    _c("max_ms", "float", "statistics", "slowest sample"),
    _c("cv", "float", "statistics", "coefficient of variation of the samples"),
    _c("valid", "bool", "statistics", "whether the row passed its validity check", required=True),
    _c("invalid_reason", "text", "statistics", "why it did not, in a sentence for each check it failed"),
    _c("invalid_codes", "text", "statistics", "the codes of the checks it failed, comma-separated "
       "(imprecise, no-interval, too-few-normal-blocks, slowed, busy); empty when valid"),
    _c("load_ms", "float", "statistics", "time to load the model into the runtime"),
    _c("first_run_ms", "float", "statistics", "the first inference after loading"),
    # busy: other processes on the machine while timing (bench/busy.py), and the per-block settling
    _c("blocks", "int", "busy", "blocks whose other processes' CPU use was recorded"),
    _c("disturbed_blocks", "int", "busy", "blocks timed while other processes were busy"),
    _c("others_cpu_max", "float", "busy", "most cores other processes used in a block"),
    _c("others_cpu_mean", "float", "busy", "mean cores other processes used"),
    _c("steal_pct", "float", "busy", "CPU steal (percent) while timing"),
    _c("cpu_mhz", "float", "busy", "median CPU clock while timing"),
    _c("settle_iters_mean", "float", "busy", "mean iterations a block needed to settle"),
    # model
    _c("params_m", "float", "model", "parameters, millions (counted)"),
    _c("macs_g", "float", "model", "multiply-accumulates per image, billions (counted)"),
    _c("top1", "float", "model", "ImageNet top-1 (%) the paper reports"),
    _c("paper_params_m", "float", "model", "parameters the paper reports, millions"),
    _c("paper_macs_g", "float", "model", "MACs the paper reports, billions"),
    _c("paper_gpu_ms", "float", "model", "GPU latency the paper reports"),
    _c("paper_cpu_ms", "float", "model", "CPU latency the paper reports"),
    _c("paper_resolution", "int", "model", "resolution of the paper's figures"),
    _c("paper_source", "text", "model", "where the paper figures come from ('user' for your own models)"),
    _c("checkpoint", "text", "model", "the weights: 'random-init' or the checkpoint's digest"),
    # artifact: what was timed
    _c("artifact_format", "text", "artifact", "torch, onnx or coreml"),
    _c("exporter", "text", "artifact", "what made the artifact"),
    _c("opset", "int", "artifact", "ONNX opset"),
    _c("export_parity_rel_err", "float", "artifact", "export's relative error against PyTorch"),
    _c("artifact_sha256", "text", "artifact", "SHA-256 of the artifact timed"),
    _c("runtime_settings", "json", "protocol", "the runner's settings (JSON)"),
    # machine and software
    _c("cpu_name", "text", "machine", "CPU model"),
    _c("cpu_logical", "int", "machine", "logical cores"),
    _c("cpu_physical", "int", "machine", "physical cores"),
    _c("hostname", "text", "machine", "host name"),
    _c("os", "text", "machine", "operating system and kernel"),
    _c("python", "text", "software", "Python version"),
    _c("gpu_driver", "text", "machine", "GPU driver version"),
    _c("cuda_version", "text", "software", "CUDA version"),
    _c("cudnn_version", "text", "software", "cuDNN version"),
    _c("gpu_clock_mhz", "float", "machine", "median GPU clock while timing"),
    _c("gpu_mem_clock_mhz", "float", "machine", "median GPU memory clock while timing"),
    _c("gpu_memory_mb", "float", "machine", "GPU memory"),
    *(_c(f"{lib}_version", "text", "software", f"{lib.replace('_', '-')} version") for lib in _SOFTWARE),
    # provenance
    _c("git_commit", "text", "provenance", "modbench's commit"),
    _c("git_dirty", "bool", "provenance", "whether modbench's tree had changes"),
    _c("timestamp", "text", "provenance", "when the row was written (UTC, ISO 8601)"),
    _c("samples_file", "text", "provenance", "the row's samples, relative to the results file", required=True),
    _c("extra", "json", "provenance", "runner- and command-specific facts (JSON)"),
)

BY_NAME: dict[str, Column] = {c.name: c for c in SCHEMA}
# The header of a file of the current version, in order.
COLUMNS: list[str] = [c.name for c in SCHEMA]
REQUIRED: tuple[str, ...] = tuple(c.name for c in SCHEMA if c.required)
# Two rows equal in all of these measure the same thing; reports, the gate and
# --resume compare rows by them (row_id is derived from them when a run is planned).
IDENTITY: tuple[str, ...] = tuple(c.name for c in sorted((c for c in SCHEMA if c.key), key=lambda c: c.key))


class CellError(ValueError):
    """A cell that is not a value of its column's type (the store says where)."""


# --- cells ---------------------------------------------------------------------------

def cell_text(name: str, value) -> str:
    """A value as the store writes it in column `name` (and as rows are compared as text)."""
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if v != v:
            return ""
        if BY_NAME.get(name) is not None and BY_NAME[name].type == "int" and v.is_integer():
            return str(int(v))
        # Ten significant digits: a ratio of 0.0031 keeps its precision as a latency does.
        return f"{v:.10g}"
    if isinstance(value, (np.integer,)):
        return str(int(value))
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def cell_value(name: str, text):
    """A cell read from a file as its column's type; None when empty. Columns this
    schema does not know stay text. CellError when the text is not of the type."""
    if text is None or text == "":
        return None
    col = BY_NAME.get(name)
    kind = col.type if col is not None else "text"
    if kind in ("text", "json"):
        # JSON columns stay their text (as written, keys sorted): readers that want
        # the object parse it (ResultRow.from_record does).
        return str(text)
    if kind == "bool":
        s = str(text).strip().lower()
        if s in ("true", "1", "yes"):
            return True
        if s in ("false", "0", "no"):
            return False
        raise CellError(f"{name} {text!r} is not True or False")
    # Strictly a decimal number as the store writes one: not '1_000', ' 5', 'inf' or 'nan'
    # (float() takes them all; a hand-edited cell is then read as something else).
    if not _NUMBER.match(str(text)):
        raise CellError(f"{name} {text!r} is not a number" if not _NONFINITE.match(str(text))
                        else f"{name} {text!r} is not a finite number")
    f = float(text)
    if not math.isfinite(f):
        raise CellError(f"{name} {text!r} is not a finite number")
    if kind == "int":
        if not f.is_integer():
            raise CellError(f"{name} {text!r} is not a whole number")
        f = int(f)
    low = _lowest(name, kind)
    if low is not None and f < low:
        raise CellError(f"{name} {text!r} is below {low} (a {'count' if kind == 'int' else 'duration'} "
                        "is never negative)" if low == 0 else f"{name} {text!r} is below {low}")
    return f


_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_NONFINITE = re.compile(r"^[+-]?(?:inf|infinity|nan)$", re.IGNORECASE)
# Counts that are at least one where a row has them; every other count, and every
# duration (a `_ms` column), is at least zero.
_AT_LEAST_ONE = ("schema_version", "batch", "resolution", "threads", "threads_requested", "iters", "block_size",
                 "cpu_logical", "cpu_physical")


def _lowest(name: str, kind: str):
    if name in _AT_LEAST_ONE:
        return 1
    if kind == "int" or name.endswith("_ms"):
        return 0
    return None


def _plain(value):
    """A value as a typed row holds it: None for missing (NaN, pandas' empty)."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def typed(record: Mapping) -> dict:
    """A row read from a file (a DataFrame record) with every missing value None."""
    return {k: _plain(v) for k, v in record.items()}


def row_identity(row: Mapping) -> tuple:
    """The identity of a row as comparable text, one entry per IDENTITY column."""
    return tuple(cell_text(c, _plain(row.get(c))) for c in IDENTITY)


# --- typed row parts -------------------------------------------------------------------

_PY = {"text": "str | None", "int": "int | None", "float": "float | None", "bool": "bool | None",
       "json": "dict | None"}


def _part(group: str) -> type:
    """The frozen dataclass of one group: a field per column, each None unless given."""
    fields = [(c.name, _PY[c.type], dataclasses.field(default=None)) for c in SCHEMA if c.group == group]
    cls = dataclasses.make_dataclass(group.title(), fields, frozen=True)
    cls.__doc__ = f"The {group} columns of a results row (bench/schema.py)."
    cls.__module__ = __name__
    return cls


PARTS: dict[str, type] = {g: _part(g) for g in GROUPS}
Identity = PARTS["identity"]
Placement = PARTS["placement"]
Protocol = PARTS["protocol"]
Headline = PARTS["headline"]
Statistics = PARTS["statistics"]
Busy = PARTS["busy"]
ModelFacts = PARTS["model"]
Artifact = PARTS["artifact"]
Machine = PARTS["machine"]
Software = PARTS["software"]
Provenance = PARTS["provenance"]


def _values(source) -> dict:
    if dataclasses.is_dataclass(source):
        return {f.name: getattr(source, f.name) for f in dataclasses.fields(source)}
    return dict(source)


def _json(name: str, v):
    if isinstance(v, str) and BY_NAME[name].type == "json":
        try:
            return json.loads(v)
        except ValueError:
            return v  # an older file's free text: kept as it was
    return v


@dataclass(frozen=True)
class ResultRow:
    """One results row as its typed parts; `to_record` is what the store writes."""

    identity: Identity
    placement: Placement
    protocol: Protocol
    headline: Headline
    statistics: Statistics
    busy: Busy
    model: ModelFacts
    artifact: Artifact
    machine: Machine
    software: Software
    provenance: Provenance

    @classmethod
    def compose(cls, *sources) -> "ResultRow":
        """A row from parts and column mappings (a runner's description, a summary).
        A column given twice with two different values is a bug, never an overwrite."""
        merged: dict = {}
        for source in sources:
            for name, value in _values(source).items():
                value = _plain(value)
                if value is None:
                    continue
                if name not in BY_NAME:
                    raise ValueError(f"column {name!r} is not in the results schema")
                if name in merged and merged[name] != value:
                    raise ValueError(f"column {name!r} is given twice: {merged[name]!r} and {value!r}")
                merged[name] = value
        merged.setdefault("schema_version", SCHEMA_VERSION)
        return cls.from_record(merged)

    @classmethod
    def from_record(cls, record: Mapping) -> "ResultRow":
        """Typed parts from a flat row (as `read_rows` hands it out); columns the
        schema does not know are left out."""
        rec = typed(record)
        parts = {}
        for g in GROUPS:
            parts[g] = PARTS[g](**{c.name: _json(c.name, rec.get(c.name))
                                   for c in SCHEMA if c.group == g})
        return cls(**parts)

    def to_record(self) -> dict:
        """The flat row, every column of the schema, in file order."""
        rec = {}
        for g in GROUPS:
            rec.update(_values(getattr(self, g)))
        return {name: rec.get(name) for name in COLUMNS}

    def __getitem__(self, name: str):
        return getattr(getattr(self, BY_NAME[name].group), name)

    def get(self, name: str, default=None):
        col = BY_NAME.get(name)
        if col is None:
            return default
        v = getattr(getattr(self, col.group), name)
        return default if v is None else v


def docs_table() -> str:
    """The column table of docs/results-store.md, made from SCHEMA."""
    lines = ["| column | type | group | meaning |", "|---|---|---|---|"]
    for c in SCHEMA:
        flags = " (required)" if c.required else ""
        lines.append(f"| `{c.name}` | {c.type} | {c.group} | {c.meaning}{flags} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m modbench.schema > table: the docs' column table
    print(docs_table(), end="")
