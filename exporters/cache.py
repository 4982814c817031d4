"""On-disk cache of exports keyed by everything that changes the graph.

An entry is an artifact plus a JSON sidecar holding its SHA-256 and the request's key
fields (model, variant, shape, opset, source digest, versions...). A hit is used only
if both hold: the bytes match the hash (not torn, not edited) AND the sidecar describes
this very request (not another model's entry copied or renamed over it). Anything else
is rebuilt, never loaded.

Builds run in a scratch folder (<root>/<format>/tmp/<host>.<pid>.<random>) that is
removed whatever happens (a failed export, a parity failure, a full disk, Ctrl-C);
scratch folders left by killed processes are swept when a cache is first used. Two
processes asking for the same key serialise on a file lock: one builds, the other
finds the entry.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from filelock import FileLock, Timeout

from modbench.common.fsio import (CacheError, WriteError, atomic_write, default_cache_dir, ensure_writable_dir,
                         pid_alive, sha256_file, usable_cache_dir)

# A scratch folder whose owner cannot be checked (another host, an old name) is stale
# after this long; one of a live process on this host after STALE_LIVE_S (a reused pid).
STALE_S = 3600
STALE_LIVE_S = 24 * 3600
LOCK_TIMEOUT_S = 6 * 3600


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


def _canonical(fields: dict) -> dict:
    """The fields as they read back from JSON (tuples become lists, keys strings)."""
    return json.loads(json.dumps(fields, sort_keys=True))


def cache_key(fields: dict) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


def _host() -> str:
    return socket.gethostname().replace(".", "_") or "host"


class ExportCache:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root else default_cache_dir()
        self._ready = False

    # --- layout -------------------------------------------------------------------
    def _paths(self, fmt: str, key: str, suffix: str) -> tuple[Path, Path]:
        d = self.root / fmt
        return d / f"{key}{suffix}", d / f"{key}.json"

    def _tmp_root(self, fmt: str) -> Path:
        return self.root / fmt / "tmp"

    def open(self) -> "ExportCache":
        """Prove the cache is writable and sweep what killed processes left (once)."""
        if not self._ready:
            usable_cache_dir(self.root)
            self._ready = True
            self.sweep()
        return self

    # --- entries ------------------------------------------------------------------
    def lookup(self, fmt: str, key: str, suffix: str, fields: dict | None = None) -> tuple[Path, dict] | None:
        """The cached artifact and its metadata, or None if absent, damaged, or (when
        `fields` is given) made for another request."""
        art, side = self._paths(fmt, key, suffix)
        if not art.exists() or not side.is_file():
            return None
        try:
            meta = json.loads(side.read_text())
            if not isinstance(meta, dict):
                return None
            if fields is not None and meta.get("key_fields") != _canonical(fields):
                return None  # another model's (or another setting's) entry under this name
            if meta.get("sha256") != sha256_path(art):
                return None
        except (OSError, ValueError):
            return None
        return art, meta

    def store(self, fmt: str, key: str, suffix: str, built: Path, meta: dict,
              fields: dict | None = None) -> Path:
        """Move a freshly built artifact into the cache, then write its sidecar atomically
        (an artifact without a sidecar, or with an old one, is never a hit)."""
        art, side = self._paths(fmt, key, suffix)
        ensure_writable_dir(art.parent, "export cache folder")
        meta = dict(meta, sha256=sha256_path(built), cache_key=key)
        if fields is not None:
            meta["key_fields"] = _canonical(fields)
        side.unlink(missing_ok=True)
        if art.is_dir():  # a damaged earlier build; a directory cannot be replaced by rename
            shutil.rmtree(art)
        try:
            shutil.move(str(built), art)
        except OSError:
            if art.is_dir():
                shutil.rmtree(art, ignore_errors=True)
            else:
                art.unlink(missing_ok=True)
            raise
        atomic_write(side, json.dumps(meta, indent=1, sort_keys=True))
        return art

    def get_or_build(self, fmt: str, fields: dict, suffix: str,
                     build: Callable[[Path], tuple[Path, dict]],
                     verify: Callable[[Path], bool] | None = None) -> tuple[Path, dict, bool]:
        """(artifact, metadata, cache_hit) for the request described by `fields`.

        On a miss, `build(scratch)` makes the artifact inside the scratch folder and
        returns (its path, metadata). It runs under a per-key file lock, so a second
        process asking for the same key waits and then finds the entry; the scratch
        folder is removed whether the build succeeds or fails.

        verify(artifact): a hit is used only if it says True (e.g. the cached graph
        still computes what the built module does); otherwise it is rebuilt."""
        self.open()
        key = cache_key(fields)
        hit = self.lookup(fmt, key, suffix, fields)
        if hit is not None and (verify is None or verify(hit[0])):
            return hit[0], hit[1], True
        lock_path = self.root / fmt / f"{key}.lock"
        ensure_writable_dir(lock_path.parent, "export cache folder")
        try:
            with FileLock(str(lock_path), timeout=LOCK_TIMEOUT_S):
                hit = self.lookup(fmt, key, suffix, fields)  # built by another process meanwhile?
                if hit is not None and (verify is None or verify(hit[0])):
                    return hit[0], hit[1], True
                with self.scratch(fmt) as scratch:
                    built, meta = build(scratch)
                    self.store(fmt, key, suffix, built, meta, fields)
        except Timeout:
            raise CacheError(f"another process has held the export lock {lock_path} for "
                             f"{LOCK_TIMEOUT_S // 3600} h; remove it if no export is running") from None
        hit = self.lookup(fmt, key, suffix, fields)
        if hit is None:
            raise CacheError(f"the export cache entry {key} was damaged right after it was written")
        return hit[0], hit[1], False

    # --- scratch ------------------------------------------------------------------
    def scratch(self, fmt: str):
        """A context manager: a fresh scratch folder, removed on exit whatever happens."""
        @contextmanager
        def _scratch():
            d = self.scratch_dir(fmt)
            try:
                yield d
            finally:
                shutil.rmtree(d, ignore_errors=True)
        return _scratch()

    def scratch_dir(self, fmt: str) -> Path:
        """A new scratch folder named after this host and process (the sweep reads it);
        the caller must remove it (prefer `scratch`)."""
        d = ensure_writable_dir(self._tmp_root(fmt), "export cache scratch folder")
        try:
            return Path(tempfile.mkdtemp(dir=d, prefix=f"{_host()}.{os.getpid()}."))
        except OSError as exc:
            raise WriteError(f"cannot create a scratch folder in {d}: {exc.strerror}") from None

    def sweep(self) -> list[Path]:
        """Remove scratch folders whose process is gone (or that are too old to belong
        to a live export) and stale temporary sidecars. Returns what was removed."""
        removed = []
        now = time.time()
        host = _host()
        if not self.root.is_dir():
            return removed
        for fmt_dir in (p for p in self.root.iterdir() if p.is_dir()):
            tmp = fmt_dir / "tmp"
            for d in (tmp.iterdir() if tmp.is_dir() else ()):
                try:
                    age = now - d.stat().st_mtime
                except OSError:
                    continue
                parts = d.name.split(".")
                if len(parts) >= 3 and parts[0] == host and parts[1].isdigit():
                    pid = int(parts[1])
                    stale = (pid != os.getpid() and not pid_alive(pid)) or age > STALE_LIVE_S
                else:
                    stale = age > STALE_S
                if stale:
                    if d.is_dir():
                        shutil.rmtree(d, ignore_errors=True)
                    else:
                        d.unlink(missing_ok=True)
                    removed.append(d)
            for f in fmt_dir.glob(".*.tmp"):  # atomic_write's temporaries of a killed writer
                try:
                    if now - f.stat().st_mtime > STALE_S:
                        f.unlink(missing_ok=True)
                        removed.append(f)
                except OSError:
                    continue
        return removed
