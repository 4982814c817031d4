"""The results store: the only code that writes or reads results files and samples.

Layout for results/foo.csv:
  results/foo.csv            one row per measurement (identity: `row_id`)
  results/foo.run.json       the run's request, so --resume can finish it
  results/foo.samples/ID.npz per-iteration milliseconds of row ID (key 'samples_ms'),
                             and the machine probe's readings around each block
                             (key 'probe_ms', blocks x 2) where the row was probed
  results/.foo.csv.lock      the writer lock (an empty file; harmless when left)

Guarantees, also under kill -9, a full disk or two processes at once:
- One writer at a time: a writer holds an exclusive lock for its whole life; a
  second writer (another run, a --resume of the same file) is refused with one line.
- Rows are all-or-nothing. A row's samples are in place (atomic rename) before its
  line is appended; a short or failed append is truncated back to the last complete
  row. A torn last line left by a crash is cut off by the next writer (--resume).
- A file is created exclusively and never overwritten; it appears with its first row
  (header, request and row together), so a run that wrote no row leaves nothing
  behind, even after kill -9. The lock is on the file's resolved identity: a symlink
  or a hard link to a file being written cannot get a second writer.
- A last line without its newline that is a complete row (every field, valid, its
  samples in place) is a row; a torn one is left out, and that is always said.
- The reader validates everything it returns: the header, every row's fields and
  typed columns (bench/schema.py), the samples path (inside the file's own .samples/
  folder), and, when samples are read, that they are finite positive floats, as many
  as the row says, and that the row's median is theirs.
- Versions: the reader reads every schema version it knows and refuses a newer one
  with one line; a writer appends only to a file of the current version.
"""
from __future__ import annotations

import csv
import errno
import fcntl
import io
import json
import os
import re
import shutil
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
from filelock import FileLock, Timeout

from modbench.common.errors import ModbenchError, first_line
from modbench.common.fsio import (atomic_target, atomic_write, check_new_output, describe_os_error,
                         ensure_writable_dir, fsync_dir, portable_name)
from modbench.common.invocation import command

from .measurement import (DEFAULT_TARGET_CI, IMPRECISE, NO_INTERVAL, TOO_FEW_NORMAL, Validity, codes_of_reason,
                          from_row, split_codes)
from .schema import (BY_NAME, COLUMNS, COLUMNS_SINCE, IDENTITY, REQUIRED, SCHEMA_VERSION, UNVERSIONED, CellError, ResultRow,
                     cell_text, cell_value, row_identity, typed)
from .vocab import UnknownDevice, device

# The schema's names the store's callers use through it (bench/schema.py defines them).
__all__ = ["COLUMNS", "IDENTITY", "REQUIRED", "SCHEMA_VERSION", "ResultRow", "row_identity",
           "ResultsError", "SamplesError", "ResultsWriter", "StoredRow", "read_results", "read_rows",
           "read_arrays", "read_samples", "read_probe", "RowArrays", "read_run_config", "check_new_path", "validate_samples",
           "samples_dir", "samples_file_of", "run_config_path", "lock_path", "file_itself",
           "valid_row_id", "stored_rows", "file_version", "SAMPLES_KEY", "PROBE_KEY"]

SAMPLES_KEY = "samples_ms"
PROBE_KEY = "probe_ms"
_ROW_ID = re.compile(r"[A-Za-z0-9_.+:=@/-]{1,200}")  # "/": a PATH.py:function model


def file_itself(path: Path) -> Path:
    """A results file named by a symlink is the file it points to: its samples folder
    and request sit beside the real file, and its lock is the real file's."""
    path = Path(path)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def valid_row_id(text: str) -> bool:
    return bool(_ROW_ID.fullmatch(str(text)))


class ResultsError(ModbenchError):
    """A results file that cannot be created, written, read or resumed."""


class SamplesError(ResultsError):
    """A row whose samples are missing or cannot be trusted."""


def samples_dir(csv_path: Path) -> Path:
    return Path(csv_path).with_name(Path(csv_path).stem + ".samples")


