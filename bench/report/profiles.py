"""Per-operator profiles, aggregated as a designer reads them, and the difference of two.

A profile (bench/profiling.py) gives each node's time per profiled iteration, round
by round. Here each node gets an operator category (Conv, depth-wise Conv,
MatMul/Gemm, Reshape/Transpose/Tile/Expand, ...) and its place in the model (stage
and block, from its PyTorch module path); nodes are summed by any of these levels.
The profiler's times are shares: a node's share of the profiled kernel time, times
the model's latency from the plain timed run, is its part of that latency (`scaled_ms`).

Files (docs/profiles.md): the node table as CSV (one row per node and model, with
`kind` modbench.profile-nodes, `version`), the comparisons as CSV
(modbench.profile-compare), and everything summarised as JSON (modbench.profile).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from modbench.common.errors import UsageError

from ..stats import paired_ratio, paired_rounds_ratio
from ..textable import render
from .tables import Cell, Table

VERSION = 1
NODES_KIND = "modbench.profile-nodes"
COMPARE_KIND = "modbench.profile-compare"
JSON_KIND = "modbench.profile"

CONV, DW_CONV, MATMUL, LAYOUT = "Conv", "Conv (depth-wise)", "MatMul/Gemm", "Reshape/Transpose/Tile/Expand"
ELEMENTWISE, NORM, ATTENTION, POOL, OTHER = ("elementwise", "normalisation", "attention (Softmax)",
                                             "pooling/reduction", "other")
CATEGORIES = (CONV, DW_CONV, MATMUL, LAYOUT, ELEMENTWISE, NORM, ATTENTION, POOL, OTHER)

# Operator names of both profilers (ONNX Runtime's op types, ORT's fused ones, and
# torch's aten names without the `aten::`), lower-cased.
_OPS = {
    CONV: "conv fusedconv nhwcconv qlinearconv convinteger convtranspose conv2d convolution _convolution "
          "mkldnn_convolution conv_transpose2d cudnn_convolution",
    MATMUL: "matmul gemm fusedmatmul fusedgemm matmulnbits matmulinteger qgemm linear mm addmm bmm baddbmm "
            "einsum",
    LAYOUT: "reshape transpose tile expand squeeze unsqueeze flatten concat split slice gather identity "
            "reorderinput reorderoutput pad depthtospace spacetodepth shape view permute repeat "
            "repeat_interleave contiguous cat chunk unbind narrow select index_select copy_ clone t "
            "pixel_shuffle pixel_unshuffle unflatten expand_as roll unfold stack",
    ELEMENTWISE: "add mul sub div relu gelu sigmoid hardsigmoid hardswish clip tanh erf pow sqrt exp neg abs "
                 "max min where equal cast biasgelu fastgelu quickgelu sum leakyrelu prelu elu selu softplus "
                 "mish silu swish relu6 hardtanh clamp clamp_min add_ mul_ relu_ hardswish_ sigmoid_ "
                 "dropout rsub reciprocal",
    NORM: "layernormalization skiplayernormalization simplifiedlayernormalization batchnormalization "
          "instancenormalization groupnormalization lpnormalization layer_norm native_layer_norm batch_norm "
          "group_norm instance_norm _native_batch_norm_legit_no_training rms_norm normalize",
    ATTENTION: "softmax logsoftmax attention multiheadattention _softmax scaled_dot_product_attention "
               "_scaled_dot_product_flash_attention _scaled_dot_product_efficient_attention",
    POOL: "globalaveragepool averagepool maxpool globalmaxpool reducemean reducesum reducemax reducel2 "
          "adaptive_avg_pool2d avg_pool2d max_pool2d mean amax",
}
_CATEGORY_OF = {op: cat for cat, ops in _OPS.items() for op in ops.split()}


def category(op_type: str, input_shapes: str = "") -> str:
    """The category of an operator; a convolution is depth-wise when its weight has
    one input channel per group and its input has more than one channel."""
    op = op_type.split("::")[-1].lower()
    cat = _CATEGORY_OF.get(op, OTHER)
    if cat == CONV:
        shapes = [s.split("x") for s in str(input_shapes or "").split(",") if s]
        if len(shapes) >= 2 and len(shapes[0]) >= 2 and len(shapes[1]) >= 2 \
                and shapes[1][1] == "1" and shapes[0][1] != "1":
            return DW_CONV
    return cat


def _indexed(parts: list[str], k: int) -> int | None:
    """The position of the k-th numeric part of a module path (0-based k), or None."""
    seen = -1
    for i, p in enumerate(parts):
        if p.isdigit():
            seen += 1
            if seen == k:
                return i
    return None


def stage_of(module: str) -> str:
    """A module path's stage: up to its first index (layers.0, blocks.1, stages.2),
    else its first part (patch_embed, head)."""
    parts = module.split(".")
    i = _indexed(parts, 0)
    return ".".join(parts[:i + 1] if i is not None else parts[:1])


def block_of(module: str) -> str:
    """A module path's block: up to its second index (layers.0.blocks.1), else the
    stage and the part after it (layers.0.downsample)."""
    parts = module.split(".")
    i = _indexed(parts, 1)
    if i is not None:
        return ".".join(parts[:i + 1])
    first = _indexed(parts, 0)
    return ".".join(parts[:(first + 2) if first is not None else 1])


# --- the node table ------------------------------------------------------------------

LEVELS = ("category", "op_type", "stage", "block", "module", "node")


def node_frame(profiles) -> pd.DataFrame:
    """One row per node of each profiled model (bench.profiling.ModelProfile)."""
    rows = []
    for mp in profiles:
        job, row = mp.prepared.job, mp.row
        latency = _latency(row)
        total = sum(float(np.mean(n.us_by_round)) for n in mp.nodes) / 1e3
        for n in mp.nodes:
            ms = float(np.mean(n.us_by_round)) / 1e3
            share = ms / total if total > 0 else math.nan
            rows.append({
                "kind": NODES_KIND, "version": VERSION, "label": mp.label, "model": job.model,
                "variant": job.variant, "runtime": job.runtime, "device": row.get("device"),
                "threads": job.threads, "batch": job.batch, "resolution": job.resolution,
                "node": n.node, "op_type": n.op_type.split("::")[-1], "category": category(n.op_type, n.input_shapes),
                "module": n.module, "stage": stage_of(n.module), "block": block_of(n.module),
                "provider": n.provider, "input_shapes": n.input_shapes, "output_shapes": n.output_shapes,
                "kernels_per_iter": n.calls, "profiled_ms": ms, "share": share, "scaled_ms": share * latency,
                "round_ms": " ".join(f"{u / 1e3:.6g}" for u in n.us_by_round),
                "latency_ms": latency, "profiled_total_ms": total, "accounted": total / latency,
                "profiled_run_ms": float(np.mean(mp.run_us_by_round)) / 1e3,
                "profiled_iters": mp.iters * len(mp.run_us_by_round), "profiler": mp.profiler,
            })
    return pd.DataFrame(rows)


def _latency(row: dict) -> float:
    v = row.get("latency_ms")
    return float(v if v is not None and not (isinstance(v, float) and math.isnan(v)) else row["median_ms"])


def read_nodes(path) -> pd.DataFrame:
    """A node table written by `modbench profile --out`; one line if it is not one."""
    try:
        df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not a profile CSV ({str(exc).splitlines()[0][:120]})") from None
    if "kind" not in df.columns or df.empty or set(df["kind"]) != {NODES_KIND}:
        raise UsageError(f"{path}: not a profile node table (kind {NODES_KIND}; made by `modbench profile --out`)")
    newer = int(df["version"].max())
    if newer > VERSION:
        raise UsageError(f"{path}: profile version {newer} is newer than this modbench reads ({VERSION})")
    return df


def _rounds(series) -> np.ndarray:
    return np.sum([np.array(str(s).split(), dtype=float) for s in series], axis=0)


def aggregate(nodes: pd.DataFrame, level: str) -> pd.DataFrame:
    """Per model (label) and key of `level`: kernels, profiled ms, share, scaled ms,
    and the per-round ms (for the noise), largest first."""
    if level not in LEVELS:
        raise UsageError(f"unknown level {level!r}; one of {', '.join(LEVELS)}")
    out = []
    for (label, key), g in nodes.groupby(["label", level], sort=False):
        out.append({"label": label, "level": level, "key": key, "kernels_per_iter": g["kernels_per_iter"].sum(),
                    "profiled_ms": g["profiled_ms"].sum(), "share": g["share"].sum(),
                    "scaled_ms": g["scaled_ms"].sum(), "round_ms": _rounds(g["round_ms"])})
    df = pd.DataFrame(out)
    return df.sort_values(["label", "scaled_ms"], ascending=[True, False], kind="stable").reset_index(drop=True)


@dataclass
class Summary:
    label: str
    model: str
    variant: str
    runtime: str
    device: str
    threads: int
    batch: int
    resolution: int
    latency_ms: float
    latency_ci: tuple
    profiled_ms: float
    profiled_run_ms: float
    accounted: float
    kernels: float
    profiler: str


def summaries(nodes: pd.DataFrame, rows: dict | None = None) -> list[Summary]:
    """Each profiled model's headline: timed latency, what the profile accounts for."""
    out = []
    for label, g in nodes.groupby("label", sort=False):
        f = g.iloc[0]
        row = (rows or {}).get(label, {})
        ci = (row.get("latency_ci_low_ms", row.get("median_ci_low_ms")),
              row.get("latency_ci_high_ms", row.get("median_ci_high_ms")))
        out.append(Summary(label, f["model"], f["variant"], f["runtime"], f["device"], int(f["threads"]),
                           int(f["batch"]), int(f["resolution"]), float(f["latency_ms"]), ci,
                           float(f["profiled_total_ms"]), float(f["profiled_run_ms"]), float(f["accounted"]),
                           float(g["kernels_per_iter"].sum()), f["profiler"]))
    return out


