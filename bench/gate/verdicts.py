"""Judge a current run against a baseline run, row by row.

A row's verdict needs three things to agree before it says `slower` (or `faster`):
the ratio of headlines is past the minimum effect (default 5%), the block-bootstrap
interval of that ratio excludes 1, and Mann-Whitney's p is below alpha. On these
machines a run's speed moves by ~10% between invocations, so the first two guard
against drift inside a run and the threshold against small real-but-irrelevant
changes.

The headline compared is each row's `latency_ms`: its samples from the blocks that
ran at the machine's normal speed, as the probe and the row's own fast mode tell
them (bench/measurement.py). A row the busy detector flagged (its `busy` code) is
never judged. Rows judged against different machine references
(the probe's normal time differs by more than the threshold) ran on a machine at
different speeds and are not comparable; rows without a probe are compared on all
their samples.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from modbench.common.invocation import command

from ..env import fingerprint
from ..measurement import BUSY, Measurement, from_row, relative_rounds
from ..schema import IDENTITY, cell_text, row_identity
from ..stats import mann_whitney, paired_ratio, unpaired_ratio
from ..store import ResultsError, SamplesError, StoredRow, read_results, stored_rows

# inconclusive: the interval of the change still straddles the threshold (time longer,
# or on a quieter machine); never a pass.
VERDICTS = ("slower", "faster", "unchanged", "inconclusive", "not comparable")
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
    # The two figures the change is the ratio of (cur / base == ratio), and what they are.
    base_median_ms: float | None = None
    cur_median_ms: float | None = None
    figures: str = ""
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
    # `modbench gate`: models only the head has (no baseline: never a failure), and
    # models only the base has.
    new: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def count(self, verdict: str) -> int:
        return sum(v.verdict == verdict for v in self.verdicts)

    def exit_code(self, strict: bool = False) -> int:
        undecided = self.count("not comparable") + self.count("inconclusive")
        if self.count("slower") or (strict and undecided):
            return 1
        return 0


def judge_samples(base: np.ndarray, cur: np.ndarray, *, threshold: float = DEFAULT_THRESHOLD,
          alpha: float = DEFAULT_ALPHA, block_size: int | None = None, paired: bool = False,
          n_boot: int = 1000, seed: int = 0) -> dict:
    """RowVerdict on two sample sets, decided by the interval of their ratio against the
    threshold: entirely below 1 + threshold, `unchanged` (`faster` when entirely below
    1 / (1 + threshold)); entirely above, `slower`; across it, `inconclusive`, with the
    iterations that would decide it at this spread. The estimate alone never passes a
    change: one above the threshold is `slower` or `inconclusive`, never `unchanged`."""
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
    p = mann_whitney(mc.samples_ms, mb.samples_ms)  # reported beside the interval; it decides nothing
    up, down = 1.0 + threshold, 1.0 / (1.0 + threshold)
    needed = None
    if lo != lo:  # no interval (a single block): nothing is decided
        verdict, note = "inconclusive", "one block: no interval"
    elif lo > up:
        verdict, note = "slower", ""
    elif hi < down:
        verdict, note = "faster", ""
    elif hi < up and lo > down:
        verdict, note = "unchanged", f"within the {threshold:.0%} threshold"
    elif hi < up:
        verdict, note = "unchanged", f"not slower by {threshold:.0%}; maybe faster"
    else:
        verdict = "inconclusive"
        needed = iterations_to_decide(mc.n, ratio, lo, hi, up)
        note = (f"the interval {change_text(lo)}..{change_text(hi)} spans the {threshold:.0%} threshold; about "
                f"{needed} iterations a side would decide it at this spread")
    # The two figures the ratio is of (cur_ms / base_ms == ratio): what a summary prints.
    return {"ratio": ratio, "ci_low": lo, "ci_high": hi, "p": p, "verdict": verdict,
            "note": note, "base_ms": r.b_ms, "cur_ms": r.a_ms, "figures": r.figures_label,
            "iterations_to_decide": needed}


def change_text(ratio: float) -> str:
    """A ratio as the change it is: 1.031 -> '+3.1%'."""
    return f"{(ratio - 1) * 100:+.1f}%"


def iterations_to_decide(n: int, estimate: float, low: float, high: float, bound: float) -> int:
    """Iterations a side after which an interval this wide, shrinking as 1/sqrt(n),
    would no longer span `bound` (on the log scale the interval is built on)."""
    half = (np.log(high) - np.log(low)) / 2
    gap = abs(np.log(estimate) - np.log(bound))
    if gap < half / 30:  # the estimate sits on the threshold: no count of iterations decides it
        return int(n * 900)
    return int(np.ceil(n * (half / gap) ** 2))


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

    if s.reference is None:
        # Both runs timed the same reference beside their rows (`run --reference`): their
        # relative figures are what reproduces on a shared machine, so those are compared.
        common = _run_reference(base) & _run_reference(cur)
        if len(common) == 1:
            s = dataclasses.replace(s, reference=common.pop())
            warnings.append(f"compared relative to {s.reference}, the reference both runs timed beside their rows "
                            "(pass --reference to choose another)")
    unknown_pairs = [m for m in s.pairs if m not in set(cur.df["model"])]
    if unknown_pairs:
        raise GateError(f"--pair names {unknown_pairs[0]!r}, which is not in the current run")
    if s.reference is not None:
        for run in (base, cur):
            if s.reference not in set(run.df["model"]):
                raise GateError(f"reference model {s.reference!r} is not in {run.path}; time it "
                                f"in the same run ({command()} run ... {s.reference})")

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
    try:
        # Read first, busy or not: every row the gate names is checked against its samples.
        mb, mc = base.measurement(b), cur.measurement(c)
    except SamplesError as exc:
        # Samples (or probe readings) that cannot be trusted never pass: the row is not
        # comparable (exit 1 with --strict), with the reason.
        v.note = "; ".join(n for n in (v.note, f"samples cannot be trusted: {exc}") if n)
        return
    busy = [side for side, r in (("baseline", b), ("current", c)) if BUSY in r.codes]
    if busy:
        # A busy machine's row says how busy the machine was, not how fast the code is.
        v.note = "; ".join(n for n in (v.note, f"the {' and '.join(busy)} row was timed on a busy machine") if n)
        return
    xb, xc = mb.samples_ms, mc.samples_ms
    stat = c.get("headline_stat") or "median"
    ha, hc = mb.headline(stat), mc.headline(stat)
    # The milliseconds the report prints: each row's headline, from the samples just read.
    v.base_median_ms, v.cur_median_ms = ha.estimate, hc.estimate
    ra, rc = mb.reference, mc.reference
    mixed = (ra is None) != (rc is None)
    # A figure relative to a reference timed in the same rounds is of one kind whatever
    # the machine's speed, probe readings or not: the checks of absolute figures below
    # (one kind of figure, one machine speed, enough normal-speed blocks) are for
    # direct comparisons only, or a slowed host would make every relative pair
    # 'not comparable', the case the reference is there for.
    direct = s.reference is None
    if direct and mixed and not s.allow_mismatch:
        # One side judged on its normal-speed blocks, the other on all its samples: two
        # kinds of figure, whose ratio says nothing about the code.
        older = "baseline" if ra is None else "current"
        v.note = "; ".join(n for n in (v.note, f"not comparable: the {older} row has no machine-probe readings "
                                       "(a file from before them) and the other has, so their figures are not of "
                                       f"one kind; time the {older} again, or pass --allow-mismatch to compare "
                                       "all samples of both") if n)
        return
    if direct and ra is not None and rc is not None and abs(rc.ms / ra.ms - 1) > v.threshold:
        v.note = "; ".join(n for n in (v.note, "not comparable: the machine ran at different speeds "
                                       f"(reference {1:.2f} vs {rc.ms / ra.ms:.2f})") if n)
        return
    for side, h, row in (("baseline", ha, b), ("current", hc, c)) if direct and not mixed else ():
        stored = row.get("latency_ms")
        no_figure = "latency_ms" in row and stored is None
        if h.slowed_share is not None and stat == "median" and (h.estimate != h.estimate or no_figure):
            v.note = "; ".join(n for n in (v.note, f"not comparable: the {side} row has too few blocks at the "
                                           f"machine's normal speed (host slowed for {h.slowed_share:.0%})")
                               if n)
            return
    block = b.get("block_size")
    if direct and mixed:
        v.mode = "direct, all samples of both (one side has no probe readings)"
    elif direct:
        xb, xc = mb.headline_samples(stat), mc.headline_samples(stat)
        v.mode = "direct, latency_ms" if ra is not None and rc is not None else "direct, all samples"
    else:
        # Divided block by block by a reference model timed beside it: all samples.
        nb, why_b = _normalized(base, b, mb, s.reference)
        nc, why_c = _normalized(cur, c, mc, s.reference)
        if nb is None or nc is None:
            v.note = why_b or why_c
            return
        v.mode = f"relative to {s.reference}"
        xb, xc = nb, nc
    r = judge_samples(xb, xc, threshold=v.threshold, alpha=s.alpha, block_size=block,
              n_boot=s.n_boot, seed=s.seed)
    v.verdict = r["verdict"]
    v.ratio, v.ci_low, v.ci_high, v.p = r["ratio"], r["ci_low"], r["ci_high"], r["p"]
    if direct:  # relative figures are ratios, not milliseconds: the headlines stay
        v.base_median_ms, v.cur_median_ms, v.figures = r["base_ms"], r["cur_ms"], r["figures"]
    v.note = "; ".join(n for n in (v.note, r["note"]) if n)
    if not (b.get("valid") and c.get("valid")):
        v.note = "; ".join(n for n in (v.note, "a row is marked invalid (see invalid_reason)") if n)


def _run_reference(run: _Run) -> set[str]:
    return {r.get("rel_reference") for r in run.rows if r.get("rel_reference")}


def _normalized(run: _Run, row, m: Measurement, reference: str):
    """The row's samples divided by the median of the reference model's block timed
    beside them, in the rounds whose two blocks ran at normal speed (as the row's own
    relative figure, measurement.relative_figure).

    Block k of every row of an interleave group ran in the same minute; dividing by
    the reference's block-k median removes the machine's speed of that minute. The
    host's slow phase does not slow every model alike, so its rounds are left out; a
    row with too few normal rounds is not judged (its ratio moves 4-9% there, the way
    that hides a slowdown)."""
    x = m.samples_ms
    df = run.df
    same = df[(df["model"] == reference) & (df["interleave_group"] == row["interleave_group"])
              & (df["runtime"] == row["runtime"]) & (df["threads"] == row["threads"])
              & (df["batch"] == row["batch"])]
    if same.empty:
        return None, f"reference {reference} was not timed interleaved with it in {run.path.name}"
    ref = same.iloc[0]
    try:
        # The reference's StoredRow: it keeps its samples for every row judged against it.
        ref_row = run.row(ref["row_id"])
        xr, (rounds, normal, slowed) = ref_row.samples(), relative_rounds(m, run.measurement(ref_row))
    except SamplesError as exc:
        return None, f"reference samples cannot be trusted: {exc}"
    block = int(row["block_size"])
    if int(ref["block_size"]) != block:
        return None, f"reference {reference} has other blocks in {run.path.name}"
    # Precision-driven rows stop at their own counts: the rounds both have are paired.
    k = min(x.size, xr.size) // block
    if k < 2:
        return None, f"reference {reference} shares fewer than two rounds with it in {run.path.name}"
    if slowed:
        return None, (f"not comparable: the host slowed all but {normal} of the {k} rounds of "
                      f"{run.path.name}; a figure relative to {reference} moves there")
    # The normal-speed flags cover every block, the last partial one too: k full rounds.
    keep = rounds[:k] if rounds is not None else np.ones(k, dtype=bool)
    ref_med = np.array([np.median(xr[i * block:(i + 1) * block]) for i in range(k)])
    ratios = (x[: k * block] / np.repeat(ref_med, block)).reshape(k, block)
    return ratios[keep].ravel(), ""
