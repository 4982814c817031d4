"""The history store: every run added, one JSON file per (commit, run), in a folder
kept beside the user's repository (default `.modbench-history/`).

Layout:
  .modbench-history/VERSION                       the store's format version ("1")
  .modbench-history/.gitignore                    keeps the lock out of git
  .modbench-history/entries/COMMIT12-STAMP-DIGEST.json   one run at one commit
  .modbench-history/.lock                         the writer lock (harmless when left)

One file per run: two branches that each add runs never touch the same file, so
their stores merge without a conflict, and a diff shows the runs a commit added.

Guarantees (as the results store's):
- One writer at a time: `add` holds the lock while it checks for a duplicate and
  writes; a second `add` waits for it (LOCK_WAIT_S), then is refused in one line.
- All-or-nothing: an entry is written to a temporary file and linked into place under
  its final name (never over another), so a kill leaves either the whole entry or
  none (a stray hidden temporary file is ignored by readers).
- Validated reading: every entry is checked (format, version, commit, figures);
  a damaged one is refused in one line naming its file.
- Versions: VERSION and every entry carry the format version; a newer one is refused.
- Finished runs are never lost: entries are only ever added, and the same run at
  the same commit is refused, not added twice.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from modbench.common.errors import ModbenchError, first_line
from modbench.common.fsio import atomic_write, describe_os_error, ensure_writable_dir, write_new
from modbench.common.invocation import command

from ..env import fingerprint, now_iso
from ..report.headline import headline, is_valid
from ..store import read_rows

FORMAT_VERSION = 1
DEFAULT_STORE = ".modbench-history"
VERSION_FILE = "VERSION"
ENTRIES = "entries"
# A CI job that adds while another finishes waits this long before it is refused.
LOCK_WAIT_S = 30.0
_COMMIT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/+-]{0,99}")
_ENTRY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*\.json")
# Figures the series is made of: what identifies a measurement, and where it ran.
SERIES_FIELDS = ("model", "variant", "runtime", "device", "precision", "batch", "resolution", "threads",
                 "machine")


class HistoryError(ModbenchError):
    """A history store that cannot be created, written or read."""


@dataclass(frozen=True)
class CommitInfo:
    commit: str
    date: str       # the commit's committer date (ISO 8601), or when it was added
    subject: str


@dataclass(frozen=True)
class Point:
    """One row of one run, at one commit: the figure the series is drawn from."""

    model: str
    variant: str
    runtime: str
    device: str
    precision: str
    batch: int
    resolution: int
    threads: int | None
    machine: str          # modbench.env.fingerprint of the row
    figure: str           # latency_ms, or median_ms for rows without the machine probe
    value_ms: float
    low_ms: float | None  # the row's 95% interval; None for a single block
    high_ms: float | None
    relative: float | None   # value / the machine probe's reference time (a speed-free figure)
    relative_low: float | None
    relative_high: float | None
    valid: bool
    invalid_reason: str | None
    row_id: str

    @property
    def series(self) -> tuple:
        return tuple(getattr(self, f) for f in SERIES_FIELDS)


@dataclass(frozen=True)
class Entry:
    """One added run: where it came from and its points."""

    path: Path
    commit: str
    commit_date: str
    subject: str
    branch: str
    added: str
    source: str
    source_sha256: str
    points: tuple[Point, ...]


# --- git ----------------------------------------------------------------------------

def _git(repo: Path, *args: str) -> str | None:
    try:
        r = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 else None


def commit_info(repo: Path, rev: str | None) -> CommitInfo:
    """The commit a run is recorded at: `rev` (default HEAD) as git knows it in `repo`;
    a `rev` git does not know is taken as given (a label), dated now."""
    out = _git(repo, "log", "-1", "--format=%H%n%cI%n%s", rev or "HEAD", "--")
    if out:
        sha, date, *subject = out.split("\n")
        return CommitInfo(sha, date, subject[0] if subject else "")
    if rev is None:
        raise HistoryError(f"{repo} is not a git repository with a commit: give the run's commit with --commit")
    if not _COMMIT.fullmatch(rev):
        raise HistoryError(f"--commit {rev!r} is not a commit id or label (letters, digits, . _ / + -)")
    return CommitInfo(rev, now_iso(), "")


def full_commit(repo: Path, rev: str) -> str:
    """`rev` as git names it in `repo` (HEAD~10, a tag, a short id), or `rev` itself
    where git does not know it (a label recorded with --commit)."""
    return _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}") or rev


def current_branch(repo: Path) -> str:
    name = _git(repo, "rev-parse", "--abbrev-ref", "HEAD")
    return name if name and name != "HEAD" else "detached"


# --- entries from a results file ----------------------------------------------------------

def _finite(v) -> float | None:
    return float(v) if v is not None and math.isfinite(float(v)) else None


def point_of(row) -> Point:
    """A results row (StoredRow) as a history point: its headline and interval as
    reports read it (report.headline), the machine-relative figure, its validity."""
    h = headline(row)
    ref = row.get("machine_ref_ms")
    rel = (lambda x: None if x is None or not ref else x / ref)
    return Point(model=row["model"], variant=row.get("variant") or "default", runtime=row["runtime"],
                 device=row.get("device") or "cpu", precision=row.get("precision") or "fp32",
                 batch=int(row["batch"]), resolution=int(row["resolution"]),
                 threads=None if row.get("threads") is None else int(row["threads"]),
                 machine=fingerprint(row.data), figure=h.figure, value_ms=float(h.value),
                 low_ms=_finite(h.low), high_ms=_finite(h.high),
                 relative=rel(float(h.value)), relative_low=rel(_finite(h.low)), relative_high=rel(_finite(h.high)),
                 valid=is_valid(row), invalid_reason=row.get("invalid_reason"), row_id=row.id)


def _added_now() -> str:
    # Microseconds: runs of commits made within one second still sort in the order added.
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def entry_from_results(csv_path: Path, info: CommitInfo, branch: str) -> dict:
    """The JSON object of one entry: a results file's rows at a commit."""
    csv_path = Path(csv_path)
    rows = read_rows(csv_path)
    if not rows:
        raise HistoryError(f"{csv_path} has no rows to add")
    try:
        digest = hashlib.sha256(csv_path.read_bytes()).hexdigest()
    except OSError as exc:
        raise HistoryError(f"cannot read {csv_path}: {describe_os_error(exc)}") from None
    return {"modbench_history": FORMAT_VERSION, "commit": info.commit, "commit_date": info.date,
            "subject": info.subject, "branch": branch, "added": _added_now(), "source": csv_path.name,
            "source_sha256": digest, "rows": [asdict(point_of(r)) for r in rows]}


