"""Interleaved mode: the baseline's saved ONNX file and the current code's export,
timed alternately in blocks in one process, then judged pairwise.

This is the only comparison that does not trust the machine to keep its speed
between two invocations: block k of the baseline graph and block k of the current
graph ran within the same second, so the bootstrap draws the same blocks for both.
The two graphs are two members of one group, timed round-robin by the group timer
every run uses (pipeline.time_group). The timings are written as an ordinary
results file (rows <row_id>.base and <row_id>.head) so every number the verdict
prints has a row behind it.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Callable

from exporters import ExportedModel

from ..env import fingerprint, machine_env
from ..measurement import Measurement
from ..pipeline import Job, RunRequest, new_run_id, prepare, time_group
from ..runners import RUNNERS, get_runner
from ..schedule import TimingProtocol
from ..store import ResultsWriter, SamplesError, check_new_path, read_results, read_samples
from .verdicts import Comparison, GateError, GateSettings, RowVerdict, judge_samples, shown_identity

SIDES = ("base", "head")


def _baseline_jobs(base_csv: Path, manifest: dict, models: list[str] | None, pairs: dict):
    """(current job, baseline row, baseline ONNX path) for every row with a saved graph."""
    df = read_results(base_csv)
    to_current = {b: c for c, b in pairs.items()}
    out, skipped = [], []
    for _, r in df.iterrows():
        cur_model = to_current.get(r["model"], r["model"])
        if models and cur_model not in models and r["model"] not in models:
            continue
        art = manifest.get("artifacts", {}).get(r["row_id"])
        if r.get("artifact_format") != "onnx" or art is None:
            skipped.append(f"{r['row_id']} (no saved ONNX file)")
            continue
        if r.get("checkpoint") not in (None, "random-init"):
            skipped.append(f"{r['row_id']} (timed with a checkpoint)")
            continue
        runtime = _runner_of(r)
        if runtime is None:
            skipped.append(f"{r['row_id']} (runtime {r['runtime']} cannot time a saved ONNX file here)")
            continue
        job = Job(cur_model, str(r["variant"]), runtime, int(r["threads_requested"]),
                  int(r["batch"]), int(r["resolution"]))
        out.append((job, r, Path(manifest["path"]) / art))
    if not out:
        raise GateError("nothing to time interleaved: the baseline has no saved ONNX file for "
                        + (", ".join(models) if models else "any row")
                        + (f" (skipped: {'; '.join(skipped[:3])})" if skipped else ""))
    return out, skipped


def _runner_of(row) -> str | None:
    """The runner that timed a baseline row: its `runtime` word; rows written before
    the vocabulary had the library there, and ONNX Runtime on the CPU provider."""
    runtime = row.get("runtime")
    if runtime in RUNNERS:
        return runtime if RUNNERS[runtime].artifact == "onnx" else None
    if runtime == "onnxruntime" and row.get("provider") == "CPUExecutionProvider":
        return "ort-cpu"
    return None


# check --interleaved's protocol unless told otherwise: a fixed count, round-robin.
DEFAULT_PROTOCOL = TimingProtocol(iters=300, auto=False, warmup=20, block=25, block_warmup=2)


def run_ab(base_csv: Path, manifest: dict, out: Path, protocol: TimingProtocol = DEFAULT_PROTOCOL, *,
           models: list[str] | None = None, pairs: dict | None = None,
           log: Callable[[str], None] = print) -> Path:
    """Time each baseline graph against the current export; write a results file.
    Both graphs of a row are timed alternately, in blocks, by `protocol` (round-robin)."""
    out = Path(out)
    check_new_path(out)
    protocol = replace(protocol, schedule="round-robin")  # the pairing rests on alternate blocks
    jobs, skipped = _baseline_jobs(Path(base_csv), manifest, models, pairs or {})
    for s in skipped:
        log(f"note: not timed interleaved: {s}")
    for runtime in {job.runtime for job, _, _ in jobs}:
        get_runner(runtime).check_available()
    groups = []
    for job, brow, path in jobs:
        exporter = brow.get("exporter") or "torchscript"
        opset = brow.get("opset")
        spinning = json.loads(brow["runtime_settings"]).get("spinning", True) \
            if isinstance(brow.get("runtime_settings"), str) else True
        req = RunRequest(models=[job.model], runtime=job.runtime, exporter=exporter, opset=opset,
                         spinning=spinning, protocol=protocol)
        log(f"exporting the current {job.model} ({job.variant}) with {exporter} opset {opset}")
        head = prepare(job, req, "onnx")
        shape = (job.batch, 3, job.resolution, job.resolution)
        base_art = ExportedModel(path, "onnx", head.artifact.input_name, shape,
                                 {"sha256": brow.get("artifact_sha256")})
        pair = {"baseline_row": brow["row_id"], "baseline_results": str(base_csv)}
        base_cols = dict(head.columns, artifact_sha256=brow.get("artifact_sha256"), exporter=brow.get("exporter"),
                         opset=brow.get("opset"), export_parity_rel_err=brow.get("export_parity_rel_err"))
        base = replace(head, artifact=base_art, columns=base_cols, row_id=f"{job.row_id}.base",
                       extra=dict(pair, ab_side="base"))
        head = replace(head, row_id=f"{job.row_id}.head", extra=dict(pair, ab_side="head"))
        groups.append((req, [base, head]))

    run_id = new_run_id()
    env = machine_env()
    with ResultsWriter.create(out, {"models": [], "kind": "interleaved-ab", "baseline": str(base_csv),
                                    "protocol": protocol.to_json()}) as writer:
        for g, (req, members) in enumerate(groups):
            log(f"timing {req.models[0]}: baseline graph and current graph alternately, "
                f"{protocol.iters} iterations each")
            for row, arrays in time_group(members, req, run_id, g, env=env):
                writer.append(row, arrays)
    return out


def compare_ab(csv_path, settings: GateSettings | None = None) -> Comparison:
    """Judge the head row of each pair in an interleaved results file against its base row."""
    s = settings or GateSettings()
    csv_path = Path(csv_path)
    df = read_results(csv_path)
    sides: dict[str, dict] = {}
    for _, r in df.iterrows():
        extra = json.loads(r["extra"]) if isinstance(r.get("extra"), str) else {}
        if extra.get("ab_side") in SIDES:
            sides.setdefault(r["row_id"].rsplit(".", 1)[0], {})[extra["ab_side"]] = (r, extra)
    if not sides:
        raise GateError(f"{csv_path} holds no interleaved baseline/current rows "
                        "(make one with `bench.py check --interleaved --baseline NAME`)")
    verdicts = []
    for key, pair in sides.items():
        r = (pair.get("head") or pair.get("base"))[0]
        v = RowVerdict(key=key, model=r["model"], **shown_identity(r), verdict="not comparable", mode="interleaved",
                    threshold=s.threshold_for(r["model"]))
        verdicts.append(v)
        if set(pair) != set(SIDES):
            v.note = f"only the {next(iter(pair))} side was timed"
            continue
        (b, bx), (c, _) = pair["base"], pair["head"]
        v.base_row, v.cur_row = b["row_id"], c["row_id"]
        try:
            xb, xc = read_samples(csv_path, b), read_samples(csv_path, c)
        except SamplesError as exc:
            v.note = f"samples cannot be trusted: {exc}"
            continue
        res = judge_samples(xb, xc, threshold=v.threshold, alpha=s.alpha, block_size=int(b["block_size"]),
                    paired=xb.size == xc.size, n_boot=s.n_boot, seed=s.seed)
        v.verdict, v.ratio, v.ci_low, v.ci_high, v.p = (res["verdict"], res["ratio"], res["ci_low"],
                                                        res["ci_high"], res["p"])
        v.base_median_ms = Measurement(xb).median
        v.cur_median_ms = Measurement(xc).median
        v.note = "; ".join(n for n in (f"vs baseline row {bx.get('baseline_row')}", res["note"]) if n)
    fp = " / ".join(sorted({fingerprint(r) for _, r in df.iterrows()}))
    return Comparison(verdicts, f"{csv_path} (.base rows)", f"{csv_path} (.head rows)", s, fp)


__all__ = ["run_ab", "compare_ab"]
