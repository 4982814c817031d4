"""Results files as the reports see them: rows grouped into columns of one setting each.

A column is one (device class, device name, runtime, precision, threads, batch):
numbers in one column are comparable, and nothing from two columns is ever averaged.
Within a column a model may appear at several resolutions and variants; tables pick
the one they need and sweeps show the rest.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..measurement import Measurement, from_row
from ..store import ResultsError, StoredRow, read_results, stored_rows
from ..vocab import UnknownDevice, device_kind, runtime_name
from .reference import paper_label

# What a results row must carry for the reports to place it.
NEEDED = ("row_id", "model", "variant", "runtime", "device", "device_name", "precision", "batch",
          "resolution", "threads", "interleave_group", "block_size", "iters", "median_ms",
          "samples_file", "valid", "run_id")
COLUMN_KEY = ("device", "device_name", "runtime", "precision", "threads", "batch")
# The variant a model's headline number is taken from when several were timed:
# EfficientMod's released code (and the paper's tables) use Repeat.
HEADLINE_VARIANTS = ("repeat", "default")


class Row(StoredRow):
    """One results row as the reports use it: the store's row, plus its Measurement."""

    def measurement(self) -> Measurement:
        """The row's samples with the blocks they were timed in (for honest intervals),
        and the probe readings and reference its headline was judged against."""
        return from_row(self.data, self.samples(), self.probe())


@dataclass
class Column:
    key: tuple
    rows: list[Row] = field(default_factory=list)

    @property
    def device(self) -> str:
        return self.key[0]

    @property
    def label(self) -> str:
        device, name, runtime, precision, threads, batch = self.key
        parts = [str(name), str(runtime)]
        if device == "cpu":
            parts.append(f"{threads} thr")
        if precision != "fp32":
            parts.append(str(precision))
        if int(batch) != 1:
            parts.append(f"batch {batch}")
        return ", ".join(parts)

    @property
    def short_label(self) -> str:
        device, name, runtime, precision, threads, batch = self.key
        return f"{device.upper()} {runtime}" + (f" {threads}T" if device == "cpu" else "") + \
            (f" b{batch}" if int(batch) != 1 else "")

    def find(self, model: str, variant: str | None = None, resolution: int | None = None) -> Row | None:
        """The row of `model` in this column: the variant asked (else the headline one),
        at `resolution` (else the model's paper resolution, else the only one)."""
        cands = [r for r in self.rows if r["model"] == model]
        if resolution is not None:
            cands = [r for r in cands if int(r["resolution"]) == resolution]
        elif len({int(r["resolution"]) for r in cands}) > 1:
            paper = [r for r in cands if _paper_res(r) == int(r["resolution"])]
            cands = paper or [r for r in cands if int(r["resolution"]) == 224]
        if variant is not None:
            cands = [r for r in cands if r["variant"] == variant]
        elif len({r["variant"] for r in cands}) > 1:
            head = [r for r in cands if r["variant"] in HEADLINE_VARIANTS]
            cands = head or cands[:1]
        return cands[0] if cands else None

    def models(self) -> list[str]:
        return list(dict.fromkeys(r["model"] for r in self.rows))


def _paper_res(row: Row) -> int | None:
    return row.data.get("paper_resolution")


@dataclass
class ReportInputs:
    files: list[Path]
    columns: list[Column]
    notes: list[str] = field(default_factory=list)
    # How the report names and marks models: display names (`--name SPEC=LABEL`) and
    # the models drawn highlighted (`--highlight`; the user's own models always are).
    names: dict = field(default_factory=dict)
    highlight: set = field(default_factory=set)
    only_measured: bool = False

    def label(self, model: str) -> str:
        return self.names.get(model) or paper_label(model)

    def user_models(self) -> set:
        """Models the user brought (timm:NAME, a .onnx file, module:function)."""
        return {r["model"] for r in self.rows() if str(r.data.get("paper_source") or "").startswith("user")}

    def is_user(self, model: str) -> bool:
        return model in self.user_models()

    def highlighted(self, model: str) -> bool:
        """The user's models and any named with --highlight; with neither, the paper's
        own subject (EfficientMod), as the paper's figures draw it."""
        chosen = set(self.highlight) | self.user_models()
        if chosen:
            return model in chosen
        return model.startswith("efficientmod")

    def models(self) -> list[str]:
        return list(dict.fromkeys(r["model"] for r in self.rows()))

    def rows(self) -> list[Row]:
        return [r for c in self.columns for r in c.rows]

    def by_device(self, device: str) -> list[Column]:
        return [c for c in self.columns if c.device == device]

    def batch_families(self) -> list[list[Column]]:
        """Groups of two or more columns that differ only in batch size, by batch:
        the batch sweeps (a column's key ends with its batch)."""
        families: dict[tuple, list[Column]] = {}
        for c in self.columns:
            families.setdefault(c.key[:5], []).append(c)
        return [sorted(cols, key=lambda c: int(c.key[5])) for cols in families.values() if len(cols) > 1]


