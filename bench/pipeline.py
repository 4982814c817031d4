"""models -> exporters -> runners -> results, for a list of jobs.

`plan` turns a request into jobs, `prepare` builds, counts and exports each one
(everything that can fail on bad input happens here, before any file is
written), and `execute` times them and appends a row per finished job.
"""
from __future__ import annotations

import itertools
import re
import uuid
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from modbench.common.errors import ModbenchError, first_line
from modbench.common.fsio import sha256_file
from modbench.exporters import ExportRequest, ExportedModel, get_exporter
from modbench.exporters.base import output_tensors
from modbench.models import ModelEntry, ModelError, create_model, get_entry, resolve_spec
from modbench.models.byo import (check_onnx_shape, is_user_entry, onnx_file_digest, onnx_input, onnx_input_dtype,
                        onnx_param_count, probe_onnx, read_onnx, user_code)
from modbench.models.complexity import count_macs, count_params

from .busy import DEFAULT_BUSY_CORES, DEFAULT_MAX_DISTURBED
from .env import machine_env, now_iso
from .machine_ref import (MODEL_FIGURE_BLOCKS, Probe, read_model_figures, resolve_reference,
                          update_model_figures)
from .measurement import IMPRECISE, NO_INTERVAL, Validity, relative_figure
from .runners import RUNNERS, RunSettings, get_runner
from .schedule import TimingProtocol, time_sessions
from .schema import Identity, Protocol, Provenance, ResultRow
from .store import PROBE_KEY, SAMPLES_KEY, ResultsWriter, valid_row_id


class PlanError(ModbenchError):
    """The request cannot be run as asked (bad model, setting or combination)."""


@dataclass(frozen=True)
class Job:
    model: str
    variant: str
    runtime: str
    threads: int
    batch: int
    resolution: int
    checkpoint: str | None = None
    # The fleet placement (`--on` label) this job is timed on, when a run names several:
    # the same job on two devices is two rows, so the placement is part of the row id.
    placement: str | None = None

    @property
    def row_id(self) -> str:
        """The row's identity in its file (see store.IDENTITY; the device and precision
        follow from the runtime and the run's options, one per run)."""
        where = f"@{placement_slug(self.placement)}" if self.placement else ""
        return (f"{self.model}.{self.variant}.{self.runtime}.t{self.threads}"
                f".b{self.batch}.r{self.resolution}") + where


def placement_slug(label: str) -> str:
    """A fleet label as it appears in row ids, which name samples files: a label such
    as ray.io/accelerator-type=H100 must not become a folder."""
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", label)


@dataclass
class RunRequest:
    """Everything `bench.py run` was asked; stored beside the results for --resume."""

    models: list[str]
    runtime: str = "ort-cpu"
    variants: list[str | None] = field(default_factory=lambda: [None])
    threads: list[int] = field(default_factory=lambda: [4])
    batches: list[int] = field(default_factory=lambda: [1])
    resolutions: list[int | None] = field(default_factory=lambda: [None])
    # How every group is timed (iterations, blocks, stopping rule, budget).
    protocol: TimingProtocol = field(default_factory=TimingProtocol)
    # When a row is judged busy (with the protocol's precision target: its validity).
    busy_cores: float = DEFAULT_BUSY_CORES
    max_disturbed: float = DEFAULT_MAX_DISTURBED
    interleave: int = 0  # models interleaved together; 0 = all of them
    spinning: bool = True
    checkpoint: str | None = None
    exporter: str = "torchscript"
    opset: int | None = None
    dynamic_batch: bool = False
    # Fleet runs (--cluster): the node labels jobs are placed on (--on); empty = any
    # node with a bench slot. Stored so --resume plans the same rows.
    on: list[str] = field(default_factory=list)
    # Runner-specific settings (precision, cudnn_algo_search, cuda_graphs, ...);
    # only those asked for, so a CPU run's request stays as it was.
    options: dict = field(default_factory=dict)
    # Bring-your-own models (models/byo.py): `models` may hold specs (timm:NAME,
    # PATH.onnx, module:function); these rebuild them on --resume.
    model_args: dict = field(default_factory=dict)
    top1: dict = field(default_factory=dict)
    # The model timed beside every interleave group on a CPU runtime, in the same
    # rounds: each row's relative latency is against it (None: no reference; requests
    # stored before it had none).
    reference: str | None = None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> "RunRequest":
        """A stored request; one stored before the timing protocol (flat iters, block,
        target_ci, ... fields) gets its protocol from those fields."""
        d = dict(d)
        if isinstance(d.get("protocol"), dict):
            d["protocol"] = TimingProtocol.from_json(d["protocol"])
        else:
            d["protocol"] = TimingProtocol.from_flat(d)
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})

    @property
    def validity(self) -> Validity:
        rule = self.protocol.stopping
        return Validity(rule.target_ci, rule.stat, self.busy_cores, self.max_disturbed)