# --- the store ------------------------------------------------------------------------

class HistoryStore:
    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def entries_dir(self) -> Path:
        return self.root / ENTRIES

    def check_version(self) -> None:
        vf = self.root / VERSION_FILE
        if not self.root.is_dir():
            raise HistoryError(f"no history store at {self.root} (start one with "
                               f"{command('history add RESULTS.csv --store ' + str(self.root))})")
        try:
            text = vf.read_text().strip()
        except FileNotFoundError:
            raise HistoryError(f"{self.root} is not a modbench history store: it has no {VERSION_FILE} file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise HistoryError(f"cannot read {vf}: {first_line(exc)}") from None
        if not text.isdigit():
            raise HistoryError(f"{vf} is damaged: {text[:40]!r} is not a version number")
        if int(text) > FORMAT_VERSION:
            raise HistoryError(f"{self.root} is history format version {text}; this modbench reads versions up "
                               f"to {FORMAT_VERSION} (update modbench to read it)")

    def _create(self) -> None:
        ensure_writable_dir(self.root, "history store")
        if not (self.root / VERSION_FILE).exists():
            if any(p for p in self.root.iterdir() if p.name != ".lock"):
                raise HistoryError(f"{self.root} is a folder that is not a history store; give an empty or new folder")
            atomic_write(self.root / ".gitignore", ".lock\n")
            atomic_write(self.root / VERSION_FILE, f"{FORMAT_VERSION}\n")
        self.entries_dir.mkdir(exist_ok=True)

    def add(self, entry: dict) -> Path:
        """Write one entry (whole, under the lock); refuses the same run twice."""
        ensure_writable_dir(self.root, "history store")
        lock = FileLock(str(self.root / ".lock"), timeout=LOCK_WAIT_S)
        try:
            lock.acquire()
        except Timeout:
            raise HistoryError(f"history store {self.root} is being written by another modbench "
                               f"(waited {LOCK_WAIT_S:.0f} s); try again when it is done") from None
        try:
            self._create()
            self.check_version()
            for old in self.entries():
                if old.commit == entry["commit"] and old.source_sha256 == entry["source_sha256"]:
                    raise HistoryError(f"this run ({entry['source']}) is already recorded at commit "
                                       f"{entry['commit'][:12]}: {old.path}")
            _validate(entry, "new entry")  # what is written is what readers accept
            text = json.dumps(entry, indent=1, sort_keys=True) + "\n"
            stamp = re.sub(r"[^0-9]", "", entry["added"])[:20]
            name = f"{_safe(entry['commit'])[:12]}-{stamp}-{hashlib.sha256(text.encode()).hexdigest()[:10]}.json"
            path = self.entries_dir / name
            write_new(path, text, "history entry")
            return path
        finally:
            lock.release()

    def entries(self) -> list[Entry]:
        """Every entry, validated, in the order of their commits (commit date, then
        when each was added)."""
        self.check_version()
        if not self.entries_dir.is_dir():
            return []
        out = []
        for path in sorted(self.entries_dir.iterdir()):
            if path.name.startswith("."):
                continue  # a writer's temporary file (a killed add leaves one)
            if not _ENTRY_NAME.fullmatch(path.name) or not path.is_file():
                raise HistoryError(f"{path}: not a history entry (entries are NAME.json files)")
            out.append(read_entry(path))
        return sorted(out, key=lambda e: (_when(e.commit_date), _when(e.added), e.path.name))


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)