# --- the difference of two -------------------------------------------------------------

# A key is judged only where it takes this share of either model's time: the rounds
# of a smaller one are mostly the profiler's noise.
MIN_SHARE = 0.02
# ...and changed only where its paired interval excludes no change and the change is
# at least this large.
THRESHOLD = 0.10
COMPARE_LEVELS = ("category", "op_type", "stage")


@dataclass
class Change:
    level: str
    key: str
    a_ms: float       # scaled: its share of A's timed latency
    b_ms: float
    a_share: float
    b_share: float
    ratio: float      # A / B of the profiled times, paired by round
    ci_low: float
    ci_high: float
    verdict: str      # more, less, unchanged, added, removed, small

    @property
    def delta_ms(self) -> float:
        return self.a_ms - self.b_ms


@dataclass
class Comparison:
    a: str
    b: str
    ratio: float      # A / B of the timed latencies, paired by interleaved block
    ci_low: float
    ci_high: float
    paired: bool
    n_blocks: int
    changes: list[Change] = field(default_factory=list)


def _verdict(ra: np.ndarray | None, rb: np.ndarray | None, a_share: float, b_share: float,
             threshold: float, confidence: float = 0.95) -> tuple[str, float, float, float]:
    if max(a_share, b_share) < MIN_SHARE:
        return "small", math.nan, math.nan, math.nan
    if rb is None or not rb.any():
        return "added", math.inf, math.nan, math.nan
    if ra is None or not ra.any():
        return "removed", 0.0, math.nan, math.nan
    r = paired_rounds_ratio(ra, rb, confidence)
    if not math.isfinite(r.low):
        return "unchanged", r.estimate, r.low, r.high
    if r.low > 1 and r.estimate >= 1 + threshold:
        return "more", r.estimate, r.low, r.high
    if r.high < 1 and r.estimate <= 1 - threshold:
        return "less", r.estimate, r.low, r.high
    return "unchanged", r.estimate, r.low, r.high


