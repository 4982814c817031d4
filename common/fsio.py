"""Writing files so that a reader never sees half of one.

One helper for every file modbench writes whole (run requests, reports, baselines,
cache sidecars, catalogs): write a temporary file beside the target, fsync it, rename
it over the target, fsync the folder. A full disk or a kill leaves either the old file
or the new one, never a mixture; a failed write removes its temporary file.
"""
from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import psutil

from .errors import ModbenchError


class WriteError(ModbenchError):
    """A file could not be written (no space, no permission, not a folder)."""


def describe_os_error(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission denied" if exc.errno != errno.EROFS else "read-only file system"
    if exc.errno == errno.ENOTDIR:
        return "a path component is a file, not a folder"
    return exc.strerror or str(exc)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a folder; the rename is still atomic
    finally:
        os.close(fd)


@contextmanager
def atomic_target(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` atomically.

    For writers that need a file name (np.savez, matplotlib, onnx.save)."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; the file is an ordinary output
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {describe_os_error(exc)}") from None
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise WriteError(f"cannot write {path}: {describe_os_error(exc)}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def make_parent(path: Path) -> None:
    """Create the folder `path` goes into; WriteError (one line) if it cannot be."""
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise WriteError(f"cannot write {path}: a path component is a file, not a folder") from None
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {describe_os_error(exc)}") from None


def atomic_write(path: Path, data: str | bytes, make_parents: bool = False) -> None:
    """Write `data` to `path` whole or not at all."""
    if make_parents:
        make_parent(path)
    with atomic_target(path) as tmp:
        if isinstance(data, str):
            data = data.encode()
        with open(tmp, "wb") as f:
            f.write(data)


def ensure_writable_dir(folder: Path, what: str = "output folder") -> Path:
    """Create `folder` if needed and prove it can be written by writing to it.

    os.access says yes to root on a read-only mount or a folder it may not use, so
    the only honest check is a real write."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise WriteError(f"cannot write to {what} {folder}: it is a file, not a folder") from None
    except OSError as exc:
        raise WriteError(f"cannot create {what} {folder}: {describe_os_error(exc)}") from None
    if not folder.is_dir():
        raise WriteError(f"cannot write to {what} {folder}: it is a file, not a folder")
    try:
        write_probe(folder)
    except OSError as exc:
        raise WriteError(f"cannot write to {what} {folder}: {describe_os_error(exc)}") from None
    return folder


def write_probe(folder: Path) -> None:
    """Really write (and remove) a small file in `folder`; OSError if that fails.

    os.access says yes to root on a read-only mount or a folder it may not use, so
    the only honest check is a real write."""
    fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-probe.")
    os.close(fd)
    os.unlink(probe)


def sha256_file(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, read in chunks so a large file is not held whole."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def probe_writable(path: Path, what: str = "output") -> None:
    """Prove that `path` (a file or folder still to be made) could be created, without
    creating it: find its nearest existing ancestor and really write a probe file there.

    Run before any slow work (exports, timing) so a bad output fails first, in one line."""
    path = Path(path)
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        if parent.is_symlink():  # a dangling link: writing through it fails
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise WriteError(f"cannot write {what} {path}: {parent} is a file, not a folder")
    try:
        write_probe(parent)
    except OSError as exc:
        raise WriteError(f"cannot write {what} {path}: {describe_os_error(exc)}") from None


PARTIAL = ".partial."


def pid_alive(pid: int) -> bool:
    """Whether a process of that id runs on this host (a scratch folder's owner).
    psutil, not os.kill(pid, 0): on Windows os.kill ends the process it asks about."""
    return psutil.pid_exists(pid)


def sweep_partial_dirs(path: Path) -> list[Path]:
    """Remove half-built folders beside `path` (atomic_dir's hidden `.NAME.PID.partial.*`
    folders) whose process is gone: a kill -9 cannot run the cleanup, so the next
    writer of a folder there does it."""
    removed = []
    try:  # any output's half folder in this parent, not only this name's
        siblings = list(Path(path).parent.glob(f".*{PARTIAL}*"))
    except OSError:
        return removed
    for d in siblings:
        pid = d.name.split(PARTIAL)[0].rsplit(".", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)) and d.is_dir():
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a hidden temporary folder beside `path`; on success it is renamed to `path`
    (which must not exist, or be an empty folder). On any failure it is removed whole."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_partial_dirs(path)
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}{PARTIAL}"))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700
    except FileExistsError:
        raise WriteError(f"cannot write {path}: a path component is a file, not a folder") from None
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {describe_os_error(exc)}") from None
    try:
        yield tmp
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise WriteError(f"cannot write {path}: {describe_os_error(exc)}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# Characters every file system and CI artifact uploader accepts in a file name;
# actions/upload-artifact refuses " : < > | * ? \r \n, Windows also / \ and names like CON.
_PORTABLE = re.compile(r"[A-Za-z0-9._+=@-]+")
_WINDOWS_RESERVED = re.compile(r"(CON|PRN|AUX|NUL|COM[0-9]|LPT[0-9])(\..*)?", re.IGNORECASE)


def portable_name(text: str, max_len: int = 120) -> str:
    """A file name for `text` that Windows and CI uploaders accept. A name that is
    already portable is kept as it is (files written before stay where they are);
    any other becomes a readable slug plus a hash of the whole text, so two texts
    never share a file."""
    text = str(text)
    if (_PORTABLE.fullmatch(text) and len(text) <= max_len and not text.startswith(".")
            and not text.endswith(".") and not _WINDOWS_RESERVED.fullmatch(text)):
        return text
    slug = re.sub(r"[^A-Za-z0-9._+=@-]+", "_", text).strip("._")[: max_len - 9] or "x"
    return f"{slug}-{hashlib.sha256(text.encode('utf-8')).hexdigest()[:8]}"


def same_file(a: Path, b: Path) -> bool:
    """Whether two names reach one file (a symlink, a hard link, `./x` and `x`)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_new_output(path: Path, what: str = "output", *, folder: bool = False, inputs=(),
                     hint: str = "give a new name") -> Path:
    """The one rule for every file or folder a command creates: outputs never
    overwrite inputs or existing files.

    Refused in one line: an existing file (or, for `folder`, anything but an empty
    folder), a name that reaches one of the command's `inputs`, and a place that
    cannot be written (proved by writing a probe there, creating nothing). `hint`
    says what to do instead of overwriting."""
    path = Path(path)
    for inp in inputs:
        if inp is not None and Path(inp).exists() and path.exists() and same_file(path, Path(inp)):
            raise WriteError(f"{what} {path} is {inp}, an input of this command; outputs never overwrite inputs")
    if path.is_symlink() and not path.exists():
        raise WriteError(f"{what} {path} is a dangling symlink; give a new name")
    if folder:
        if path.exists() and (not path.is_dir() or any(path.iterdir())):
            raise WriteError(f"{what} {path} already exists and is not an empty folder; outputs are never overwritten")
    elif path.is_dir():
        raise WriteError(f"{what} {path} is a folder; give a file name")
    elif path.exists():
        raise WriteError(f"{what} {path} already exists; outputs are never overwritten ({hint})")
    probe_writable(path, what)
    return path


def write_new(path: Path, data: str | bytes, what: str = "output") -> None:
    """Write a new file whole or not at all, and never over an existing one: the data
    goes to a temporary file that is hard-linked to `path` (which fails if it exists)."""
    path = Path(path)
    make_parent(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {describe_os_error(exc)}") from None
    tmp = Path(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise WriteError(f"{what} {path} already exists; outputs are never overwritten (give a new name)") from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            # No hard links on this file system: claim the name exclusively, then fill it.
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                raise WriteError(f"{what} {path} already exists; outputs are never overwritten") from None
            os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        raise WriteError(f"cannot write {path}: {describe_os_error(exc)}") from None
    finally:
        tmp.unlink(missing_ok=True)


# --- the cache folder ------------------------------------------------------------------

# Exports, the machine probe's calibration, the complexity catalog and baselines'
# saved graphs live under one folder: this variable names it.
CACHE_ENV = "MODBENCH_CACHE"


class CacheError(ModbenchError):
    """The cache cannot be used (MODBENCH_CACHE names a file, a lock timed out...)."""


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    # Path.home() of an empty HOME is "/", which would put the cache in /.cache.
    home = os.environ.get("HOME", "").strip()
    if not home or Path(home) == Path("/"):
        raise CacheError(f"HOME is empty or '/', so there is no user cache folder: set {CACHE_ENV} "
                         "to the folder the export cache should use")
    return Path(home) / ".cache" / "modbench"


def usable_cache_dir(root: Path | None = None) -> Path:
    """The cache folder, created if needed and proved writable by a real write."""
    root = Path(root) if root else default_cache_dir()
    what = f"export cache ({CACHE_ENV})" if os.environ.get(CACHE_ENV) else "export cache"
    return ensure_writable_dir(root, what)
