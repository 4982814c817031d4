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
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from modbench.exporters import ExportedModel
from modbench.common.invocation import command

from ..env import fingerprint, machine_env
from ..pipeline import Job, RunRequest, new_run_id, prepare, time_group
from ..runners import RUNNERS, get_runner
from ..schedule import TimingProtocol
from ..store import ResultsWriter, SamplesError, check_new_path, read_results, read_samples
from .verdicts import Comparison, GateError, GateSettings, RowVerdict, change_text, judge_samples, shown_identity

SIDES = ("base", "head")
_CHUNK = re.compile(r"\.k\d+$")  # the chunk mark of a pair timed again (row_id.kN.side)


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
           log: Callable[[str], None] = print, settings: GateSettings | None = None,
           budget_s: float | None = None, max_chunks: int | None = None) -> Path:
    """Time each baseline graph against the current export; write a results file.
    Both graphs of a row are timed alternately, in blocks, by `protocol` (round-robin);
    with `settings` and `budget_s`, a pair whose change is still inconclusive is timed
    again, `protocol.iters` more a side, while the budget (seconds a model) allows."""
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
                                    "protocol": protocol.to_json(), "budget_s": budget_s}) as writer:
        for g, (req, members) in enumerate(groups):
            log(f"timing {req.models[0]}: baseline graph and current graph alternately, "
                f"{protocol.iters} iterations each")
            _time_until_decided(members, req, run_id, g, env, writer, settings, budget_s, log, max_chunks)
    return out


def _chunk_id(row_id: str, chunk: int) -> str:
    """Row id of a pair's side in its chunk-th timing (the first keeps the plain id)."""
    stem, side = row_id.rsplit(".", 1)
    return row_id if chunk == 1 else f"{stem}.k{chunk}.{side}"


def _time_until_decided(members, req, run_id, g, env, writer, settings, budget_s, log,
                        max_chunks: int | None = None) -> None:
    """Time a pair in chunks of the protocol's iterations until its change is decided
    against the threshold, or one more chunk would not fit the budget (None: one chunk).
    Every chunk is rows of the results file; the verdict rests on all of them."""
    started, chunk = time.monotonic(), 1
    x = {"base": [], "head": []}
    while True:
        chunk_started = time.monotonic()
        timed = [replace(m, row_id=_chunk_id(m.row_id, chunk), extra=dict(m.extra, ab_chunk=chunk))
                 for m in members]
        side_of = {m.row_id: m.extra["ab_side"] for m in timed}
        for row, arrays in time_group(timed, req, run_id, g, env=env):
            writer.append(row, arrays)
            x[side_of[row["row_id"]]].append(np.asarray(arrays["samples_ms"]))
        if budget_s is None or settings is None:
            return
        res = judge_samples(np.concatenate(x["base"]), np.concatenate(x["head"]),
                            threshold=settings.threshold_for(req.models[0]), alpha=settings.alpha,
                            block_size=req.protocol.block, paired=True, n_boot=settings.n_boot, seed=settings.seed)
        now = time.monotonic()
        elapsed = now - started
        if res["verdict"] != "inconclusive":
            return
        if elapsed + (now - chunk_started) > budget_s or chunk == max_chunks:  # one more as long as it fits
            log(f"{req.models[0]}: still inconclusive after {elapsed:.0f} s ({res['note']}); the budget "
                f"({budget_s:g} s) ends here")
            return
        chunk += 1
        log(f"{req.models[0]}: {change_text(res['ci_low'])}..{change_text(res['ci_high'])} spans the threshold; "
            f"timing {req.protocol.iters} more iterations a side")



def compare_ab(csv_path, settings: GateSettings | None = None) -> Comparison:
    """Judge the head row of each pair in an interleaved results file against its base row."""
    s = settings or GateSettings()
    csv_path = Path(csv_path)
    df = read_results(csv_path)
    sides: dict[str, dict] = {}
    for _, r in df.iterrows():
        extra = json.loads(r["extra"]) if isinstance(r.get("extra"), str) else {}
        if extra.get("ab_side") in SIDES:
            # A pair timed in several chunks (until decided) is one pair: its chunks in order.
            key = _CHUNK.sub("", r["row_id"].rsplit(".", 1)[0])
            sides.setdefault(key, {}).setdefault(extra["ab_side"], []).append((int(extra.get("ab_chunk", 1)), r, extra))
    if not sides:
        raise GateError(f"{csv_path} holds no interleaved baseline/current rows "
                        f"(make one with `{command()} check --interleaved --baseline NAME`)")
    verdicts = []
    for key, pair in sides.items():
        r = (pair.get("head") or pair.get("base"))[0][1]
        v = RowVerdict(key=key, model=r["model"], **shown_identity(r), verdict="not comparable", mode="interleaved",
                    threshold=s.threshold_for(r["model"]))
        verdicts.append(v)
        if set(pair) != set(SIDES):
            v.note = f"only the {next(iter(pair))} side was timed"
            continue
        base, head = sorted(pair["base"], key=lambda e: e[0]), sorted(pair["head"], key=lambda e: e[0])
        (_, b, bx), (_, c, _) = base[0], head[0]
        v.base_row, v.cur_row = b["row_id"], c["row_id"]
        if [e[0] for e in base] != [e[0] for e in head]:
            v.note = "the two sides were timed in different chunks"
            continue
        try:
            xb = np.concatenate([read_samples(csv_path, e[1]) for e in base])
            xc = np.concatenate([read_samples(csv_path, e[1]) for e in head])
        except SamplesError as exc:
            v.note = f"samples cannot be trusted: {exc}"
            continue
        if len(base) > 1:
            v.base_row, v.cur_row = ",".join(e[1]["row_id"] for e in base), ",".join(e[1]["row_id"] for e in head)
        res = judge_samples(xb, xc, threshold=v.threshold, alpha=s.alpha, block_size=int(b["block_size"]),
                    paired=xb.size == xc.size, n_boot=s.n_boot, seed=s.seed)
        v.verdict, v.ratio, v.ci_low, v.ci_high, v.p = (res["verdict"], res["ratio"], res["ci_low"],
                                                        res["ci_high"], res["p"])
        v.base_median_ms, v.cur_median_ms, v.figures = res["base_ms"], res["cur_ms"], res["figures"]
        v.note = "; ".join(n for n in (f"vs baseline row {bx.get('baseline_row')}", res["note"]) if n)
    fp = " / ".join(sorted({fingerprint(r) for _, r in df.iterrows()}))
    return Comparison(verdicts, f"{csv_path} (.base rows)", f"{csv_path} (.head rows)", s, fp)


__all__ = ["run_ab", "compare_ab"]