def plan(req: RunRequest) -> list[Job]:
    for label, values in (("threads", req.threads), ("batch", req.batches)):
        if any(v < 1 for v in values):
            raise PlanError(f"--{label} must be a positive integer, not {min(values)}")
    if any(r is not None and r < 32 for r in req.resolutions):
        raise PlanError(f"--resolution must be at least 32, not {min(r for r in req.resolutions if r)}")
    if req.checkpoint and len(set(req.models)) > 1:
        raise PlanError("--checkpoint applies to one model; name exactly one")
    jobs, seen = [], set()
    # One placement: every job goes there, and row ids stay those of a local run.
    # Several: every job once per placement.
    placements = list(req.on) if len(req.on) > 1 else [None]
    entries = [resolve_entry(spec, req) for spec in req.models]
    if len(req.models) > 1:
        # A variant no model has is a typo (one model with a variant refuses it below).
        for v in req.variants:
            if v is not None and not any(v in e.variants for e in entries):
                known = sorted({x for e in entries for x in e.variants})
                raise PlanError(f"no model of this run has a variant {v!r}; they have {', '.join(known)}")
    for spec, entry in zip(req.models, entries):
        name = entry.name
        if not entry.available:
            raise PlanError(f"model {name} is not available yet: {entry.unavailable_reason}")
        for placement, variant, threads, batch, res in itertools.product(
                placements, req.variants, req.threads, req.batches, req.resolutions):
            if variant is not None and variant not in entry.variants and len(req.models) == 1:
                raise PlanError(f"model {name} has no variant {variant!r}; it has {', '.join(entry.variants)}")
            if entry.onnx_path is not None:
                check_onnx_job(entry, batch, res, req)
            job = Job(name, entry.resolve_variant(variant), req.runtime, threads, batch,
                      res or entry.default_resolution, req.checkpoint, placement)
            check_row_id(job, spec)
            if job.row_id not in seen:
                seen.add(job.row_id)
                jobs.append(job)
    return jobs


def check_row_id(job: Job, spec: str) -> None:
    """A row id names a samples file: a name that cannot be one is refused when the
    run is planned, not after the model was timed."""

    if not valid_row_id(job.row_id):
        bad = sorted({c for c in job.model if not valid_row_id(c)})
        raise PlanError(f"{spec}: the model name {job.model!r} cannot name a results row (it contains "
                        f"{' '.join(repr(c) for c in bad) or 'too many characters'}; letters, digits and "
                        "_ . + : = @ - only); rename the file or function")


def resolve_entry(spec: str, req: RunRequest) -> ModelEntry:
    """A registry name, or a bring-your-own spec registered for this run."""
    return resolve_spec(spec, model_args=req.model_args, top1=req.top1)


def check_onnx_job(entry: ModelEntry, batch: int, res: int | None, req: RunRequest) -> None:
    """An ONNX file runs as it is: its fixed dims must be the ones asked for, and it
    must load and run once in ONNX Runtime on the planned input."""
    if req.checkpoint:
        raise PlanError(f"{entry.name} is an ONNX file and carries its own weights; --checkpoint does not apply")
    try:
        check_onnx_shape(entry, batch, res)
        probe_onnx(entry, batch, res or entry.default_resolution)
    except ModelError as exc:
        raise PlanError(str(exc)) from None