def samples_file_of(csv_path: Path, row_id: str) -> str:
    """The samples_file a row gets, relative to the results file. Row ids hold model
    specs (mynet:build, src/net.py:build): the file gets a portable name (CI artifact
    uploaders and Windows refuse ':'), distinct for distinct ids."""
    return f"{samples_dir(Path(csv_path)).name}/{portable_name(row_id)}.npz"


def run_config_path(csv_path: Path) -> Path:
    return Path(csv_path).with_name(Path(csv_path).stem + ".run.json")


def lock_path(csv_path: Path) -> Path:
    return Path(csv_path).with_name(f".{Path(csv_path).name}.lock")


def _line(values: list, ending: str = "\n") -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator=ending).writerow(values)
    return buf.getvalue().encode()


def _line_ending(path: Path) -> str:
    """The line ending a file's header was written with (a spreadsheet saves CRLF):
    rows appended to it end the same way."""
    with open(path, "rb") as f:
        head = f.readline()
    return "\r\n" if head.endswith(b"\r\n") else "\n"


def validate_samples(samples, where: str, expected_n: int | None = None) -> np.ndarray:
    """Samples as the store accepts them: a non-empty 1-D float array of finite,
    positive milliseconds (and `expected_n` of them when the row says how many)."""
    x = np.asarray(samples)
    if x.dtype.kind not in "fiu":
        raise SamplesError(f"{where}: samples are not numbers (dtype {x.dtype})")
    x = x.astype(np.float64, copy=False)
    if x.ndim != 1 or x.size == 0:
        raise SamplesError(f"{where}: samples must be a non-empty list of milliseconds (shape {x.shape})")
    bad = ~np.isfinite(x) | (x <= 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise SamplesError(f"{where}: sample {i} is {float(x[i])!r}; every sample must be a finite, "
                           f"positive number of milliseconds ({int(bad.sum())} are not)")
    if expected_n is not None and x.size != expected_n:
        raise SamplesError(f"{where}: {x.size} samples, but the row says {expected_n} iterations")
    return x


def _validate_probe(probe, where: str) -> np.ndarray:
    """Probe readings as stored: finite positive milliseconds, two per block (a NaN only
    where a block has no reading after it)."""
    p = np.asarray(probe, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 2 or p.shape[0] == 0:
        raise SamplesError(f"{where}: probe readings must be two per block (shape {p.shape})")
    if not (np.isfinite(p[:, 0]).all() and (p[:, 0] > 0).all()):
        raise SamplesError(f"{where}: probe readings must be finite, positive milliseconds")
    return p


# --- writing ----------------------------------------------------------------------

class ResultsWriter:
    """The one writer of a results file; holds the file's lock until closed.

    Use `create` for a new file, `resume` to finish an interrupted one; `append`
    adds one complete row with its samples; `close` releases the lock (and, with
    discard_empty=True, removes a file that never got a row)."""

    def __init__(self, path: Path, lock, existing_ids: set[str], created: bool):
        self.path = Path(path)
        self._lock = lock
        self._inode_fd: int | None = None
        self._config: dict | None = None  # a created file's request, until its first row
        self._ids = set(existing_ids)
        self._created = created
        self.rows_written = 0
        self._ending = "\n"

    # life cycle

    @staticmethod
    def _acquire(path: Path):
        ensure_writable_dir(path.parent, "results folder")
        # The lock belongs to the file, not to the name it was reached by: a symlink
        # resolves to the same lock file (a hard link is caught by _lock_inode).
        lock = FileLock(str(lock_path(Path(os.path.realpath(path)))), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise ResultsError(_busy(path)) from None
        except OSError as exc:
            raise ResultsError(f"cannot lock {path}: {describe_os_error(exc)}") from None
        return lock

    def _lock_inode(self) -> None:
        """Lock the results file itself (flock on its inode): every name of the file,
        hard links included, meets this lock."""
        if self._inode_fd is not None or not self.path.is_file():
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ResultsError(_busy(self.path)) from None
        except OSError:
            os.close(fd)  # a file system without flock: the name lock is what there is
            return
        self._inode_fd = fd

    @classmethod
    def create(cls, path: Path, run_config: dict) -> "ResultsWriter":
        """A writer for a new file. Nothing is written until the first row: the
        request, the header and that row appear together, so a run killed (even by
        kill -9) before its first row leaves nothing a later run must step around."""
        path = Path(path)
        check_new_path(path)
        lock = cls._acquire(path)
        try:
            # Under the lock: whoever got here first created the file; a request or
            # samples folder without a CSV is what a kill -9 during the first row
            # leaves, and holds nothing finished, so it is taken over.
            check_new_path(path)
        except BaseException:
            lock.release()
            raise
        w = cls(path, lock, set(), created=True)
        w._config = run_config
        return w

    def _materialize(self, first_line: bytes = b"") -> None:
        """Write the request and the header (with the first row, when given) of a
        created file; the CSV appears whole, by one rename."""
        # The request says which schema its rows are (older requests do not: version 1).
        config = dict(self._config, schema_version=SCHEMA_VERSION)
        atomic_write(run_config_path(self.path), json.dumps(config, indent=1, sort_keys=True, default=str))
        with atomic_target(self.path, ".csv.tmp") as tmp:
            tmp.write_bytes(_line(COLUMNS) + first_line)
        self._config = None
        self._lock_inode()

    @classmethod
    def resume(cls, path: Path) -> tuple["ResultsWriter", dict, "object"]:
        """Lock an existing file for appending; repair a torn last line.

        Returns (writer, the run's request, the validated rows already there)."""
        path = file_itself(path)
        if not path.is_file():
            raise ResultsError(f"results file {path} does not exist")
        lock = cls._acquire(path)
        w = cls(path, lock, set(), created=False)
        try:
            w._lock_inode()
            _repair_tail(path)
            df = read_results(path)
            version = df.attrs["schema_version"]
            if version != SCHEMA_VERSION:
                raise ResultsError(f"{path} is results schema version {version}; --resume appends only "
                                   f"to version {SCHEMA_VERSION} files (reports and the gate still read it), "
                                   "start a new run")
            if list(df.columns) != COLUMNS:
                # Rows are appended in COLUMNS' order: under another header they would
                # land in the wrong columns.
                missing = [c for c in COLUMNS if c not in df.columns]
                raise ResultsError(f"{path} was written with another results schema"
                                   + (f" (no column {missing[0]!r})" if missing else "")
                                   + "; this version cannot append to it, start a new run")
            config = read_run_config(path)
        except BaseException:
            w.close()
            raise
        w._ids = set(df["row_id"])
        w._ending = _line_ending(path)
        return w, config, df

    def _kept(self) -> str:
        """What a failed write leaves, in words that name only what exists."""
        if not self._ids or not self.path.exists():
            return f"no row was complete, so nothing is kept and {self.path.name} was not written (free space, " \
                   "then run again)"
        return (f"the {len(self._ids)} complete rows in {self.path} are kept (free space, then "
                f"`{command()} run --resume {self.path}`)")

    def close(self, discard_empty: bool = False) -> None:
        if self._lock is None:
            return
        try:
            if discard_empty and self._created and self.rows_written == 0:
                self._discard()
            elif self._config is not None:
                self._materialize()  # kept on purpose with no row (a fleet run to --resume)
        finally:
            if self._inode_fd is not None:
                os.close(self._inode_fd)  # releases the flock
                self._inode_fd = None
            self._lock.release()
            self._lock = None

    def _discard(self) -> None:
        for p in (self.path, run_config_path(self.path)):
            p.unlink(missing_ok=True)
        shutil.rmtree(samples_dir(self.path), ignore_errors=True)

    def __enter__(self) -> "ResultsWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(discard_empty=exc_type is not None)

    # rows

    def append(self, row: ResultRow | Mapping, samples) -> None:
        """row: a ResultRow (or its record). samples: the row's per-iteration
        milliseconds, or a mapping with them under 'samples_ms' and the probe readings
        around its blocks under 'probe_ms'."""
        if self._lock is None:
            raise ResultsError(f"{self.path}: the writer is closed")
        row = row.to_record() if isinstance(row, ResultRow) else dict(row)
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise ValueError(f"columns not in the schema: {sorted(unknown)}")  # a bug, not input
        if row.get("schema_version") not in (None, SCHEMA_VERSION):
            raise ValueError(f"a version {row['schema_version']} row cannot be written as version {SCHEMA_VERSION}")
        row_id = str(row.get("row_id", ""))
        if not valid_row_id(row_id):
            raise ResultsError(f"{self.path}: row id {row_id!r} is not a valid row id")
        if row_id in self._ids:
            raise ResultsError(f"{self.path}: row {row_id} is already in the file; a row is written once")
        if row.get("device") not in (None, ""):
            try:
                device(row["device"])
            except UnknownDevice as exc:
                raise ResultsError(f"{self.path}: row {row_id}: {exc}") from None
        arrays = dict(samples) if isinstance(samples, Mapping) else {SAMPLES_KEY: samples}
        x = validate_samples(arrays.get(SAMPLES_KEY), f"row {row_id}")
        keep = {SAMPLES_KEY: x}
        if arrays.get(PROBE_KEY) is not None:
            keep[PROBE_KEY] = _validate_probe(arrays[PROBE_KEY], f"row {row_id}")
        rel = samples_file_of(self.path, row_id)
        target = self.path.parent / rel
        try:
            samples_dir(self.path).mkdir(exist_ok=True)
        except OSError as exc:
            raise ResultsError(f"cannot create {samples_dir(self.path)}: {describe_os_error(exc)}") from None
        try:
            with atomic_target(target, ".npz.tmp") as tmp:
                with open(tmp, "wb") as f:
                    np.savez_compressed(f, **keep)
        except ModbenchError as exc:
            raise ResultsError(f"{exc}; {self._kept()}") from None
        row.update(samples_file=rel, schema_version=SCHEMA_VERSION)
        line = _line([cell_text(c, row.get(c)) for c in COLUMNS], self._ending)
        if self._config is not None:
            try:
                self._materialize(line)
            except ModbenchError as exc:
                target.unlink(missing_ok=True)
                raise ResultsError(f"cannot write {self.path}: {exc}") from None
        else:
            self._append_line(line, row_id, target)
        self._ids.add(row_id)
        self.rows_written += 1

    def _append_line(self, line: bytes, row_id: str, samples_file: Path) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            raise ResultsError(f"cannot open {self.path}: {describe_os_error(exc)}") from None
        try:
            size = os.fstat(fd).st_size
            try:
                written = os.write(fd, line)
                if written != len(line):
                    raise OSError(errno.ENOSPC, "short write")
                os.fsync(fd)
            except OSError as exc:
                # All or nothing: cut the partial line so the file ends at a complete row.
                try:
                    os.ftruncate(fd, size)
                    os.fsync(fd)
                except OSError:
                    pass
                samples_file.unlink(missing_ok=True)
                raise ResultsError(
                    f"cannot append row {row_id} to {self.path}: {describe_os_error(exc)}; {self._kept()}") from None
        finally:
            os.close(fd)


def _busy(path: Path) -> str:
    return (f"{path} is being written by another modbench process; a results file has one writer "
            "at a time (wait for it, or write to another --out)")


def _split_tail(path: Path, raw: bytes) -> tuple[bytes, bool]:
    """(the complete rows, whether a last line without its newline was left out).

    A last line without a newline is a row when it is one: every field of the header,
    valid, and its samples file in place (an editor or `truncate -s -1` removes just
    the newline); anything else is a torn append and is left out."""
    if not raw or raw.endswith(b"\n"):
        return raw, False
    head, tail = raw[: raw.rfind(b"\n") + 1], raw[raw.rfind(b"\n") + 1:]
    try:
        header = next(csv.reader(io.StringIO(head.decode("utf-8-sig"))))
        rows = list(csv.reader(io.StringIO(tail.decode("utf-8"))))
        if len(rows) == 1 and len(rows[0]) == len(header):
            rec = {k: (v if v != "" else None) for k, v in zip(header, rows[0])}
            _validate_row(path, head.count(b"\n") + 1, rec)
            if (path.parent / str(rec.get("samples_file"))).is_file():
                return raw + b"\n", False
    except (StopIteration, UnicodeDecodeError, csv.Error, ResultsError):
        pass
    return head, True


def _torn_note(path: Path) -> str:
    return (f"note: {path}: its last line is an incomplete row (a run that crashed mid-row, or one "
            "still writing); it is left out")


def _repair_tail(path: Path) -> None:
    """Before appending: give a complete last row its missing newline, or cut a torn
    one back to the last complete row (and say so). Called by a writer that holds the lock."""
    raw = path.read_bytes()
    kept, torn = _split_tail(path, raw)
    if kept == raw:
        return
    with open(path, "rb+") as f:
        if torn:
            f.truncate(len(kept))
        else:
            f.seek(0, os.SEEK_END)
            f.write(_line_ending(path).encode())
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(path.parent)
    if torn:
        print(_torn_note(path) + " and cut off before appending", file=sys.stderr)


RESUME_HINT = "use --resume to finish it"


def check_new_path(path: Path, hint: str | None = RESUME_HINT) -> None:
    """Refuse an output that exists, does not end in .csv, or whose folder cannot be
    written (tried by writing, since os.access says yes to root); and one whose samples
    folder or run file is there already (another run's, or one left behind): every
    file a results file brings is new, or nothing is timed."""
    path = Path(path)
    if path.suffix != ".csv":
        raise ResultsError(f"output {path} must end in .csv")
    if samples_dir(path).exists() and not samples_dir(path).is_dir():
        raise ResultsError(f"{samples_dir(path)} is a file; it must be the samples folder")
    try:
        check_new_output(path, "results file", hint=hint)
    except ModbenchError as exc:
        raise ResultsError(str(exc)) from None
    if samples_dir(path).is_dir() and any(samples_dir(path).iterdir()):
        raise ResultsError(f"{samples_dir(path)} already holds samples (of another run, or one left behind); "
                           f"choose another --out, or move that folder away")
    if run_config_path(path).exists():
        raise ResultsError(f"{run_config_path(path)} is already there (a run's request left behind); choose "
                           "another --out, or move it away")


# --- reading ----------------------------------------------------------------------

def file_version(path: Path, header: list[str], rows: list[list[str]]) -> int:
    """The schema version of a file: its rows' `schema_version`, or 1 for a file
    written before the column existed. ResultsError (one line) for a version newer
    than this code reads, or a version cell that is not one."""
    if "schema_version" not in header:
        return UNVERSIONED
    i = header.index("schema_version")
    versions = set()
    for n, r in enumerate(rows, start=2):
        try:
            versions.add(cell_value("schema_version", r[i]))
        except CellError:
            raise ResultsError(f"{path}, line {n}: schema_version {r[i]!r} is not a version number") from None
    if None in versions:
        raise ResultsError(f"{path} is damaged: a row has no schema_version")
    version = max(versions, default=SCHEMA_VERSION)
    if version > SCHEMA_VERSION:
        raise ResultsError(f"{path} is results schema version {version}; this modbench reads versions up to "
                           f"{SCHEMA_VERSION} (update modbench to read it)")
    return version


# The schema version that stores each row's validity codes.
CODES_SINCE = 3


def read_results(path: Path, check_samples: bool = True) -> pd.DataFrame:
    """Read one results CSV, of any schema version this code knows, as a validated
    DataFrame of typed values (bench/schema.py): float columns are floats (NaN when
    empty), the others hold int, bool or text, None when empty. A file written before
    `schema_version` gets the column (1). ResultsError (one line) if damaged.

    A torn last line (a writer that crashed mid-row, or one still writing) is left
    out: only complete rows are results."""
    path = file_itself(path)
    if not path.is_file():
        raise ResultsError(f"results file {path} does not exist")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ResultsError(f"cannot read {path}: {describe_os_error(exc)}") from None
    raw, torn = _split_tail(path, raw)
    try:
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ResultsError(f"{path} is not a readable results CSV: {exc}") from None
    if not rows:
        raise ResultsError(f"{path} is empty, not a results CSV")
    header = rows[0]
    for i, r in enumerate(rows[1:], start=2):
        if len(r) != len(header):
            raise ResultsError(f"{path} is damaged: line {i} has {len(r)} fields, the header {len(header)}")
    # Then the version: a newer file is refused for what it is, not for a column it renamed.
    version = file_version(path, header, rows[1:])
    dup = sorted({c for c in header if header.count(c) > 1})
    if dup:
        raise ResultsError(f"{path} is damaged: column {dup[0]!r} appears twice in the header")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ResultsError(f"{path} is not a modbench results CSV: no column {missing[0]!r}")
    lost = [c for v, cols in COLUMNS_SINCE.items() if version >= v for c in cols if c not in header]
    if lost:
        raise ResultsError(f"{path} is damaged: a results schema {version} file has no column {lost[0]!r}")
    records = []
    for i, r in enumerate(rows[1:], start=2):
        records.append(_validate_row(path, i, dict(zip(header, r))))
    if version < CODES_SINCE:
        # Rows written before the codes column: their codes, read once from the reason.
        for rec in records:
            rec["invalid_codes"] = ",".join(codes_of_reason(rec.get("invalid_reason"), rec.get("valid")))
        header = header + ["invalid_codes"] if "invalid_codes" not in header else header
    df = pd.DataFrame(records, columns=header, dtype=object)
    if "schema_version" not in df.columns:
        df.insert(0, "schema_version", [version] * len(df))
    for col in df.columns:
        if col in BY_NAME and BY_NAME[col].type == "float":
            df[col] = pd.to_numeric(df[col]).astype(np.float64)
    dups = df["row_id"][df["row_id"].duplicated()]
    if not dups.empty:
        raise ResultsError(f"{path} is damaged: row {dups.iloc[0]} appears twice")
    if check_samples:
        if records and samples_dir(path).exists() and not samples_dir(path).is_dir():
            raise ResultsError(f"{path}: {samples_dir(path)} is a file, not the samples folder the rows need")
        for rec in records:
            if not (path.parent / str(rec["samples_file"])).is_file():
                raise ResultsError(f"{path}: samples file {rec['samples_file']} of row {rec['row_id']} is missing")
    df.attrs["path"] = str(path)
    df.attrs["torn_tail"] = torn
    df.attrs["schema_version"] = version
    if torn:  # said once the rest is known good (a file refused anyway gets its one line)
        print(_torn_note(path), file=sys.stderr)
    return df


def _validate_row(path: Path, line: int, cells: dict) -> dict:
    """One row's cells as typed values; ResultsError (one line) naming the line otherwise."""
    where = f"{path}, line {line}"
    try:
        rec = {k: cell_value(k, v) for k, v in cells.items()}
    except CellError as exc:
        raise ResultsError(f"{where}: {exc}") from None
    if not rec.get("row_id") or not valid_row_id(rec["row_id"]):
        raise ResultsError(f"{where}: row id {rec.get('row_id')!r} is not a valid row id")
    if not rec.get("model"):
        raise ResultsError(f"{where}: no model")
    for col in ("batch", "resolution"):
        if rec.get(col) is None or rec[col] < 1:
            raise ResultsError(f"{where}: {col} {rec.get(col)!r} must be a positive whole number")
    if rec.get("device") is not None:
        try:
            device(rec["device"])
        except UnknownDevice as exc:
            raise ResultsError(f"{where}: {exc}") from None
    _samples_path(path, rec.get("samples_file"), where)
    return rec


def _samples_path(csv_path: Path, rel, where: str) -> Path:
    """A row's samples file, which must be inside the results file's own samples folder."""
    folder = samples_dir(csv_path).name
    rel = "" if rel is None else str(rel)
    parts = rel.split("/")
    if len(parts) != 2 or parts[0] != folder or not parts[1].endswith(".npz") \
            or parts[1] in (".npz",) or "\\" in rel or parts[1].startswith("."):
        raise ResultsError(f"{where}: samples_file {rel!r} is not a file in {folder}/")
    return Path(csv_path).parent / folder / parts[1]


@dataclass(frozen=True)
class RowArrays:
    """What a row's samples file holds, validated: per-iteration milliseconds, and the
    probe readings (blocks x 2), None for a row timed without the machine probe (GPU
    runners, files written before it existed)."""

    samples: np.ndarray
    probe: np.ndarray | None


def read_arrays(csv_path: Path, row: Mapping | str) -> RowArrays:
    """One read of a row's samples file (a row mapping, or a samples_file for rows
    without an iteration count). SamplesError (one line) when it cannot be trusted."""
    csv_path = Path(csv_path)
    if isinstance(row, str):
        row = {"samples_file": row, "row_id": Path(row).stem}
    else:
        row = row.data if isinstance(row, StoredRow) else typed(row)
    where = f"{csv_path.name}:{row.get('row_id')}"
    arrays = _read_samples_file(csv_path, row, where)
    if SAMPLES_KEY not in arrays:
        raise SamplesError(f"{where}: samples file has no {SAMPLES_KEY!r} (it has {sorted(arrays)})")
    n, med = row.get("iters"), row.get("median_ms")
    x = validate_samples(arrays[SAMPLES_KEY], where, n)
    if n is not None and med is not None and not np.isclose(np.median(x), med, rtol=1e-5, atol=2e-6):
        raise SamplesError(f"{where}: the row's median {med:g} ms is not the median of its samples "
                           f"({float(np.median(x)):g} ms); row and samples do not belong together")
    if n is not None and med is None:
        raise SamplesError(f"{where}: median_ms is empty; a row with samples always has one")
    probe = _validate_probe(arrays[PROBE_KEY], where) if PROBE_KEY in arrays else None
    if n is not None and (row.get("schema_version") or UNVERSIONED) >= CODES_SINCE:
        _check_derived(row, x, probe, where)
    return RowArrays(x, probe)


# The figures a row stores that its samples (and probe readings) determine; a row
# written by this code has each to the 10 significant digits a cell keeps.
_DERIVED = ("latency_ms", "latency_ci_low_ms", "latency_ci_high_ms", "mean_ms", "p90_ms", "p99_ms",
            "min_ms", "max_ms")
# The validity codes the samples alone decide (busy needs the machine's other work,
# slowed the run's --max-disturbed).
_SAMPLE_CODES = (IMPRECISE, NO_INTERVAL, TOO_FEW_NORMAL)


def _check_derived(row: Mapping, x: np.ndarray, probe, where: str) -> None:
    """Refuse a row whose stored figures or validity are not what its samples give (a
    hand-edited cell, a row pasted from another file): a row is never believed over its
    own samples."""
    m = from_row(row, x, probe)
    stat = row.get("headline_stat") or "median"
    derived = m.summary(Validity(target_ci=row.get("target_ci") or DEFAULT_TARGET_CI, stat=stat))
    for col in _DERIVED:
        stored, want = row.get(col), derived.get(col)
        if stored is None:  # an empty cell claims nothing (a figure not measured, a row made by hand)
            continue
        if col == "latency_ci_low_ms" and stored is not None and want is not None and stored == 0 == round(want, 6):
            continue
        if stored is None or want is None or not np.isclose(stored, want, rtol=1e-5, atol=2e-6):
            raise SamplesError(f"{where}: column {col} holds {stored if stored is not None else 'nothing'}, but its "
                               f"samples give {want if want is not None else 'none'}; row and samples disagree "
                               "(an edited cell?)")
    if row.get("latency_ms") is None and row.get("latency_stat") is None:
        return  # not a measured row's figures: its validity is not the samples' to judge
    codes = set(split_codes(row.get("invalid_codes")))
    mine = set(split_codes(derived["invalid_codes"]))
    if codes & set(_SAMPLE_CODES) != mine & set(_SAMPLE_CODES) or bool(row.get("valid")) != (not codes):
        raise SamplesError(f"{where}: columns valid/invalid_codes say {row.get('valid')}/"
                           f"{','.join(sorted(codes)) or '-'}, but its samples give "
                           f"{','.join(sorted(mine & set(_SAMPLE_CODES))) or 'no sample code'}; row and samples "
                           "disagree (an edited cell?)")


def read_samples(csv_path: Path, row: Mapping | str) -> np.ndarray:
    """The validated samples of one row (see read_arrays)."""
    return read_arrays(csv_path, row).samples


def read_probe(csv_path: Path, row: Mapping) -> np.ndarray | None:
    """The probe readings stored with a row's samples, or None (see read_arrays)."""
    return read_arrays(csv_path, row).probe


def _read_samples_file(csv_path: Path, row: Mapping, where: str) -> dict:
    """Every array of a row's samples file; SamplesError (one line) when it is missing or damaged."""
    path = _samples_path(csv_path, row.get("samples_file"), where)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise SamplesError(f"{where}: samples file {row.get('samples_file')} is missing") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise SamplesError(f"{where}: samples file {path.name} is damaged ({type(exc).__name__})") from None


def read_run_config(path: Path) -> dict:
    cfg = run_config_path(Path(path))
    if not cfg.is_file():
        raise ResultsError(f"{path} cannot be resumed: {cfg.name} (the run's request) is missing")
    try:
        data = json.loads(cfg.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{cfg} is damaged: {first_line(exc)}") from None
    except OSError as exc:
        raise ResultsError(f"cannot read {cfg}: {describe_os_error(exc)}") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{cfg} is damaged: not a JSON object")
    version = data.get("schema_version", UNVERSIONED)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ResultsError(f"{cfg} is results schema version {version}; this modbench reads versions up to "
                           f"{SCHEMA_VERSION} (update modbench to read it)")
    return data


@dataclass
class StoredRow:
    """One validated row with the file it came from: typed values (bench/schema.py),
    None where a cell is empty; its samples on demand."""

    data: dict
    source: Path
    # The samples file, read once on first use (reports ask for samples and probe).
    _arrays: RowArrays | None = field(default=None, repr=False, compare=False)

    def __getitem__(self, key):
        return self.data[key]

    def get(self, key, default=None):
        return self.data.get(key, default)

    def __contains__(self, key) -> bool:
        return key in self.data

    @property
    def id(self) -> str:
        return self.data["row_id"]

    @property
    def ref(self) -> str:
        """How a printed number points back at its row: file and row_id."""
        return f"{self.source.name}:{self.id}"

    def arrays(self) -> RowArrays:
        if self._arrays is None:
            self._arrays = read_arrays(self.source, self.data)
        return self._arrays

    def samples(self) -> np.ndarray:
        return self.arrays().samples

    def probe(self) -> np.ndarray | None:
        return self.arrays().probe

    def result(self) -> ResultRow:
        """The row as its typed parts."""
        return ResultRow.from_record(self.data)

    @property
    def codes(self) -> tuple[str, ...]:
        """The codes of the checks the row failed (bench/measurement.py CODES)."""
        return split_codes(self.data.get("invalid_codes"))


def stored_rows(df: pd.DataFrame, path: Path) -> list[StoredRow]:
    """The rows of a DataFrame `read_results` made, as typed StoredRows."""
    return [StoredRow(typed(rec), Path(path)) for rec in df.to_dict("records")]


def read_rows(path: Path, check_samples: bool = True) -> list[StoredRow]:
    return stored_rows(read_results(path, check_samples), Path(path))
