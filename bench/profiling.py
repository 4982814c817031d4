"""Per-operator profiles of prepared models, collected with each runtime's own profiler.

ONNX Runtime sessions are opened by their runner with `RunSettings.profile_prefix`
(ONNX Runtime's `enable_profiling`); its trace gives one event per kernel (op type,
node, provider, shapes). A torch runner's session is run under `torch.profiler`, with
each module's call recorded as a range so that an operator maps to its module path.

The profiler changes the timing, so a profile never replaces a timed run: the
models are first timed plainly by the group timer every command uses
(`pipeline.time_group`, interleaved round-robin), then opened again with the
profiler, warmed up as the timed sessions were, and profiled in rounds, one round of
each model in turn. A round of model A and the same round of model B ran seconds
apart, so the difference of two profiles is paired round by round, as timed blocks are.

This module collects; bench/report/profiles.py classifies and aggregates.
"""
from __future__ import annotations

import bisect
import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.profiler import ProfilerActivity, record_function

from modbench.common.errors import ModbenchError
from modbench.models import get_entry

from .pipeline import Prepared, RunRequest, new_run_id, time_group
from .runners import RunSettings, get_runner
from .store import SAMPLES_KEY

# The range name that marks a module's call in a torch profile.
MODULE_RANGE = "modbench.module::"
# Where a kernel outside any module (ONNX Runtime's layout reorders, a graph's own
# top-level nodes) is attributed.
GRAPH = "(graph)"


class ProfileError(ModbenchError):
    """A profile cannot be taken as asked (one line, exit 2)."""


@dataclass(frozen=True)
class ProfileSettings:
    """How many iterations are profiled: `rounds` rounds of `iters` each, after the
    timing protocol's warm-up (and its per-block warm-up before every round)."""

    rounds: int = 5
    iters: int = 20

    def __post_init__(self):
        if self.rounds < 2 or self.iters < 1:
            raise ProfileError("--rounds must be at least 2 (the rounds give the noise) and --profile-iters "
                               "at least 1")


@dataclass
class NodeTimes:
    """One graph node (ONNX Runtime) or one top-level operator call site (torch) of
    a model: its per-iteration time in each profiled round."""

    node: str
    op_type: str
    module: str          # the PyTorch module path, e.g. layers.0.blocks.1.mlp.fc1; GRAPH if none
    provider: str
    input_shapes: str    # "1x32x16x16,32x1x3x3"
    output_shapes: str
    calls: float         # kernels launched per iteration
    us_by_round: list[float] = field(default_factory=list)  # microseconds per iteration, per round


@dataclass
class ModelProfile:
    """A prepared model's timed row and its profile."""

    prepared: Prepared
    row: dict                    # the timed results row (pipeline.time_group)
    samples_ms: np.ndarray       # its timed samples, in blocks of `block`
    block: int
    nodes: list[NodeTimes]
    run_us_by_round: list[float]  # the profiled iteration's own duration, per round
    iters: int
    profiler: str

    @property
    def label(self) -> str:
        return label_of(self.prepared)


def label_of(p: Prepared) -> str:
    """How a profiled model is named in tables and in --compare: the model, with its
    variant where the model has several (efficientmod_s@reshape)."""
    many = len(get_entry(p.job.model).variants) > 1
    return f"{p.job.model}@{p.job.variant}" if many else p.job.model


def shapes_text(shapes) -> str:
    """ONNX Runtime's [{"float": [1, 3, 64, 64]}, ...] or torch's [[1, 3, 64, 64], ...]."""
    out = []
    for s in shapes or []:
        dims = next(iter(s.values()), []) if isinstance(s, dict) else s
        if isinstance(dims, (list, tuple)) and dims:
            out.append("x".join(str(d) for d in dims))
    return ",".join(out)


def module_of_node(node: str) -> str:
    """The PyTorch module path of an exported node name.

    The torchscript exporter names a node after the scopes it was traced in, one per
    module call: `/layers.0/blocks/blocks.1/mlp/fc1/MatMul` (a child of a Sequential
    repeats its parent's scope, `blocks/blocks.1`). The op-type parts at the end start
    with a capital letter (`MatMul`, `Conv_output_0_nchwc`, a fusion's `MatMulAddFusion`).
    A name without a scope (ONNX Runtime's own inserted nodes) has no module."""
    if not node.startswith("/"):
        return GRAPH
    parts = [s for s in node.split("/") if s]
    while parts and parts[-1][:1].isupper():
        parts.pop()
    path: list[str] = []
    previous = ""
    for seg in parts:
        if previous and seg.startswith(previous + "."):
            path.append(seg[len(previous) + 1:])
        else:
            path.append(seg)
        previous = seg
    return ".".join(path) or GRAPH


# --- ONNX Runtime ------------------------------------------------------------------

KERNEL_SUFFIX = "_kernel_time"