@dataclass
class Prepared:
    job: Job
    artifact: object  # ExportedModel or nn.Module, as the runner needs
    columns: dict     # model and artifact columns of the row
    # A row id other than the job's, and facts for the row's `extra` column: two
    # artifacts of one job timed together (check --interleaved: .base and .head).
    row_id: str | None = None
    extra: dict = field(default_factory=dict)


def checkpoint_id(path: str | None) -> str:
    return f"sha256:{sha256_file(Path(path))[:16]}" if path else "random-init"


def prepare(job: Job, req: RunRequest, artifact_format: str,
            exporter_options: dict | None = None) -> Prepared:
    """Build, count and (if needed) export one job. Raises on anything bad.

    exporter_options: the exporter's own settings (e.g. Core ML precision); ONNX
    takes its settings from the request when none are given."""
    entry = get_entry(job.model)
    if entry.onnx_path is not None:
        return prepare_onnx_file(job, entry, artifact_format)
    if is_user_entry(entry):
        # A user's network: whatever its code raises, SystemExit included, is one line.
        with user_code(f"model {job.model}"):
            return _prepare_module(job, req, entry, artifact_format, exporter_options, user=True)
    return _prepare_module(job, req, entry, artifact_format, exporter_options)


def _check_forward(job: Job, module) -> None:
    """Run a user's module once on the planned input: its forward must work and return
    a tensor, or a tuple, list or dict of tensors (all timed, all parity-checked)."""
    x = torch.zeros(job.batch, 3, job.resolution, job.resolution)
    with user_code(f"model {job.model}: forward on a {job.batch}x3x{job.resolution}x{job.resolution} input"):
        with torch.no_grad():
            out = module.eval()(x)
    try:
        output_tensors(out, f"model {job.model}")
    except ModbenchError as exc:
        raise PlanError(str(exc)) from None


def _prepare_module(job: Job, req: RunRequest, entry: ModelEntry, artifact_format: str,
                    exporter_options: dict | None, user: bool = False) -> Prepared:
    torch.manual_seed(0)
    try:
        module = create_model(job.model, variant=job.variant, resolution=job.resolution,
                              checkpoint=job.checkpoint)
        if user:
            _check_forward(job, module)
        macs = count_macs(module, job.resolution, batch=1)
    except MemoryError:
        raise PlanError(f"model {job.model} ran out of memory at batch {job.batch}, resolution "
                        f"{job.resolution}; use a smaller --batch or --resolution") from None
    except (RuntimeError, AssertionError, ValueError) as exc:
        if getattr(exc, "__module__", "").startswith("modbench.models"):
            raise
        first = first_line(exc)
        if "out of memory" in first.lower() or "can't allocate memory" in first.lower():
            raise PlanError(f"model {job.model} ran out of memory at batch {job.batch}, resolution "
                            f"{job.resolution}; use a smaller --batch or --resolution") from None
        if isinstance(exc, (AssertionError, ValueError)) or "size" in first.lower() or "shape" in first.lower():
            raise PlanError(f"model {job.model} cannot take resolution {job.resolution}: {first[:200]}") from None
        raise PlanError(f"model {job.model} failed on a {job.batch}x3x{job.resolution}x{job.resolution} "
                        f"input: {type(exc).__name__}: {first[:200]}") from None
    p = entry.paper
    cols = {
        "params_m": count_params(module) / 1e6, "macs_g": macs / 1e9, "top1": p.top1,
        "paper_params_m": p.params_m, "paper_macs_g": p.macs_g, "paper_gpu_ms": p.gpu_ms,
        "paper_cpu_ms": p.cpu_ms, "paper_resolution": p.resolution, "paper_source": p.source,
        "checkpoint": checkpoint_id(job.checkpoint), "artifact_format": artifact_format,
    }
    if artifact_format == "torch":
        return Prepared(job, module, dict(cols, exporter="none"))
    if exporter_options is None:
        exporter_options = ({"exporter": req.exporter, "opset": req.opset}
                            if artifact_format == "onnx" else {})
    exporter = get_exporter(artifact_format, **exporter_options)
    art = exporter.export(module, ExportRequest(
        job.model, job.variant, job.resolution, job.batch, entry.source_id,
        checkpoint_id(job.checkpoint), req.dynamic_batch))
    cols.update(exporter=art.meta.get("exporter"), opset=art.meta.get("opset"),
                export_parity_rel_err=art.meta.get("parity_rel_err"),
                artifact_sha256=art.meta.get("sha256"))
    return Prepared(job, art, cols)


