"""The paper's latency claims checked against measured rows, one verdict per claim and column."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

from ..stats import Ratio, kendall, spearman
from . import reference as ref
from .headline import describe, headline, is_valid
from .inputs import Column, ReportInputs
from .pairs import pairing_label, ratio
from .tables import INVALID_MARK

# Fewer models than this give a rank correlation that means nothing (two models:
# always +1 or -1).
MIN_RANK_MODELS = 5

HOLDS = "holds"
FAILS = "does not hold"
UNCLEAR = "inconclusive"
NOT_MEASURED = "not measured"


@dataclass
class ClaimVerdict:
    claim: ref.Claim
    column: Column | None
    status: str
    ratio: Ratio | None = None
    refs: str = ""
    why: str = ""
    invalid: list = None  # refs of the INVALID rows the verdict rests on

    @property
    def shaky(self) -> bool:
        return bool(self.invalid)


def judge_claim(claim: ref.Claim, r: Ratio) -> str:
    """Direction only, decided by the interval: the paper's size is reported beside it.

    An interval that straddles 1 is neither confirmed nor refuted ('inconclusive');
    with no interval (a single block) the point estimate decides, as the table says."""
    lo, hi = (r.low, r.high) if not math.isnan(r.low) else (r.estimate, r.estimate)
    if claim.relation == "faster":
        return HOLDS if hi < 1 else FAILS if lo > 1 else UNCLEAR
    if claim.relation == "slower":
        return HOLDS if lo > 1 else FAILS if hi < 1 else UNCLEAR
    if claim.relation == "same":
        tol = ref.SAME_TOLERANCE
        inside = 1 / (1 + tol) <= lo and hi <= 1 + tol
        outside = hi < 1 / (1 + tol) or lo > 1 + tol
        return HOLDS if inside else FAILS if outside else UNCLEAR
    return FAILS if lo > 1 else HOLDS  # no_slower


def evaluate(inp: ReportInputs, stat: str = "median") -> list[ClaimVerdict]:
    out = []
    for claim in ref.claims():
        cols = [c for c in inp.columns if c.device == claim.device and int(c.key[5]) == 1]
        if not cols:
            out.append(ClaimVerdict(claim, None, NOT_MEASURED, why=f"no {claim.device.upper()} results at batch 1"))
            continue
        for col in cols:
            a, b = col.find(claim.a, claim.a_variant), col.find(claim.b, claim.b_variant)
            if a is None or b is None:
                missing = [m for m, row in ((claim.a, a), (claim.b, b)) if row is None]
                out.append(ClaimVerdict(claim, col, NOT_MEASURED, why=f"no row for {', '.join(missing)}"))
                continue
            if int(a["resolution"]) != int(b["resolution"]) and claim.a == claim.b:
                out.append(ClaimVerdict(claim, col, NOT_MEASURED, why="variants measured at different resolutions"))
                continue
            r = ratio(a, b, stat)
            bad = [x.ref for x in (a, b) if not is_valid(x)]
            out.append(ClaimVerdict(claim, col, judge_claim(claim, r), r, f"{a.ref} vs {b.ref}", invalid=bad))
    return out


def _pct(v: float) -> str:
    return f"{v:+.1f}%"


def to_markdown(verdicts: list[ClaimVerdict]) -> str:
    lines = ["| Claim | Source | Device column | Paper | Measured (A/B − 1) [95% CI] | Statistic | Paper inside CI "
             "| Timing | Verdict | Rows |", "|---|---|---|---:|---:|---|---|---|---|---|"]
    for v in verdicts:
        c = v.claim
        paper = "–" if c.paper_change_pct is None else _pct(c.paper_change_pct)
        if v.ratio is None:
            lines.append(f"| {c.statement} | {c.source} | {v.column.label if v.column else '–'} | {paper} | – | – "
                         f"| – | – | **{v.status}** ({v.why}) | – |")
            continue
        r = v.ratio
        lo, hi = r.change_ci_pct
        ci = " (no CI: one block)" if math.isnan(lo) else f" [{_pct(lo)}, {_pct(hi)}]"
        inside = "–" if c.paper_change_pct is None or math.isnan(lo) else (
            "yes" if lo <= c.paper_change_pct <= hi else "no")
        lines.append(f"| {c.statement} | {c.source} | {v.column.label} | {paper} | {_pct(r.change_pct)}{ci} | "
                     f"{r.stat} | {inside} | {pairing_label(r)} | **{v.status}**"
                     + (f" {INVALID_MARK} (rests on an INVALID row)" if v.shaky else "") + f" | {v.refs} |")
    counts = {s: sum(v.status == s for v in verdicts) for s in (HOLDS, FAILS, UNCLEAR, NOT_MEASURED)}
    shaky = sum(v.shaky for v in verdicts)
    lines += ["", "Verdicts: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + "."
              + (f" {shaky} of them rest on an INVALID row ({INVALID_MARK}): the machine was busy or the row "
                 "imprecise while it was timed; measure again before citing them." if shaky else ""),
              "", "A claim holds when the 95% CI of the measured ratio lies entirely on the claimed side of "
              "no difference, does not hold when it lies entirely on the other side, and is inconclusive "
              "when it straddles it; a 'same latency' claim holds when the CI lies within "
              f"±{ref.SAME_TOLERANCE:.0%} of no difference. The paper's size of the effect is shown beside, not tested. Paired "
              "ratios come from the two rows' interleaved blocks; unpaired ones (rows timed separately) "
              "do not include drift of the machine between runs."]
    return "\n".join(lines) + "\n"


@dataclass
class RankAgreement:
    column: Column
    n: int
    spearman: float
    kendall: float
    models: list[str]


def rank_agreement(inp: ReportInputs, stat: str = "median") -> list[RankAgreement]:
    """How well the measured latency order matches the paper's (Table 1 and friends), per column."""
    out = []
    for col in inp.columns:
        if col.device not in ("gpu", "cpu"):
            continue
        models, measured, paper = [], [], []
        for model in col.models():
            p = ref.paper_latency(model, col.device)
            row = col.find(model)
            if p is None or row is None:
                continue
            models.append(model)
            measured.append(headline(row, stat).value)
            paper.append(p[0])
        if len(models) < MIN_RANK_MODELS:  # with few models a rank correlation says nothing: none is given
            out.append(RankAgreement(col, len(models), math.nan, math.nan, models))
        else:
            out.append(RankAgreement(col, len(models), spearman(measured, paper), kendall(measured, paper), models))
    return out


