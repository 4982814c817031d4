"""Results: one CSV per run, rows appended only when complete, samples beside it.

Layout for results/foo.csv:
  results/foo.csv            one row per (model, variant, runtime, threads, batch, resolution)
  results/foo.run.json       the run's request, so --resume can finish it
  results/foo.samples/ID.npz per-iteration milliseconds of row ID (key 'samples_ms')

A file is created exclusively (an existing one is never overwritten), each row is
one write on an O_APPEND descriptor followed by fsync, and a row's samples are in
place (atomic rename) before the row that points at them.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import ModbenchError

COLUMNS = [
    # identity of the measurement
    "row_id", "run_id", "model", "variant", "runtime", "provider", "device", "device_name",
    "precision", "batch", "resolution", "threads", "threads_requested",
    # how it was timed
    "schedule", "interleave_group", "block_size", "block_warmup", "warmup", "iters",
    # statistics (milliseconds), all derived from the stored samples
    "mean_ms", "std_ms", "median_ms", "median_ci_low_ms", "median_ci_high_ms",
    "p90_ms", "p99_ms", "min_ms", "max_ms", "cv", "valid", "invalid_reason",
    "load_ms", "first_run_ms",
    # the model
    "params_m", "macs_g", "top1", "paper_params_m", "paper_macs_g", "paper_gpu_ms",
    "paper_cpu_ms", "paper_resolution", "paper_source", "checkpoint",
    # the artifact timed
    "artifact_format", "exporter", "opset", "export_parity_rel_err", "artifact_sha256",
    "runtime_settings",
    # the machine and software
    "cpu_name", "cpu_logical", "cpu_physical", "hostname", "os", "python",
    # where it ran: the Ray cluster address (or 'local') and node id:hostname
    "cluster", "node",
    "gpu_driver", "cuda_version", "cudnn_version", "gpu_clock_mhz", "gpu_mem_clock_mhz",
    "gpu_memory_mb",
    "torch_version", "onnx_version", "onnxruntime_gpu_version", "onnxruntime_version",
    "timm_version", "numpy_version", "coremltools_version",
    "git_commit", "git_dirty", "timestamp", "samples_file", "extra",
]


class ResultsError(ModbenchError):
    """A results file that cannot be created, read or resumed."""


def samples_dir(csv_path: Path) -> Path:
    return csv_path.with_name(csv_path.stem + ".samples")


def run_config_path(csv_path: Path) -> Path:
    return csv_path.with_name(csv_path.stem + ".run.json")


def _line(values: list) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(values)
    return buf.getvalue()


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if v != v else repr(round(v, 6)) if abs(v) < 1e6 else repr(v)
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    return str(v)


class ResultsWriter:
    """Appends complete rows to a results CSV it created or was asked to resume."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def create(cls, path: Path, run_config: dict) -> "ResultsWriter":
        path = Path(path)
        check_writable_new(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        samples_dir(path).mkdir(exist_ok=True)
        _atomic_write(run_config_path(path), json.dumps(run_config, indent=1, sort_keys=True))
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".csv.tmp")
        with os.fdopen(fd, "w") as f:
            f.write(_line(COLUMNS))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # fails if someone created the file meanwhile
        except FileExistsError:
            raise ResultsError(f"{path} already exists; results are never overwritten") from None
        finally:
            os.unlink(tmp)
        return cls(path)

    def append(self, row: dict, samples_ms: np.ndarray) -> None:
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise ValueError(f"columns not in the schema: {sorted(unknown)}")
        rel = f"{samples_dir(self.path).name}/{row['row_id']}.npz"
        target = self.path.parent / rel
        fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, samples_ms=np.asarray(samples_ms, dtype=np.float64))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        line = _line([_cell(dict(row, samples_file=rel).get(c)) for c in COLUMNS]).encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def check_writable_new(path: Path) -> None:
    """Refuse an output that exists or whose folder cannot be written."""
    path = Path(path)
    if path.suffix != ".csv":
        raise ResultsError(f"output {path} must end in .csv")
    if path.exists() or run_config_path(path).exists() or samples_dir(path).exists():
        raise ResultsError(f"{path} already exists; results are never overwritten (use --resume to finish it)")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ResultsError(f"cannot write to {path.parent}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ResultsError(f"cannot write to {path.parent}: permission denied")


def read_results(path: Path, check_samples: bool = True):
    """Load and validate one results CSV as a DataFrame; ResultsError if damaged."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise ResultsError(f"results file {path} does not exist")
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        raise ResultsError(f"{path} is damaged: its last row is incomplete")
    try:
        rows = list(csv.reader(io.StringIO(raw.decode())))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ResultsError(f"{path} is not a readable results CSV: {exc}") from None
    if not rows:
        raise ResultsError(f"{path} is empty, not a results CSV")
    header = rows[0]
    missing = [c for c in ("row_id", "model", "median_ms", "samples_file") if c not in header]
    if missing:
        raise ResultsError(f"{path} is not a modbench results CSV: no column {missing[0]!r}")
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise ResultsError(f"{path} is damaged: line {i} has {len(r)} fields, the header {len(header)}")
    df = pd.read_csv(path, dtype={"row_id": str, "git_commit": str})
    if df["row_id"].duplicated().any():
        raise ResultsError(f"{path} is damaged: row {df['row_id'][df['row_id'].duplicated()].iloc[0]} appears twice")
    if check_samples:
        for rel in df["samples_file"]:
            if not (path.parent / str(rel)).is_file():
                raise ResultsError(f"{path}: samples file {rel} is missing")
    return df


def load_samples(csv_path: Path, samples_file: str) -> np.ndarray:
    with np.load(Path(csv_path).parent / samples_file) as z:
        return z["samples_ms"]


def read_run_config(path: Path) -> dict:
    cfg = run_config_path(Path(path))
    if not cfg.is_file():
        raise ResultsError(f"{path} cannot be resumed: {cfg.name} (the run's request) is missing")
    try:
        return json.loads(cfg.read_text())
    except ValueError as exc:
        raise ResultsError(f"{cfg} is damaged: {exc}") from None