def prepare_onnx_file(job: Job, entry: ModelEntry, artifact_format: str) -> Prepared:
    """A user's ONNX file is the artifact: no build, no export (so no parity gate),
    params counted from its initializers, MACs not counted, its SHA-256 recorded."""
    if artifact_format != "onnx":
        raise PlanError(f"{entry.name} is an ONNX file; the {job.runtime} runtime needs a PyTorch model")
    proto = read_onnx(entry.onnx_path)
    input_name, _ = onnx_input(proto)
    dtype = onnx_input_dtype(proto)
    sha = onnx_file_digest(entry.onnx_path)  # with its external weights, if any
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    art = ExportedModel(Path(entry.onnx_path), "onnx", input_name,
                        (job.batch, 3, job.resolution, job.resolution),
                        {"sha256": sha, "exporter": "none (ONNX file)", "opset": opset}, input_dtype=dtype)
    p = entry.paper
    cols = {
        "params_m": onnx_param_count(proto) / 1e6, "macs_g": None, "top1": p.top1,
        "paper_params_m": None, "paper_macs_g": None, "paper_gpu_ms": None, "paper_cpu_ms": None,
        "paper_resolution": p.resolution, "paper_source": p.source, "checkpoint": "weights in the ONNX file",
        "artifact_format": "onnx", "exporter": "none (ONNX file)", "opset": opset,
        "export_parity_rel_err": None, "artifact_sha256": sha,
    }
    return Prepared(job, art, cols)


def prepare_all(jobs: list[Job], req: RunRequest, artifact_format: str,
                on_job: Callable[[int, Job], None] = lambda i, job: None) -> list[Prepared]:
    """Prepare every job; jobs that differ only in threads share one build and export."""
    built: dict[tuple, Prepared] = {}
    out = []
    for i, job in enumerate(jobs, 1):
        key = (job.model, job.variant, job.batch, job.resolution, job.checkpoint)
        if key not in built:
            on_job(i, job)
            built[key] = prepare(job, req, artifact_format)
        out.append(replace(built[key], job=job))
    return out


def groups(items: list, size: int) -> list[list]:
    if size <= 0:
        return [items]
    return [items[i:i + size] for i in range(0, len(items), size)]


def job_identity(job: Job, run_id: str, session: dict, *, row_id: str | None = None,
                 precision: str | None = None) -> Identity:
    """A row's identity: the job's, with what only the session knows (threads used,
    precision). The runtime is the job's runner word; the device its runner's class."""
    runner = RUNNERS.get(job.runtime)
    return Identity(row_id=row_id or job.row_id, run_id=run_id, model=job.model, variant=job.variant,
                    runtime=job.runtime, device=runner.device if runner else session.get("device"),
                    precision=session.get("precision") or precision or "fp32",
                    threads=session.get("threads"), batch=job.batch, resolution=job.resolution)


IDENTITY_PART = {f.name for f in fields(Identity)}


def session_facts(session: dict) -> dict:
    """What a session describes beyond the row's identity (provider, device name,
    settings, GPU columns); the identity columns are job_identity's."""
    return {k: v for k, v in session.items() if k not in IDENTITY_PART}


def model_figure_key(p: Prepared, req: RunRequest) -> str:
    """What a model's stored fast figure belongs to: the artifact timed (its SHA-256,
    or the model's identity for runners that time a PyTorch module) and the settings."""
    what = p.columns.get("artifact_sha256") or f"{p.job.model}|{p.job.variant}|{p.columns.get('checkpoint')}"
    return (f"{what}|{p.job.runtime}|t{p.job.threads}|b{p.job.batch}|r{p.job.resolution}"
            f"|spin={req.spinning}|{sorted(req.options.items())}")