def read_ort_trace(path: str | Path, rounds_of_runs: list[int | None], iters: int, n_rounds: int):
    """Node times from ONNX Runtime's trace. `rounds_of_runs` gives, for each run of
    the session in order, the profiled round it belongs to (None: warm-up)."""
    try:
        events = json.loads(Path(path).read_text())
    finally:
        Path(path).unlink(missing_ok=True)
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e["ts"])
    if len(runs) != len(rounds_of_runs):
        raise ProfileError(f"ONNX Runtime's profile holds {len(runs)} runs, {len(rounds_of_runs)} were made "
                           "(its profiler stops at a million events: fewer --profile-iters or --rounds)")
    starts = [r["ts"] for r in runs]
    run_us = np.zeros(n_rounds)
    for r, rnd in zip(runs, rounds_of_runs):
        if rnd is not None:
            run_us[rnd] += r["dur"]
    # Each profiled run's position among the profiled runs, and its round.
    index = {}
    for ordinal, rnd in enumerate(rounds_of_runs):
        if rnd is not None:
            index[ordinal] = len(index)
    round_of = np.array([rnd for rnd in rounds_of_runs if rnd is not None])
    nodes: dict[str, NodeTimes] = {}
    per_run: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith(KERNEL_SUFFIX) or e["ts"] < starts[0]:
            continue
        ordinal = bisect.bisect_right(starts, e["ts"]) - 1
        if ordinal not in index:
            continue
        name = e["name"][:-len(KERNEL_SUFFIX)]
        a = e.get("args", {})
        if name not in nodes:
            nodes[name] = NodeTimes(name, a.get("op_name", "?"), module_of_node(name), a.get("provider", ""),
                                    shapes_text(a.get("input_type_shape")), shapes_text(a.get("output_type_shape")),
                                    0.0)
            per_run[name] = np.zeros(len(index))
            counts[name] = 0
        per_run[name][index[ordinal]] += e["dur"]
        counts[name] += 1
    for name, n in nodes.items():
        n.calls = counts[name] / len(index)
        n.us_by_round = round_medians(per_run[name], round_of, n_rounds)
    return list(nodes.values()), list(run_us / iters)


def round_medians(per_iteration: np.ndarray, round_of: np.ndarray, n_rounds: int) -> list[float]:
    """A node's time in each round: the median over the round's iterations of its time
    in one iteration. A median, not a mean: on a shared machine one kernel now and then
    waits for a core, and one such wait would otherwise be a round's figure."""
    return [float(np.median(per_iteration[round_of == r])) if (round_of == r).any() else 0.0
            for r in range(n_rounds)]


class _OrtProfiled:
    """An ONNX Runtime session opened with its profiler; the runs are counted so the
    trace's runs can be told apart (warm-up or round k)."""

    profiler = "onnxruntime enable_profiling"

    def __init__(self, runner, p: Prepared, req: RunRequest, folder: str):
        prefix = os.path.join(folder, re.sub(r"[^A-Za-z0-9_.-]", "_", label_of(p)))
        settings = RunSettings(threads=p.job.threads, spinning=req.spinning, options=dict(req.options),
                               profile_prefix=prefix)
        self.session = runner.open(p.artifact, (p.job.batch, 3, p.job.resolution, p.job.resolution), settings)
        self.rounds_of_runs: list[int | None] = []

    def run(self, n: int, rnd: int | None) -> None:
        if n:
            self.session.run_block(n)
            self.rounds_of_runs += [rnd] * n

    def warm(self, warmup: int) -> None:
        self.session.first_run()
        self.rounds_of_runs.append(None)
        self.run(warmup, None)

    def finish(self, iters: int, n_rounds: int):
        path = self.session.end_profiling()
        self.session.close()
        if path is None:
            raise ProfileError("the session was opened without ONNX Runtime's profiler")
        return read_ort_trace(path, self.rounds_of_runs, iters, n_rounds)

    def close(self) -> None:
        self.session.close()


# --- torch ---------------------------------------------------------------------------

class _ModuleRanges:
    """Every module's call of a network recorded as a profiler range named after its
    module path, so an operator maps to the module that ran it."""

    def __init__(self, module: torch.nn.Module):
        self._handles = []
        self._open: list = []
        # The root's range (an empty path) marks one iteration.
        for name, m in module.named_modules():
            self._handles.append(m.register_forward_pre_hook(self._enter(name)))
            self._handles.append(m.register_forward_hook(self._exit))

    def _enter(self, name: str):
        def hook(module, args):
            rf = record_function(MODULE_RANGE + name)
            rf.__enter__()
            self._open.append(rf)
        return hook

    def _exit(self, module, args, output):
        if self._open:
            self._open.pop().__exit__(None, None, None)

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def _torch_op_times(events, device: str) -> list[tuple[str, str, str, float, int, float]]:
    """(op, module, shapes, microseconds, kernels, iteration) of each top-level operator
    call: an operator called inside another operator is part of that one's time. The
    iteration is the start of the root module's range around it."""
    out = []
    for e in events:
        if e.name.startswith(MODULE_RANGE) or e.device_type != torch.autograd.DeviceType.CPU:
            continue
        parent, module, nested, iteration = e.cpu_parent, None, False, None
        while parent is not None:
            if parent.name.startswith(MODULE_RANGE):
                if module is None:
                    module = parent.name[len(MODULE_RANGE):] or GRAPH
                iteration = parent.time_range.start
            elif module is None:
                nested = True
            parent = parent.cpu_parent
        if nested or iteration is None:
            continue
        if device == "cuda":
            us, kernels = e.device_time_total, _kernel_count(e)
        else:
            us, kernels = e.cpu_time_total, 1
        out.append((e.name, module, shapes_text(e.input_shapes), float(us), kernels, iteration))
    return out