def compare(nodes: pd.DataFrame, a: str, b: str, timed_a: np.ndarray, timed_b: np.ndarray, block: int,
            threshold: float = THRESHOLD) -> Comparison:
    """Which operator types and stages of A gained or lost time against B. The timed
    ratio pairs the interleaved blocks; each key's ratio pairs the profiled rounds."""
    overall = paired_ratio(timed_a, timed_b, block)
    c = Comparison(a, b, overall.estimate, overall.low, overall.high, overall.paired, overall.n_blocks)
    for level in COMPARE_LEVELS:
        agg = aggregate(nodes[nodes["label"].isin([a, b])], level)
        sides = {lab: {r["key"]: r for _, r in g.iterrows()} for lab, g in agg.groupby("label")}
        ka, kb = sides.get(a, {}), sides.get(b, {})
        keys = list(ka) + [k for k in kb if k not in ka]
        # Every key of a level is a test: each at 95% / (the keys judged), so that a model
        # compared with itself shows no change at 95% over the whole level (Bonferroni).
        judged = sum(max(float(ka[k]["share"]) if k in ka else 0.0, float(kb[k]["share"]) if k in kb else 0.0)
                     >= MIN_SHARE for k in keys)
        confidence = 1 - 0.05 / max(judged, 1)
        for key in keys:
            x, y = ka.get(key), kb.get(key)
            a_share = float(x["share"]) if x is not None else 0.0
            b_share = float(y["share"]) if y is not None else 0.0
            verdict, ratio, lo, hi = _verdict(None if x is None else x["round_ms"],
                                              None if y is None else y["round_ms"], a_share, b_share, threshold,
                                              confidence)
            c.changes.append(Change(level, str(key), float(x["scaled_ms"]) if x is not None else 0.0,
                                    float(y["scaled_ms"]) if y is not None else 0.0, a_share, b_share,
                                    ratio, lo, hi, verdict))
        c.changes.sort(key=lambda ch: (COMPARE_LEVELS.index(ch.level), -abs(ch.delta_ms)))
    return c


