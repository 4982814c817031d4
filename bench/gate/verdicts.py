"""Judge a current run against a baseline run, row by row.

A row's verdict needs three things to agree before it says `slower` (or `faster`):
the ratio of headlines is past the minimum effect (default 5%), the block-bootstrap
interval of that ratio excludes 1, and Mann-Whitney's p is below alpha. On these
machines a run's speed moves by ~10% between invocations, so the first two guard
against drift inside a run and the threshold against small real-but-irrelevant
changes.

The headline compared is each row's `latency_ms`: its samples from the blocks that
ran at the machine's normal speed, brought to the machine's reference speed by the
probe (bench/measurement.py). Rows judged against different machine references
(the probe's normal time differs by more than the threshold) ran on a machine at
different speeds and are not comparable; rows without a probe are compared on all
their samples.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..env import fingerprint
from ..measurement import Measurement, from_row
from ..schema import IDENTITY, cell_text, row_identity
from ..stats import mann_whitney, paired_ratio, unpaired_ratio
from ..store import ResultsError, SamplesError, StoredRow, read_results, stored_rows

VERDICTS = ("slower", "faster", "unchanged", "not comparable")
DEFAULT_THRESHOLD = 0.05
DEFAULT_ALPHA = 0.01

# What identifies "the same measurement" in two runs: the store's row identity.
KEY_COLUMNS = IDENTITY
# Settings that change latency by design: comparing across them is refused.
HARD_COLUMNS = ("precision", "artifact_format", "exporter", "opset", "block_size", "checkpoint",
                "runtime_settings")
# Differences that are reported but allowed (a pull request may bump a library).
SOFT_COLUMNS = ("schedule", "iters", "warmup", "block_warmup", "torch_version",
                "onnxruntime_gpu_version", "onnxruntime_version", "onnx_version", "timm_version",
                "numpy_version")


class GateError(ResultsError):
    """Runs that cannot be compared as asked (exit 2)."""


@dataclass
class GateSettings:
    threshold: float = DEFAULT_THRESHOLD
    per_model: dict = field(default_factory=dict)  # model -> threshold
    alpha: float = DEFAULT_ALPHA
    n_boot: int = 1000
    seed: int = 0
    reference: str | None = None
    pairs: dict = field(default_factory=dict)  # current model name -> baseline model name
    allow_mismatch: bool = False

    def threshold_for(self, model: str) -> float:
        return float(self.per_model.get(model, self.threshold))


@dataclass
class RowVerdict:
    key: str
    model: str
    variant: str
    runtime: str
    threads: object
    batch: object
    resolution: object
    verdict: str
    mode: str = "direct"
    threshold: float = DEFAULT_THRESHOLD
    ratio: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p: float | None = None
    base_median_ms: float | None = None
    cur_median_ms: float | None = None
    base_row: str | None = None
    cur_row: str | None = None
    note: str = ""

    @property
    def change_pct(self) -> float | None:
        return None if self.ratio is None else (self.ratio - 1.0) * 100.0


@dataclass
class Comparison:
    verdicts: list[RowVerdict]
    baseline: str
    current: str
    settings: GateSettings
    fingerprint: str
    warnings: list[str] = field(default_factory=list)

    def count(self, verdict: str) -> int:
        return sum(v.verdict == verdict for v in self.verdicts)

    def exit_code(self, strict: bool = False) -> int:
        if self.count("slower") or (strict and self.count("not comparable")):
            return 1
        return 0


def judge_samples(base: np.ndarray, cur: np.ndarray, *, threshold: float = DEFAULT_THRESHOLD,
          alpha: float = DEFAULT_ALPHA, block_size: int | None = None, paired: bool = False,
          n_boot: int = 1000, seed: int = 0) -> dict:
    """RowVerdict on two sample sets: slower / faster / unchanged, with the evidence."""
    mb, mc = Measurement(base), Measurement(cur)
    if paired and block_size and min(mb.n, mc.n) >= 2 * block_size:
        # Timed in alternating blocks: compare block k with block k, so drift within
        # the job cancels (a bootstrap of pooled medians would keep it as noise).
        r = paired_ratio(mc.samples_ms, mb.samples_ms, block_size, confidence=1.0 - alpha, seed=seed,
                         n_resamples=n_boot)
    else:
        r = unpaired_ratio(mc.samples_ms, mb.samples_ms, confidence=1.0 - alpha, seed=seed,
                           n_resamples=n_boot, block_size=block_size)
    ratio, lo, hi = r.estimate, r.low, r.high
    p = mann_whitney(mc.samples_ms, mb.samples_ms)
    if ratio >= 1.0 + threshold and lo > 1.0 and p < alpha:
        verdict, note = "slower", ""
    elif ratio <= 1.0 / (1.0 + threshold) and hi < 1.0 and p < alpha:
        verdict, note = "faster", ""
    else:
        verdict = "unchanged"
        if abs(ratio - 1.0) < threshold:
            note = f"within the {threshold:.0%} threshold"
        else:
            note = "change not significant (noise)"
    return {"ratio": ratio, "ci_low": lo, "ci_high": hi, "p": p, "verdict": verdict,
            "note": note, "base_median_ms": mb.median, "cur_median_ms": mc.median}


# --- run against run ---------------------------------------------------------------

@dataclass
class _Run:
    path: Path
    df: object                # the file as read_results gives it (for the reference's group)
    rows: list[StoredRow]     # its rows, typed

    def row(self, row_id: str) -> StoredRow:
        return next(r for r in self.rows if r.id == row_id)

    def measurement(self, row: StoredRow) -> Measurement:
        """The row's samples and probe readings (one read of its samples file)."""
        return from_row(row, row.samples(), row.probe())