def rank_markdown(ranks: list[RankAgreement]) -> str:
    lines = ["| Device column | Models | Spearman ρ | Kendall τ-b | Paper device |", "|---|---:|---:|---:|---|"]
    for r in ranks:
        few = r.n < MIN_RANK_MODELS
        f = (lambda v: f"– (only {r.n} models)" if few else "–" if math.isnan(v) else f"{v:+.3f}")
        lines.append(f"| {r.column.label} | {r.n} | {f(r.spearman)} | {f(r.kendall)} | "
                     f"{'P100' if r.column.device == 'gpu' else 'Xeon E5-2680, 4 thr'} |")
    lines += ["", f"Rank agreement is given for columns with {MIN_RANK_MODELS} models or more (with two, it is "
              "always +1 or -1). Ranks compare each column's latency (headline variant, paper resolution) with the "
              "paper's latency of the same models (Table 1, else Tables 4/6 and App. L); ties share ranks. "
              "+1: same order, 0: unrelated, -1: reversed."]
    return "\n".join(lines) + "\n"


def claims_text(inp: ReportInputs, stat: str = "median") -> str:
    files = ", ".join(str(p) for p in inp.files)
    parts = ["# The paper's latency claims vs measured results", "", f"Results: {files}", "",
             f"Every verdict below uses the **{stat}** of each row (`--stat`; the paper's tables are means "
             "of its 4000 runs).", "", describe(inp.rows(), stat), ""]
    parts += [f"Note: {n}" for n in inp.notes]
    parts += ["## Claims", "", to_markdown(evaluate(inp, stat)), "## Rank agreement with the paper", "",
              rank_markdown(rank_agreement(inp, stat))]
    return "\n".join(parts)


JSON_VERSION = 1


def to_json(inp: ReportInputs, stat: str = "median") -> str:
    """The claims and rank agreement as JSON (schema: docs/json-output.md)."""
    def num(x):
        return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)

    claims = []
    for v in evaluate(inp, stat):
        c, r = v.claim, v.ratio
        lo, hi = r.change_ci_pct if r is not None else (None, None)
        claims.append({"id": c.id, "statement": c.statement, "source": c.source, "device": c.device,
                       "a": c.a, "b": c.b, "relation": c.relation, "paper_change_pct": num(c.paper_change_pct),
                       "column": v.column.label if v.column else None, "status": v.status,
                       "change_pct": num(r.change_pct) if r else None, "ci_low_pct": num(lo),
                       "ci_high_pct": num(hi), "stat": r.stat if r else stat,
                       "paired": r.paired if r else None, "rows": v.refs, "why": v.why})
    ranks = [{"column": k.column.label, "n": k.n, "spearman": num(k.spearman), "kendall": num(k.kendall),
              "min_models": MIN_RANK_MODELS, "models": k.models} for k in rank_agreement(inp, stat)]
    return json.dumps({"kind": "modbench.claims", "version": JSON_VERSION, "stat": stat,
                       "results": [str(p) for p in inp.files], "notes": list(inp.notes),
                       "claims": claims, "rank_agreement": ranks}, indent=2, default=str)
