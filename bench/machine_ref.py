"""The machine's own speed, measured beside the timed blocks.

On a shared VM the host slows the whole machine for seconds at a time (another
tenant on the same physical cores), and nothing inside the VM shows it: no other
process, no steal. The only witness is a fixed piece of work whose time is known:
the *probe*, a small convolution network run in ONNX Runtime on one thread, timed
for a few iterations before every block. Its time against the
machine's normal probe time (the *reference*) says whether the block that follows
ran at normal speed, and how much slower it was if not.

The reference is the probe's normal (fast-mode) time on this machine. A run finds
it in its own probe readings when some of its blocks ran at normal speed; a run
slowed from its first block to its last cannot, so every run stores what it found
as a *calibration*, keyed by the machine's fingerprint and dated, beside the
export cache. A later run compares its readings with the calibration: a run that
never reaches it is slowed throughout, and says so.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from filelock import FileLock
from onnx import TensorProto, helper, numpy_helper

from modbench.common.errors import first_line
from modbench.common.fsio import atomic_write, default_cache_dir

# Bump when the probe network or its reading changes: old calibrations no longer apply.
PROBE_VERSION = 5
# Probe iterations per reading (about 10 ms of work); the reading is their mean time.
# The mean, not the median, and iterations of a model's length (1-2 ms), not a tiny
# kernel: a slowdown that comes as time slices taken away (a competitor on the same
# CPU) leaves most short iterations untouched and shows only in the time of the whole
# reading, as it shows in a block of the model. (Measured here under a pinned
# competitor switched on and off: the per-block correlation of probe and model slowdown
# was 0.73-0.79 for this probe, 0.61-0.65 for 20 iterations of a 0.3 ms kernel's mean,
# 0.34-0.37 for their median.)
PROBE_ITERS = 5
PROBE_CHANNELS, PROBE_SIDE = 64, 28
# A block whose probe reading is within this factor of the reference ran at normal
# speed. The host's two modes sit at 1.0-1.2x and 1.6-2.0x with an empty gap between.
NORMAL_MAX = 1.25
# Readings within this of each other are one mode (finding the fast mode's floor).
MODE_TOL = 0.10
# A run's fast mode counts as found when this many readings support it.
MIN_MODE_READINGS = 5
# A calibration faster than the run by more than this is kept; a run faster than the
# calibration by more than this replaces it (the machine itself got faster).
RECALIBRATE = 0.03
# A calibration older than this is not trusted (the VM may have moved to another host).
CALIBRATION_MAX_AGE_DAYS = 14


def probe_model_bytes() -> bytes:
    """A fixed convolution network (about 2 ms on one thread of this project's VM):
    3x3 convolutions, the kernels the timed models spend most of their time in."""

    rng = np.random.default_rng(PROBE_VERSION)
    c, side = PROBE_CHANNELS, PROBE_SIDE
    inits, nodes, x = [], [], "x"
    for i in range(4):
        w = numpy_helper.from_array((rng.standard_normal((c, c, 3, 3)) * 0.05).astype(np.float32), f"w{i}")
        inits.append(w)
        nodes += [helper.make_node("Conv", [x, f"w{i}"], [f"c{i}"], pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"])]
        x = f"r{i}"
    nodes += [helper.make_node("GlobalAveragePool", [x], ["g"]),
              helper.make_node("Flatten", ["g"], ["y"])]
    graph = helper.make_graph(nodes, "modbench_probe", [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, side, side])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


class Probe:
    """The probe network loaded in ONNX Runtime; `read()` returns one reading (ms).

    One thread, never spinning. A timed session's spinning worker keeps a core busy for
    50-100 ms after its block (measured here: 0.8 cores during a 50 ms pause), so a
    2-thread probe after it read 2.04 ms instead of 1.08 and jumped between the two;
    a 1-thread probe runs on the other core and read 2.08 instead of 2.02, steadily.
    A slowdown of the host's cores (another tenant on them, a lower clock) reaches it
    all the same."""

    threads = 1

    def __init__(self):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._sess = ort.InferenceSession(probe_model_bytes(), opts, providers=["CPUExecutionProvider"])
        self._feed = {"x": np.random.default_rng(0).standard_normal((1, PROBE_CHANNELS, PROBE_SIDE, PROBE_SIDE),
                                                                    dtype=np.float32)}
        for _ in range(10):  # its own warm-up, outside every reading
            self._sess.run(None, self._feed)

    def read(self) -> float:
        """Milliseconds per probe iteration, over PROBE_ITERS back to back."""
        t0 = time.perf_counter_ns()
        for _ in range(PROBE_ITERS):
            self._sess.run(None, self._feed)
        return (time.perf_counter_ns() - t0) * 1e-6 / PROBE_ITERS

    def close(self) -> None:
        self._sess = None


# --- the fast mode of a set of readings ---------------------------------------------------

def mode_floor(readings) -> float | None:
    """The floor of the readings' fast mode: the lowest reading that has at least two
    others within MODE_TOL of it (a single lucky reading is not a mode); the median
    when no three readings are that close; the lowest of fewer than three."""
    r = np.sort(np.asarray([x for x in readings if x is not None and math.isfinite(x) and x > 0], float))
    if r.size == 0:
        return None
    if r.size < 3:
        return float(r[0])
    for i in range(r.size - 2):
        if r[i + 2] <= r[i] * (1 + MODE_TOL):
            return float(r[i])
    return float(np.median(r))


def fast_mode(readings) -> tuple[float | None, int]:
    """(location of the readings' fast mode, how many readings it rests on): the
    median of the readings from `mode_floor` up to NORMAL_MAX times it."""
    floor = mode_floor(readings)
    if floor is None:
        return None, 0
    r = np.asarray([x for x in readings if x is not None and math.isfinite(x) and x > 0], float)
    near = r[(r >= floor) & (r <= floor * NORMAL_MAX)]
    return float(np.median(near)), int(near.size)


# --- calibration: the reference of this machine, kept between runs ---------------------

@dataclass(frozen=True)
class Reference:
    """The probe's normal time on this machine, and where that figure comes from."""

    ms: float
    source: str  # "calibration YYYY-MM-DD" or "this run (no calibration for this machine yet)"


def calibration_key(env: dict, threads: int) -> str:
    """The machine fingerprint and the probe's threads: what must match for a calibration to apply."""
    text = f"{env.get('cpu_name')}|{env.get('cpu_logical')}|threads={threads}|probe={PROBE_VERSION}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def calibration_path(env: dict, threads: int) -> Path:
    return default_cache_dir() / "machine" / f"probe-{calibration_key(env, threads)}.json"


# A figure kept in the cache is believed only within this factor of what the run
# measures: the host slows this VM 1.6-2x, never 4x, so a figure further off is not
# this machine's (a file copied from elsewhere, edited, or damaged).
PLAUSIBLE_RATIO = 4.0


def _set_aside(path: Path, why: str) -> None:
    """A cache file that cannot be believed: renamed out of the way (the next run
    writes a new one) and said in one line that names it."""
    try:
        path.replace(path.with_name(path.name + ".set-aside"))
        where = f"moved to {path.name}.set-aside"
    except OSError:
        where = "left in place"
    print(f"note: {path}: {why}; not used ({where})", file=sys.stderr)


def _cached_figure(value, date, what: str) -> tuple[float, str]:
    """(milliseconds, ISO date) of a cached entry, or ValueError saying what is wrong."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} is {value!r}, not a number")
    ms = float(value)
    if not (ms > 0 and math.isfinite(ms)):
        raise ValueError(f"{what} is {value!r}, not a positive number")
    day = _dt.date.fromisoformat(str(date))
    if day > _dt.date.today():
        raise ValueError(f"its date {day} is in the future")
    return ms, day.isoformat()


def read_calibration(env: dict, threads: int) -> dict | None:
    """The stored calibration, or None when there is none or it is too old; one that
    cannot be believed (not a positive number, a date to come) is set aside."""
    p = calibration_path(env, threads)
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text())
        ms, date = _cached_figure(data["probe_ms"], data["date"], "probe_ms")
    except OSError:
        return None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        _set_aside(p, f"a damaged probe calibration ({exc})")
        return None
    if (_dt.date.today() - _dt.date.fromisoformat(date)).days > CALIBRATION_MAX_AGE_DAYS:
        return None
    return dict(data, probe_ms=ms, date=date)


def resolve_reference(readings, env: dict, threads: int, save: bool = True) -> Reference | None:
    """The reference for a set of probe readings, updating the stored calibration.

    - A calibration exists and the run is not clearly faster: the calibration is the
      reference (a run slowed throughout finds all its blocks slowed against it).
    - The run's fast mode is faster than the calibration by more than RECALIBRATE:
      the machine got faster; the run's figure is the reference and is stored.
    - No calibration: the run's own fast mode is the reference, stored when it rests
      on enough readings, and every row says that no calibration existed."""
    mode, support = fast_mode(readings)
    if mode is None:
        return None
    cal = read_calibration(env, threads)
    if cal is not None and not (1 / PLAUSIBLE_RATIO <= mode / cal["probe_ms"] <= PLAUSIBLE_RATIO):
        _set_aside(calibration_path(env, threads), f"its probe time {cal['probe_ms']:g} ms is {mode / cal['probe_ms']:.3g}x "
                   f"what this run's probe reads ({mode:g} ms): not this machine's")
        cal = None
    today = _dt.date.today().isoformat()
    if cal is not None and mode >= cal["probe_ms"] * (1 - RECALIBRATE):
        return Reference(cal["probe_ms"], f"calibration {cal['date']}")
    if save and support >= MIN_MODE_READINGS:
        _store(env, threads, mode, support, today)
    if cal is not None:
        return Reference(mode, f"this run (faster than the calibration of {cal['date']} by "
                               f"{1 - mode / cal['probe_ms']:.0%}; stored)")
    return Reference(mode, "this run (no calibration for this machine yet)")


def _store(env: dict, threads: int, ms: float, support: int, date: str) -> None:
    data = {"probe_ms": ms, "date": date, "readings": support, "threads": threads,
            "probe_version": PROBE_VERSION, "cpu_name": env.get("cpu_name"),
            "cpu_logical": env.get("cpu_logical")}
    path = calibration_path(env, threads)
    try:
        with _writing(path):
            atomic_write(path, json.dumps(data, indent=1), make_parents=True)
    except Exception:  # a read-only cache only costs the next run its calibration
        pass


def _writing(path: Path) -> FileLock:
    """One writer of a cache file at a time (two runs at once keep every figure)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path) + ".lock", timeout=30)