def read_run(path) -> _Run:
    path = Path(path)
    df = read_results(path)
    if df.empty:
        raise GateError(f"{path} has no rows to compare")
    return _Run(path, df, stored_rows(df, path))


def row_key(row, model: str | None = None) -> str:
    """A row's identity as one string; `model` stands in for the row's (--pair)."""
    return "|".join((model or row["model"],) + row_identity(row)[1:])


def shown_identity(row) -> dict:
    """The identity columns a verdict shows, as the results file writes them."""
    return {c: cell_text(c, row.get(c)) for c in ("variant", "runtime", "threads", "batch", "resolution")}


def run_fingerprints(run: _Run) -> set[str]:
    cols = ("cpu_name", "cpu_logical", "device_name")
    return {fingerprint({c: cell_text(c, r[c]) for c in cols if c in r}) for r in run.rows}


def _setting(row, col: str) -> str:
    v = row.get(col)
    if col == "runtime_settings" and isinstance(v, str) and v.startswith("{"):
        # Library versions are soft differences, checked elsewhere.
        d = {k: x for k, x in json.loads(v).items() if not k.endswith("_version")}
        return json.dumps(d, sort_keys=True)
    return cell_text(col, v)


def compare_runs(baseline_path, current_path, settings: GateSettings | None = None) -> Comparison:
    s = settings or GateSettings()
    base, cur = read_run(baseline_path), read_run(current_path)
    fb, fc = run_fingerprints(base), run_fingerprints(cur)
    warnings = []
    if fb != fc:
        msg = (f"machine fingerprints differ: baseline {sorted(fb)} vs current {sorted(fc)}")
        if not s.allow_mismatch:
            raise GateError(msg + "; compare on the same machine, or pass --allow-mismatch "
                            "(best with --reference)")
        warnings.append(msg)

    unknown_pairs = [m for m in s.pairs if m not in set(cur.df["model"])]
    if unknown_pairs:
        raise GateError(f"--pair names {unknown_pairs[0]!r}, which is not in the current run")
    if s.reference is not None:
        for run in (base, cur):
            if s.reference not in set(run.df["model"]):
                raise GateError(f"reference model {s.reference!r} is not in {run.path}; time it "
                                f"in the same run (bench.py run ... {s.reference})")

    base_rows = {row_key(r): r for r in base.rows}
    cur_rows = {row_key(r, s.pairs.get(r["model"])): r for r in cur.rows}
    verdicts, mismatches, soft = [], [], set()
    for key in list(base_rows) + [k for k in cur_rows if k not in base_rows]:
        b, c = base_rows.get(key), cur_rows.get(key)
        row = c if c is not None else b
        if s.reference is not None and row["model"] == s.reference:
            continue
        v = RowVerdict(key=key, model=row["model"], **shown_identity(row), verdict="not comparable",
                    threshold=s.threshold_for(row["model"]),
                    base_row=None if b is None else b["row_id"],
                    cur_row=None if c is None else c["row_id"])
        verdicts.append(v)
        if c is None:
            v.note = "missing in the current run"
            continue
        if b is None:
            v.note = "new: no baseline row"
            continue
        if c["model"] != b["model"]:
            v.note = f"judged against baseline {b['model']}"
        for col in HARD_COLUMNS:
            if col in b and col in c and _setting(b, col) != _setting(c, col):
                mismatches.append(f"{v.model}: {col} {_setting(b, col)!r} vs {_setting(c, col)!r}")
        for col in SOFT_COLUMNS:
            if col in b and col in c and cell_text(col, b[col]) != cell_text(col, c[col]):
                soft.add(f"{col} {cell_text(col, b[col])} -> {cell_text(col, c[col])}")
        _judge_pair(v, base, b, cur, c, s)
    if mismatches:
        msg = "settings differ: " + "; ".join(mismatches[:3]) + (" ..." if len(mismatches) > 3 else "")
        if not s.allow_mismatch:
            raise GateError(msg + "; pass --allow-mismatch to compare anyway")
        warnings.append(msg)
    warnings += [f"differs between the runs: {d}" for d in sorted(soft)]
    return Comparison(verdicts, str(base.path), str(cur.path), s, " / ".join(sorted(fc)), warnings)