def read_inputs(paths: list[str | Path], duplicates: str = "latest") -> ReportInputs:
    """Read results files into columns; ResultsError (one line) for anything unusable.

    duplicates: what to do when one column has the same model, variant and
    resolution from two runs (e.g. `results/*.csv`): 'latest' (default) keeps the row
    with the latest timestamp and says so in the notes, 'refuse' stops. The same row
    given twice (one run copied to two places) is always refused: it is a mistake,
    not a newer measurement."""
    if not paths:
        raise ResultsError("name at least one results CSV")
    files, seen_files, legacy = [], set(), set()
    columns: dict[tuple, Column] = {}
    notes = []
    for p in paths:
        path = Path(p)
        if path.resolve() in seen_files:
            raise ResultsError(f"{path} is given twice")
        seen_files.add(path.resolve())
        df = read_results(path)
        missing = [c for c in NEEDED if c not in df.columns]
        if missing:
            raise ResultsError(f"{path} lacks column {missing[0]!r}; it is not a modbench results CSV this "
                               "report can read")
        if df.empty:
            raise ResultsError(f"{path} has no result rows")
        files.append(path)
        for stored in stored_rows(df, path):
            rec = stored.data
            row = Row(rec, path)
            # Every number a report prints rests on the row's samples: a row whose samples
            # (or probe readings) cannot be trusted stops the report, one line naming it.
            row.arrays()
            try:
                kind = device_kind(rec["device"])
            except UnknownDevice as exc:
                raise ResultsError(f"{path}: row {rec['row_id']}: {exc}") from None
            # A column's first key is the device's class (the paper's GPU/CPU/mobile
            # columns); the device name keeps two machines of one class apart.
            old = rec["runtime"]
            rec["runtime"] = runtime_name(old, rec["device"])
            if rec["runtime"] != old:
                legacy.add((path.name, old, rec["runtime"]))
            key = (kind,) + tuple(rec[k] for k in COLUMN_KEY[1:])
            on = str(rec["row_id"]).partition("@")[2]
            if on:  # a fleet run timed on several machines (--on LABEL): one column each
                key = key[:1] + (f"{key[1]} @{on}",) + key[2:]
            col = columns.setdefault(key, Column(key))
            clash = [r for r in col.rows if (r["model"], r["variant"], int(r["resolution"])) ==
                     (rec["model"], rec["variant"], int(rec["resolution"]))]
            if clash:
                other = clash[0]
                if (other.data.get("run_id"), other.id) == (rec.get("run_id"), rec["row_id"]):
                    raise ResultsError(f"{rec['model']} is measured twice by the same row: {other.ref} and {row.ref} "
                                       f"(run {rec.get('run_id')}) are one run given twice; give one of the files")
                if duplicates != "latest":
                    raise ResultsError(
                        f"{rec['model']} ({rec['variant']}, {int(rec['resolution'])}px) is measured twice in "
                        f"column '{col.label}': {other.ref} and {row.ref}; give one of the files, or "
                        "--duplicates latest to keep the newer row")
                keep, drop = sorted([other, row], key=lambda r: str(r.data.get("timestamp")))[::-1]
                col.rows[col.rows.index(other)] = keep
                notes.append(f"{drop.ref} replaced by the newer {keep.ref}")
            else:
                col.rows.append(row)
    ordered = sorted(columns.values(), key=lambda c: (c.device != "gpu", str(c.key[1]), str(c.key[2]),
                                                      -(c.key[4] or 0), c.key[5]))
    for name, old, new in sorted(legacy):
        notes.append(f"{name}: runtime '{old}' (the name used before runners were named by device) "
                     f"read as '{new}'")
    return ReportInputs(files, ordered, notes)