def model_figure(m) -> float | None:
    """What a row tells of its model's fast figure: the median of its normal-speed blocks,
    once three of them agree (a mode), even where a row has too few for a headline."""
    normal = m.normal_blocks()
    if normal is None or normal.sum() < MODEL_FIGURE_BLOCKS:
        return None
    return float(np.median(m.headline_samples("median")))


def open_probe(runner, env: dict) -> tuple[Probe | None, Callable | None]:
    """The machine probe for a group timed on the CPU, and the function that turns its
    readings into the machine's reference (bench/machine_ref). GPU runners get none:
    the host's CPU speed is not what their samples measure."""
    if runner.device != "cpu":
        return None, None
    probe = Probe()

    def reference(readings, final):
        return resolve_reference(readings, env, probe.threads, save=final)
    return probe, reference


# The reference a run times beside its rows unless told otherwise (--reference): a
# plain CNN in the paper's Table 1, a few milliseconds at 224 px on a CPU, whose speed
# follows the machine's.
DEFAULT_REFERENCE = "mobilenetv2_100"
def reference_job(req: RunRequest, like: Job) -> Job:
    """The reference's job beside `like`: the same runtime, threads, batch and placement,
    at the reference's own resolution."""
    entry = resolve_entry(req.reference, req)
    if not entry.available:
        raise PlanError(f"reference {req.reference} is not available: {entry.unavailable_reason}")
    return Job(entry.name, entry.resolve_variant(None), req.runtime, like.threads, like.batch,
               entry.default_resolution, None, like.placement)


def with_reference(members: list[Prepared], req: RunRequest, run_id: str, group: int,
                   artifact_format: str) -> tuple[list[Prepared], dict[int, int]]:
    """The group's members with the reference beside them, and for each member the index
    of its reference (same threads and batch). A member that is the reference model is
    its group's reference; else a reference row is added, with an id of this run's own
    (a resumed run adds its own again), prepared from the export cache."""
    if req.reference is None or RUNNERS[req.runtime].device != "cpu":
        return members, {}
    out, refs, made = list(members), {}, {}
    for i, p in enumerate(members):
        key = (p.job.threads, p.job.batch, p.job.placement)
        if p.job.model == req.reference or get_entry(p.job.model).name == req.reference:
            made.setdefault(key, i)
    for i, p in enumerate(members):
        key = (p.job.threads, p.job.batch, p.job.placement)
        if key not in made:
            job = reference_job(req, p.job)
            ref = prepare(job, req, artifact_format)
            made[key] = len(out)
            out.append(replace(ref, row_id=f"{job.row_id}.ref-{run_id}-{group}",
                               extra=dict(ref.extra, reference_of_group=group)))
        if made[key] != i:
            refs[i] = made[key]
    return out, refs


def relative_columns(m, ref_m, req: RunRequest, ref_fast: tuple[float, str] | None) -> dict:
    """A row's figure relative to its reference, paired round by round, with a validity
    of its own, and the calibrated milliseconds where the reference's latency on this
    machine is known."""
    rel = relative_figure(m, ref_m)
    r = rel.ratio
    codes = list(rel.codes)
    if r.low != r.low:
        codes.append(NO_INTERVAL)
    elif r.rel_half_width > req.protocol.stopping.target_ci:
        codes.append(IMPRECISE)
    out = {"rel_reference": req.reference, "rel_latency": r.estimate,
           "rel_ci_low": r.low if r.low == r.low else None, "rel_ci_high": r.high if r.high == r.high else None,
           "rel_codes": ",".join(codes)}
    if ref_fast is None:
        return dict(out, calibration=f"none yet: no fast-mode latency of {req.reference} kept for this machine")
    ms, when = ref_fast
    return dict(out, calibrated_ms=r.estimate * ms,
                calibrated_ci_low_ms=r.low * ms if r.low == r.low else None,
                calibrated_ci_high_ms=r.high * ms if r.high == r.high else None,
                calibration=f"{req.reference} at {ms:.4g} ms on this machine ({when})")