def _kernel_count(e) -> int:
    return len(getattr(e, "kernels", []) or []) + sum(_kernel_count(c) for c in e.cpu_children)


class _TorchProfiled:
    """A torch runner's session, its profiled rounds run under torch.profiler."""

    profiler = "torch.profiler"

    def __init__(self, runner, p: Prepared, req: RunRequest, folder: str):
        settings = RunSettings(threads=p.job.threads, spinning=req.spinning, options=dict(req.options))
        self.device = runner.device
        self.module = p.artifact
        self.session = runner.open(p.artifact, (p.job.batch, 3, p.job.resolution, p.job.resolution), settings)
        self.calls: dict[tuple, dict] = {}   # (op, module, shapes) -> {"us": {(round, i): us}, "kernels": n}
        self.iterations: list[tuple[int, int]] = []
        self.run_us: dict[int, float] = {}

    def warm(self, warmup: int) -> None:
        self.session.first_run()
        if warmup:
            self.session.run_block(warmup)

    def run(self, n: int, rnd: int | None) -> None:
        if rnd is None:
            if n:
                self.session.run_block(n)
            return
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.device == "cuda" else [])
        ranges = _ModuleRanges(self.module)
        try:
            with torch.profiler.profile(activities=activities, record_shapes=True) as prof:
                ms = self.session.run_block(n)
        finally:
            ranges.remove()
        self.run_us[rnd] = float(np.sum(ms)) * 1e3
        ops = _torch_op_times(prof.events(), self.device)
        starts = sorted({it for *_, it in ops})
        number = {it: i for i, it in enumerate(starts)}
        self.iterations += [(rnd, i) for i in range(len(starts))]
        for op, module, shapes, us, kernels, it in ops:
            slot = self.calls.setdefault((op, module, shapes), {"us": {}, "kernels": 0})
            where = (rnd, number[it])
            slot["us"][where] = slot["us"].get(where, 0.0) + us
            slot["kernels"] += kernels

    def finish(self, iters: int, n_rounds: int):
        self.session.close()
        nodes, seen = [], {}
        round_of = np.array([rnd for rnd, _ in self.iterations])
        for (op, module, shapes), slot in self.calls.items():
            # The same operator at the same place, numbered: module.op#k names a call site.
            base = f"{module}/{op}"
            seen[base] = seen.get(base, 0) + 1
            name = base if seen[base] == 1 else f"{base}#{seen[base]}"
            per_iteration = np.array([slot["us"].get(where, 0.0) for where in self.iterations])
            nodes.append(NodeTimes(name, op, module, self.device, shapes, "", slot["kernels"] / len(self.iterations),
                                   round_medians(per_iteration, round_of, n_rounds)))
        return nodes, [self.run_us.get(r, 0.0) / iters for r in range(n_rounds)]

    def close(self) -> None:
        self.session.close()


def profiler_for(runner):
    if runner.artifact == "onnx" and runner.name.startswith("ort-"):
        return _OrtProfiled
    if runner.artifact == "torch":
        return _TorchProfiled
    raise ProfileError(f"runtime {runner.name} has no per-operator profiler in modbench "
                       "(ort-cpu, ort-cuda, ort-trt, torch-cpu, torch-cuda have)")


def profile_group(members: list[Prepared], req: RunRequest, settings: ProfileSettings,
                  log=lambda msg: None) -> list[ModelProfile]:
    """Time `members` as one interleaved group, then profile each of them, round by
    round in turn, after the same warm-up."""
    runner = get_runner(req.runtime)
    kind = profiler_for(runner)
    protocol = req.protocol
    log(f"timing {len(members)} model(s) on {req.runtime}, interleaved: {protocol.describe()}")
    timed = time_group(members, req, new_run_id(), 0, runner=runner)
    log(f"profiling with {kind.profiler}: warm-up {protocol.warmup}, then {settings.rounds} rounds of "
        f"{settings.iters} iterations each, one model after another")
    with tempfile.TemporaryDirectory(prefix="modbench-profile-") as folder:
        opened = []
        try:
            for p in members:
                opened.append(kind(runner, p, req, folder))
                opened[-1].warm(protocol.warmup)
            for rnd in range(settings.rounds):
                for s in opened:
                    s.run(protocol.block_warmup, None)
                    s.run(settings.iters, rnd)
            results = [s.finish(settings.iters, settings.rounds) for s in opened]
        finally:
            for s in opened:
                s.close()
    out = []
    for p, (row, arrays), (nodes, run_us) in zip(members, timed, results):
        out.append(ModelProfile(p, row, np.asarray(arrays[SAMPLES_KEY]), protocol.block, nodes, run_us,
                                settings.iters, kind.profiler))
    return out
