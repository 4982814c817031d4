"""The machine and software a measurement was taken on, captured into every row."""
from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import cpuinfo
import psutil

REPO_ROOT = Path(__file__).resolve().parent.parent
# Libraries whose versions change latency; recorded with every number.
VERSIONED = ("torch", "onnx", "onnxruntime-gpu", "onnxruntime", "timm", "numpy", "coremltools")


def _pkg_version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return ""


@lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU's marketing name from py-cpuinfo (brand_raw; on Apple silicon
    "Apple M2 Pro", where platform says only "arm"), else what platform knows."""
    try:
        name = (cpuinfo.get_cpu_info().get("brand_raw") or "").strip()
        if name:
            return name
    except Exception:  # py-cpuinfo runs helpers that can fail on exotic hosts
        pass
    return platform.processor() or platform.machine() or "unknown"


@lru_cache(maxsize=1)
def physical_cores() -> int:
    """Physical cores from psutil (on macOS /proc does not exist and the old parser
    returned the logical count); the logical count if psutil cannot tell."""
    try:
        n = psutil.cpu_count(logical=False)
        if n:
            return int(n)
    except Exception:
        pass
    return os.cpu_count() or 1


def logical_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


@lru_cache(maxsize=1)
def git_state() -> tuple[str, bool]:
    """(commit, dirty) of the suite's own checkout; ('unknown', False) outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout
        return (commit or "unknown", bool(status.strip()))
    except (OSError, subprocess.SubprocessError):
        return ("unknown", False)


@lru_cache(maxsize=1)
def machine_env() -> dict:
    """Columns that describe the host and software, the same for every row of a run."""
    commit, dirty = git_state()
    env = {
        "cpu_name": cpu_name(),
        "cpu_logical": logical_cores(),
        "cpu_physical": physical_cores(),
        "hostname": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "git_commit": commit,
        "git_dirty": dirty,
        # Where it ran; a fleet run replaces both with its cluster address and the
        # node's Ray id (bench/fleet.py).
        "cluster": "local",
        "node": f"-:{platform.node()}",
    }
    for dist in VERSIONED:
        env[f"{dist.replace('-', '_')}_version"] = _pkg_version(dist)
    return env


def fingerprint(env: dict) -> str:
    """What must match for two runs to be compared directly."""
    return f"{env.get('cpu_name')}|{env.get('cpu_logical')}|{env.get('device_name', '')}"


def cpu_fingerprint() -> str:
    """This machine's fingerprint as its CPU rows carry it (their device is the CPU)."""
    env = machine_env()
    return fingerprint(dict(env, device_name=env["cpu_name"]))


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