# --- each model's fast figure on this machine, kept between runs ------------------------
#
# The probe sees what slows the whole machine; the host of this project's VMs also
# slows two-thread work in phases a one-thread probe does not see, which each row's
# own block medians show as a second mode. A row slowed from its first block to its
# last has no fast mode to find: its fastest blocks, against this model's fast figure
# from an earlier run on this machine, say so.

# A row's normal-speed blocks say something of its model's fast figure once this many agree.
MODEL_FIGURE_BLOCKS = 3


def model_figures_path(env: dict) -> Path:
    return default_cache_dir() / "machine" / f"models-{calibration_key(env, 0)}.json"


def read_model_figures(env: dict) -> dict:
    """key -> {"ms": fast-mode latency, "date": ...}, dropping figures too old to trust;
    entries that cannot be believed are dropped with a line naming the file."""
    path = model_figures_path(env)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except OSError:
        return {}
    except ValueError as exc:
        _set_aside(path, f"damaged model figures ({first_line(exc)})")
        return {}
    if not isinstance(data, dict):
        _set_aside(path, "damaged model figures (not a JSON object)")
        return {}
    out, bad = {}, []
    for k, v in data.items():
        try:
            ms, date = _cached_figure(v["ms"], v["date"], f"{k}'s ms")
        except (KeyError, TypeError, ValueError) as exc:
            bad.append(f"{k} ({exc})")
            continue
        if (_dt.date.today() - _dt.date.fromisoformat(date)).days <= CALIBRATION_MAX_AGE_DAYS:
            out[k] = {"ms": ms, "date": date}
    if bad:
        print(f"note: {path}: {len(bad)} figure(s) not used: {'; '.join(bad[:3])}", file=sys.stderr)
    return out


def update_model_figures(env: dict, found: dict) -> None:
    """Store each model's fast figure of this run where there was none, the old one is
    too old, or this run's is faster by more than RECALIBRATE (never a slower one: a
    slowed run must not become the reference)."""
    path = model_figures_path(env)
    try:
        lock = _writing(path)
        lock.acquire()
    except Exception:  # a read-only cache, or another run holding it for 30 s: these figures wait
        return
    try:
        _update_model_figures(env, found)
    finally:
        lock.release()


def _update_model_figures(env: dict, found: dict) -> None:
    figures = read_model_figures(env)  # read again under the lock: another run may have added some
    today = _dt.date.today().isoformat()
    changed = False
    for key, ms in found.items():
        if not (ms and math.isfinite(ms) and ms > 0):
            continue
        old = figures.get(key)
        if old is None or ms < old["ms"] * (1 - RECALIBRATE):
            figures[key] = {"ms": float(ms), "date": today}
            changed = True
    if changed:
        try:
            atomic_write(model_figures_path(env), json.dumps(figures, indent=1, sort_keys=True),
                         make_parents=True)
        except Exception:  # a read-only cache only costs the next run these figures
            pass