def compare_frame(comparisons: list[Comparison]) -> pd.DataFrame:
    return pd.DataFrame([{"kind": COMPARE_KIND, "version": VERSION, "a": c.a, "b": c.b,
                          "timed_ratio": c.ratio, "timed_ci_low": c.ci_low, "timed_ci_high": c.ci_high,
                          "paired": c.paired, "n_blocks": c.n_blocks, "level": ch.level, "key": ch.key,
                          "a_ms": ch.a_ms, "b_ms": ch.b_ms, "delta_ms": ch.delta_ms, "a_share": ch.a_share,
                          "b_share": ch.b_share, "ratio": ch.ratio, "ci_low": ch.ci_low, "ci_high": ch.ci_high,
                          "verdict": ch.verdict} for c in comparisons for ch in c.changes])


# --- output ---------------------------------------------------------------------------------


def _num(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)


def _keys(agg: pd.DataFrame, label: str, top: int | None = None) -> list[dict]:
    g = agg[agg["label"] == label]
    g = g.head(top) if top else g
    return [{"key": r["key"], "kernels": _num(r["kernels_per_iter"]), "profiled_ms": _num(r["profiled_ms"]),
             "share": _num(r["share"]), "scaled_ms": _num(r["scaled_ms"])} for _, r in g.iterrows()]


def to_json(nodes: pd.DataFrame, comparisons: list[Comparison], facts: dict, rows: dict | None = None,
            top: int = 20) -> str:
    """The profile as JSON (kind modbench.profile, version VERSION; docs/profiles.md)."""
    aggs = {level: aggregate(nodes, level) for level in ("category", "op_type", "stage", "block", "node")}
    models = []
    for s in summaries(nodes, rows):
        models.append({
            "label": s.label, "model": s.model, "variant": s.variant, "runtime": s.runtime, "device": s.device,
            "threads": s.threads, "batch": s.batch, "resolution": s.resolution, "latency_ms": _num(s.latency_ms),
            "latency_ci_low_ms": _num(s.latency_ci[0]), "latency_ci_high_ms": _num(s.latency_ci[1]),
            "profiled_ms": _num(s.profiled_ms), "profiled_run_ms": _num(s.profiled_run_ms),
            "accounted": _num(s.accounted), "kernels": _num(s.kernels), "profiler": s.profiler,
            **{f"by_{level}": _keys(agg, s.label, top if level == "node" else None)
               for level, agg in aggs.items()}})
    doc = {"kind": JSON_KIND, "version": VERSION, **facts, "models": models,
           "compares": [{"a": c.a, "b": c.b, "ratio": _num(c.ratio), "ci_low": _num(c.ci_low),
                         "ci_high": _num(c.ci_high), "paired": c.paired, "n_blocks": c.n_blocks,
                         "changes": [{"level": ch.level, "key": ch.key, "a_ms": _num(ch.a_ms), "b_ms": _num(ch.b_ms),
                                      "delta_ms": _num(ch.delta_ms), "a_share": _num(ch.a_share),
                                      "b_share": _num(ch.b_share), "ratio": _num(ch.ratio),
                                      "ci_low": _num(ch.ci_low), "ci_high": _num(ch.ci_high),
                                      "verdict": ch.verdict} for ch in c.changes]}
                        for c in comparisons]}
    return json.dumps(doc, indent=2, default=str)


def _pct(x: float) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.1%}"


def headline(s: Summary) -> str:
    lo, hi = s.latency_ci
    ci = f" [{lo:.3g}, {hi:.3g}]" if lo is not None and hi is not None and math.isfinite(lo) else ""
    overhead = s.profiled_run_ms / s.latency_ms - 1
    return (f"{s.label} ({s.runtime}, {s.threads} threads, batch {s.batch}, {s.resolution}px): timed "
            f"{s.latency_ms:.3g} ms{ci}; the profile's kernels take {s.profiled_ms:.3g} ms per iteration, "
            f"{s.accounted:.0%} of it; {s.kernels:.0f} kernels per iteration; a profiled iteration took "
            f"{overhead:+.0%} ({s.profiler})")