def _judge_pair(v: RowVerdict, base: _Run, b, cur: _Run, c, s: GateSettings) -> None:
    busy = [side for side, r in (("baseline", b), ("current", c)) if "machine busy" in str(r.get("invalid_reason"))]
    if busy:
        # A busy machine's row says how busy the machine was, not how fast the code is.
        v.note = "; ".join(n for n in (v.note, f"the {' and '.join(busy)} row was timed on a busy machine") if n)
        return
    try:
        mb, mc = base.measurement(b), cur.measurement(c)
    except SamplesError as exc:
        # Samples (or probe readings) that cannot be trusted never pass: the row is not
        # comparable (exit 1 with --strict), with the reason.
        v.note = "; ".join(n for n in (v.note, f"samples cannot be trusted: {exc}") if n)
        return
    xb, xc = mb.samples_ms, mc.samples_ms
    stat = c.get("headline_stat") or "median"
    ha, hc = mb.headline(stat), mc.headline(stat)
    # The milliseconds the report prints: each row's headline, from the samples just read.
    v.base_median_ms, v.cur_median_ms = ha.estimate, hc.estimate
    ra, rc = mb.reference, mc.reference
    if ra is not None and rc is not None and abs(rc.ms / ra.ms - 1) > v.threshold:
        v.note = "; ".join(n for n in (v.note, "not comparable: the machine ran at different speeds "
                                       f"(reference {1:.2f} vs {rc.ms / ra.ms:.2f})") if n)
        return
    for side, h, row in (("baseline", ha, b), ("current", hc, c)):
        stored = row.get("latency_ms")
        no_figure = "latency_ms" in row and stored is None
        if h.slowed_share is not None and stat == "median" and (h.estimate != h.estimate or no_figure):
            v.note = "; ".join(n for n in (v.note, f"not comparable: the {side} row has too few blocks at the "
                                           f"machine's normal speed (host slowed for {h.slowed_share:.0%})")
                               if n)
            return
    block = b.get("block_size")
    if s.reference is None:
        xb, xc = mb.headline_samples(stat), mc.headline_samples(stat)
        v.mode = "direct, latency_ms" if ra is not None and rc is not None else "direct, all samples"
    else:
        # Divided block by block by a reference model timed beside it: all samples.
        nb, why_b = _normalized(base, b, xb, s.reference)
        nc, why_c = _normalized(cur, c, xc, s.reference)
        if nb is None or nc is None:
            v.note = why_b or why_c
            return
        v.mode = f"relative to {s.reference}"
        xb, xc = nb, nc
    r = judge_samples(xb, xc, threshold=v.threshold, alpha=s.alpha, block_size=block,
              n_boot=s.n_boot, seed=s.seed)
    v.verdict = r["verdict"]
    v.ratio, v.ci_low, v.ci_high, v.p = r["ratio"], r["ci_low"], r["ci_high"], r["p"]
    v.note = "; ".join(n for n in (v.note, r["note"]) if n)
    if not (b.get("valid") and c.get("valid")):
        v.note = "; ".join(n for n in (v.note, "a row is marked invalid (see invalid_reason)") if n)


def _normalized(run: _Run, row, x: np.ndarray, reference: str):
    """Samples divided by the median of the reference model's block timed beside them.

    Block k of every row of an interleave group ran in the same minute; dividing by
    the reference's block-k median removes the machine's speed of that minute."""
    df = run.df
    same = df[(df["model"] == reference) & (df["interleave_group"] == row["interleave_group"])
              & (df["runtime"] == row["runtime"]) & (df["threads"] == row["threads"])
              & (df["batch"] == row["batch"])]
    if same.empty:
        return None, f"reference {reference} was not timed interleaved with it in {run.path.name}"
    ref = same.iloc[0]
    try:
        # The reference's StoredRow: it keeps its samples for every row judged against it.
        xr = run.row(ref["row_id"]).samples()
    except SamplesError as exc:
        return None, f"reference samples cannot be trusted: {exc}"
    block = int(row["block_size"])
    if xr.size != x.size or int(ref["block_size"]) != block:
        return None, f"reference {reference} has other iterations or blocks in {run.path.name}"
    ref_med = np.array([Measurement(xr[i:i + block]).median for i in range(0, xr.size, block)])
    return x / np.repeat(ref_med, block)[: x.size], ""