def _when(iso: str) -> _dt.datetime:
    d = _dt.datetime.fromisoformat(iso)
    return d if d.tzinfo else d.replace(tzinfo=_dt.timezone.utc)


def read_entry(path: Path) -> Entry:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise HistoryError(f"{path}: damaged history entry ({first_line(exc)})") from None
    except OSError as exc:
        raise HistoryError(f"cannot read {path}: {describe_os_error(exc)}") from None
    _validate(data, str(path))
    points = tuple(Point(**r) for r in data["rows"])
    return Entry(Path(path), data["commit"], data["commit_date"], data["subject"], data["branch"], data["added"],
                 data["source"], data["source_sha256"], points)


_TEXT = {"commit", "commit_date", "subject", "branch", "added", "source", "source_sha256"}
_POINT_TYPES = {"model": str, "variant": str, "runtime": str, "device": str, "precision": str, "batch": int,
                "resolution": int, "threads": (int, type(None)), "machine": str, "figure": str, "value_ms": float,
                "low_ms": (float, type(None)), "high_ms": (float, type(None)), "relative": (float, type(None)),
                "relative_low": (float, type(None)), "relative_high": (float, type(None)), "valid": bool,
                "invalid_reason": (str, type(None)), "row_id": str}


def _validate(data, where: str) -> None:
    """An entry as readers accept it; HistoryError (one line) naming `where` otherwise."""
    def bad(what: str):
        raise HistoryError(f"{where}: damaged history entry ({what})")
    if not isinstance(data, dict):
        bad("not a JSON object")
    version = data.get("modbench_history")
    if not isinstance(version, int) or isinstance(version, bool):
        bad("no modbench_history version")
    if version > FORMAT_VERSION:
        raise HistoryError(f"{where} is history format version {version}; this modbench reads versions up to "
                           f"{FORMAT_VERSION} (update modbench to read it)")
    for key in sorted(_TEXT):
        if not isinstance(data.get(key), str):
            bad(f"{key} is missing or not text")
    if not _COMMIT.fullmatch(data["commit"]):
        bad(f"commit {data['commit'][:50]!r} is not a commit id")
    for key in ("commit_date", "added"):
        try:
            _when(data[key])
        except ValueError:
            bad(f"{key} {data[key][:40]!r} is not an ISO 8601 date")
    rows = data.get("rows")
    if not isinstance(rows, list) or not rows:
        bad("no rows")
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or set(r) != set(_POINT_TYPES):
            bad(f"row {i} does not have the fields of a point")
        for key, kind in _POINT_TYPES.items():
            v = r[key]
            if kind is float and isinstance(v, int) and not isinstance(v, bool):
                v = r[key] = float(v)  # JSON writes 2.0 as 2.0, but a hand-edited 2 is a number too
            if not isinstance(v, kind) or (isinstance(v, bool) and kind is not bool):
                bad(f"row {i}: {key} {v!r} is not of its type")
        figures = [r[k] for k in ("value_ms", "low_ms", "high_ms", "relative", "relative_low", "relative_high")
                   if r[k] is not None]
        if not all(math.isfinite(v) and v > 0 for v in figures):
            bad(f"row {i}: a figure is not a finite positive number")
        if r["low_ms"] is not None and r["high_ms"] is not None and not r["low_ms"] <= r["value_ms"] <= r["high_ms"]:
            bad(f"row {i}: value_ms {r['value_ms']} is outside its interval")