def text(nodes: pd.DataFrame, comparisons: list[Comparison], levels=("category", "stage"), top: int = 10) -> str:
    out = []
    aggs = {level: aggregate(nodes, level) for level in set(levels) | {"node"}}
    heads = {"key": "", "kernels_per_iter": "kernels", "profiled_ms": "profiled ms", "share": "share",
             "scaled_ms": "ms of latency"}
    for s in summaries(nodes):
        out += ["", headline(s)]
        for level in list(levels) + ["node"]:
            g = aggs[level][aggs[level]["label"] == s.label]
            if level == "node":
                g = g.head(top)
            rows = [dict(r, share=_pct(r["share"])) for _, r in g.iterrows()]
            out += ["", render(rows, ["key", "kernels_per_iter", "profiled_ms", "share", "scaled_ms"],
                               dict(heads, key=f"by {level}" + (f" (top {top})" if level == "node" else "")))]
    for c in comparisons:
        ci = f" [{c.ci_low:.3f}, {c.ci_high:.3f}]" if math.isfinite(c.ci_low) else ""
        out += ["", f"{c.a} vs {c.b}: timed latency ratio {c.ratio:.3f}{ci} ({c.n_blocks} interleaved blocks, "
                    f"paired); per key: ms of each one's latency, ratio of profiled times paired by round"]
        for level in COMPARE_LEVELS:
            rows = [{"key": ch.key, "a": ch.a_ms, "b": ch.b_ms, "delta": ch.delta_ms, "a_share": _pct(ch.a_share),
                     "b_share": _pct(ch.b_share), "ratio": _ratio_text(ch), "verdict": ch.verdict}
                    for ch in c.changes if ch.level == level and (level != "op_type" or ch.verdict != "small")]
            out += ["", render(rows, ["key", "a", "b", "delta", "a_share", "b_share", "ratio", "verdict"],
                               {"key": f"by {level}", "a": f"{c.a} ms", "b": f"{c.b} ms", "delta": "A-B ms",
                                "a_share": "A share", "b_share": "B share", "ratio": "A/B [95% CI]"})]
    return "\n".join(out).lstrip("\n")


def _ratio_text(ch: Change) -> str:
    if not math.isfinite(ch.ratio):
        return "-"
    ci = f" [{ch.ci_low:.2f}, {ch.ci_high:.2f}]" if math.isfinite(ch.ci_low) else ""
    return f"{ch.ratio:.2f}{ci}"


# --- report tables ---------------------------------------------------------------------------

def tables(nodes: pd.DataFrame) -> list[Table]:
    """Per runtime: each model's time by operator category (ms of its timed latency,
    and share), and by stage."""
    out = []
    for (runtime, device), g in nodes.groupby(["runtime", "device"], sort=False):
        for level, what in (("category", "operator type"), ("stage", "stage")):
            agg = aggregate(g, level)
            labels = list(dict.fromkeys(g["label"]))
            keys = [k for k in (CATEGORIES if level == "category" else dict.fromkeys(agg["key"]))
                    if k in set(agg["key"])]
            t = Table(f"profile_{level}_{runtime}".replace("-", "_"),
                      f"Where the time goes by {what} ({runtime}, {device}): ms of the timed latency (share)",
                      [what] + labels)
            cell = {(r["label"], r["key"]): r for _, r in agg.iterrows()}
            for k in keys:
                row = [Cell(str(k))]
                for lab in labels:
                    r = cell.get((lab, k))
                    row.append(Cell("-") if r is None else
                               Cell(f"{r['scaled_ms']:.3g} ({r['share']:.0%})", float(r["scaled_ms"])))
                t.rows.append(row)
            total = [Cell("timed latency (profile accounts for)")]
            for s in summaries(g):
                total.append(Cell(f"{s.latency_ms:.3g} ({s.accounted:.0%})", s.latency_ms))
            t.rows.append(total)
            t.notes.append("Each node's share of the profiled kernel time times the model's median latency of a "
                           "plain timed run (the profiler slows what it measures); the bracket in the last row "
                           "is the profiled kernel time over that latency.")
            out.append(t)
    return out
