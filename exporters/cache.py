"""On-disk cache of exports keyed by everything that changes the graph.

Each artifact has a JSON sidecar holding its SHA-256; an artifact whose bytes no
longer match (a torn write, a disk error, a hand edit) is rebuilt, never loaded.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path


def default_cache_dir() -> Path:
    return Path(os.environ.get("MODBENCH_CACHE", Path.home() / ".cache" / "modbench"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_path(path: Path) -> str:
    """SHA-256 of a file, or of a directory tree (relative names and contents, in
    sorted order): a Core ML .mlpackage is a directory."""
    path = Path(path)
    if not path.is_dir():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode() + b"\0")
        h.update(sha256_file(f).encode())
    return h.hexdigest()


def cache_key(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


class ExportCache:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else default_cache_dir()

    def _paths(self, fmt: str, key: str, suffix: str) -> tuple[Path, Path]:
        d = self.root / fmt
        return d / f"{key}{suffix}", d / f"{key}.json"

    def lookup(self, fmt: str, key: str, suffix: str) -> tuple[Path, dict] | None:
        """The cached artifact and its metadata, or None if absent or damaged."""
        art, side = self._paths(fmt, key, suffix)
        if not art.exists() or not side.is_file():
            return None
        try:
            meta = json.loads(side.read_text())
            if meta.get("sha256") != sha256_path(art):
                return None
        except (OSError, ValueError):
            return None
        return art, meta

    def store(self, fmt: str, key: str, suffix: str, built: Path, meta: dict) -> Path:
        """Move a freshly built file into the cache atomically, with its sidecar."""
        art, side = self._paths(fmt, key, suffix)
        art.parent.mkdir(parents=True, exist_ok=True)
        meta = dict(meta, sha256=sha256_path(built))
        if art.is_dir():  # a damaged earlier build; a directory cannot be replaced by rename
            shutil.rmtree(art)
        shutil.move(str(built), art)
        fd, tmp = tempfile.mkstemp(dir=art.parent, suffix=".json.tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(meta, f, indent=1, sort_keys=True)
        os.replace(tmp, side)
        return art

    def scratch_dir(self, fmt: str) -> Path:
        d = self.root / fmt / "tmp"
        d.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=d))