def time_group(members: list[Prepared], req: RunRequest, run_id: str, group: int,
               progress: Callable[[int], None] = lambda n: None,
               runner=None, env: dict | None = None,
               on_round: Callable = lambda status: None) -> list[tuple[dict, dict]]:
    """Time one interleave group of prepared jobs; return (row, arrays) per job, where
    arrays holds the samples and the probe readings the store keeps beside the row.
    The one place a group's sessions and probe are opened and timed: `run`, the fleet's
    nodes and `check --interleaved` all time through here.

    Writes nothing: the caller hands each pair to the results store (locally, or on
    the driver of a fleet run)."""
    protocol = req.protocol
    runner = runner or get_runner(req.runtime)
    env = env if env is not None else machine_env()
    members, refs = with_reference(members, req, run_id, group, runner.artifact)
    sessions, probe = [], None
    try:
        for p in members:
            settings = RunSettings(threads=p.job.threads, spinning=req.spinning,
                                   options=dict(req.options))
            shape = (p.job.batch, 3, p.job.resolution, p.job.resolution)
            sessions.append(runner.open(p.artifact, shape, settings))
        probe, reference = open_probe(runner, env)
        keys = [model_figure_key(p, req) for p in members]
        figures = read_model_figures(env) if probe is not None else {}
        measurements = time_sessions(sessions, protocol, progress=progress, on_round=on_round,
                                     probe=probe, reference=reference,
                                     known_ms=[figures.get(k, {}).get("ms") for k in keys],
                                     relative_to=refs)
        if probe is not None:
            update_model_figures(env, {k: fast for k, m in zip(keys, measurements)
                                       if (fast := model_figure(m)) is not None})
        stored = read_model_figures(env) if refs and probe is not None else {}
        out = []
        for i, (p, s, m) in enumerate(zip(members, sessions, measurements)):
            session = s.describe()
            rel = {}
            if i in refs:
                kept = stored.get(keys[refs[i]])
                rel = relative_columns(m, measurements[refs[i]], req,
                                       (kept["ms"], kept["date"]) if kept else None)
            row = ResultRow.compose(
                job_identity(p.job, run_id, session, row_id=p.row_id, precision=req.options.get("precision")),
                session_facts(session), env, p.columns, m.summary(req.validity),
                Protocol(threads_requested=p.job.threads,
                         schedule=protocol.schedule if len(members) > 1 else "single",
                         interleave_group=f"{run_id}:{group}", block_size=protocol.block,
                         block_warmup=protocol.block_warmup),
                rel,
                Provenance(timestamp=now_iso(), extra={**m.extra, **s.extra(), **p.extra} or None))
            out.append((row.to_record(), {SAMPLES_KEY: m.samples_ms, PROBE_KEY: m.probe_ms}))
        return out
    finally:
        for s in sessions:
            s.close()
        if probe is not None:
            probe.close()


def interleave_groups(prepared: list[Prepared], size: int) -> list[list[Prepared]]:
    """Jobs are interleaved by model: all settings of one model stay in one group.
    A group never mixes fleet placements (it is timed on one machine)."""
    by_placement: dict[str | None, dict[str, list[Prepared]]] = {}
    for p in prepared:
        by_placement.setdefault(p.job.placement, {}).setdefault(p.job.model, []).append(p)
    return [[p for m in models for p in by_model[m]]
            for by_model in by_placement.values() for models in groups(list(by_model), size)]


def execute(prepared: list[Prepared], req: RunRequest, writer: ResultsWriter, run_id: str,
            progress: Callable[[int], None] = lambda n: None,
            on_row: Callable[[dict], None] = lambda row: None,
            on_round: Callable = lambda status: None) -> list[dict]:
    """Time the prepared jobs group by group; append each group's rows when done."""
    runner = get_runner(req.runtime)
    env = machine_env()
    rows = []
    for g, members in enumerate(interleave_groups(prepared, req.interleave)):
        for row, samples in time_group(members, req, run_id, g, progress, runner, env, on_round):
            writer.append(row, samples)
            rows.append(row)
            on_row(row)
    return rows


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]
