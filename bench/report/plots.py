"""The paper's figures from measured rows: PNG (for reading) and PDF (for papers)."""
from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports run on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from . import reference as ref  # noqa: E402
from .pairs import repeat_vs_reshape  # noqa: E402
from .inputs import Column, ReportInputs  # noqa: E402

HIGHLIGHT = "#c0392b"
OTHER = "#2c6fad"
PAPER = "#7f7f7f"


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


PNG_DPI = 160


def _save(fig, out_dir: Path, name: str) -> list[Path]:
    paths = []
    for ext in ("png", "pdf"):
        p = out_dir / f"{name}.{ext}"
        fig.savefig(p, dpi=PNG_DPI if ext == "png" else None, bbox_inches="tight")
        paths.append(p)
    plt.close(fig)
    return paths


def _is_efficientmod(model: str) -> bool:
    return model.startswith("efficientmod")


def line_boxes(ax, xs, ys, step_px: float = 6.0) -> list:
    """Small boxes along a polyline (data coordinates), for labels to keep off it."""
    disp = ax.transData.transform(np.column_stack([xs, ys]))
    boxes = []
    for (x0, y0), (x1, y1) in zip(disp[:-1], disp[1:]):
        n = max(int(np.hypot(x1 - x0, y1 - y0) / step_px), 1)
        for t in np.linspace(0, 1, n + 1):
            px, py = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
            boxes.append(matplotlib.transforms.Bbox.from_extents(px - 1.5, py - 1.5, px + 1.5, py + 1.5))
    return boxes


def place_labels(ax, xs, ys, texts, colors, fontsize=7.5, obstacles=()) -> None:
    """Put each label next to its point where it overlaps no other label, point or
    obstacle (lines, the legend).

    Greedy: candidate offsets are tried nearest first and the first free one is
    taken, else the one least covered; labels away from their point get a leader line."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    pts = ax.transData.transform(np.column_stack([xs, ys]))
    point_boxes = [matplotlib.transforms.Bbox.from_extents(px - 4, py - 4, px + 4, py + 4) for px, py in pts]
    legend = ax.get_legend()
    fixed = list(obstacles) + ([legend.get_window_extent(renderer)] if legend is not None else [])
    axes_box = ax.get_window_extent(renderer)
    placed = []
    near = [(5, 4, "left", "bottom"), (5, -4, "left", "top"), (-5, 4, "right", "bottom"),
            (-5, -4, "right", "top"), (7, 0, "left", "center"), (-7, 0, "right", "center"),
            (0, 7, "center", "bottom"), (0, -7, "center", "top")]
    far = [(dx * k, dy * k, ha, va) for k in (3, 5, 7) for dx, dy, ha, va in near]
    order = np.argsort(-np.asarray(ys))
    def overlap(a, b) -> float:
        w = min(a.x1, b.x1) - max(a.x0, b.x0)
        h = min(a.y1, b.y1) - max(a.y0, b.y0)
        return w * h if w > 0 and h > 0 else 0.0

    for i in order:
        others = [b for j, b in enumerate(point_boxes) if j != i]
        best = None  # (cost, offset): the first free spot, else the least covered one
        for dx, dy, ha, va in near + far:
            ann = ax.annotate(texts[i], (xs[i], ys[i]), xytext=(dx, dy), textcoords="offset points",
                              ha=ha, va=va, fontsize=fontsize, color=colors[i])
            box = ann.get_window_extent(renderer).padded(3)
            ann.remove()
            cost = sum(overlap(box, b) for b in placed + others + fixed)
            cost += box.width * box.height - overlap(box, axes_box)  # the part outside the axes
            if best is None or cost < best[0]:
                best = (cost, (dx, dy, ha, va))
            if cost == 0:
                break
        dx, dy, ha, va = best[1]
        ann = ax.annotate(texts[i], (xs[i], ys[i]), xytext=(dx, dy), textcoords="offset points",
                          ha=ha, va=va, fontsize=fontsize, color=colors[i])
        chosen = (ann, ann.get_window_extent(renderer).padded(3), (dx, dy))
        ann, box, (dx, dy) = chosen
        if abs(dx) > 8 or abs(dy) > 8:
            ann.arrow_patch = None
            ann.set_annotation_clip(False)
            ax.annotate("", (xs[i], ys[i]), xytext=(dx, dy), textcoords="offset points",
                        arrowprops=dict(arrowstyle="-", color=colors[i], lw=0.6, alpha=0.7))
        placed.append(box)


def pareto(latency, accuracy) -> list[int]:
    """Indices of the points no other point beats on both latency and accuracy, fastest first."""
    order = sorted(range(len(latency)), key=lambda i: (latency[i], -accuracy[i]))
    front, best = [], -math.inf
    for i in order:
        if accuracy[i] > best:
            front.append(i)
            best = accuracy[i]
    return front


def user_top1(row) -> tuple[float, bool] | None:
    """A model of the user's own (not in the paper) placed by the top-1 given with
    `run --top1`, which its results row carries."""
    if not str(row.data.get("paper_source") or "").startswith("user"):
        return None  # registered models are placed by the paper's figures only
    v = row.data.get("top1")
    if v is None or (isinstance(v, float) and math.isnan(v)) or v == "":
        return None
    return float(v), False


def _accuracy_points(col: Column) -> list[tuple]:
    """(median, CI low, CI high, top-1, label, model) of each model in the column: the
    paper's top-1, or for a user's own model the one given with run --top1."""
    pts = []
    for model in col.models():
        row = col.find(model)
        paper_top = ref.paper_top1(model)
        top = paper_top or (user_top1(row) if row is not None else None)
        if row is None or top is None:
            continue
        m = row.measurement()
        lo, hi = m.median_ci()
        label = ref.paper_label(model) + (" †" if top[1] else "")
        pts.append((m.median, lo, hi, top[0], label, model))
    return pts


def accuracy_vs_latency(col: Column, out_dir: Path) -> list[Path] | None:
    pts = _accuracy_points(col)
    if len(pts) < 2:
        return None
    users = sum(ref.paper_top1(p[5]) is None for p in pts)
    # Drawn at the PNG's dpi: labels are placed from text extents, which do not
    # scale exactly with dpi, so placing at another dpi lets them collide when saved.
    # Twenty labels need more room than a handful to sit next to their points.
    fig, ax = plt.subplots(figsize=(6.4, 4.4) if len(pts) <= 12 else (8.5, 6.0), dpi=PNG_DPI)
    x = np.array([p[0] for p in pts])
    y = np.array([p[3] for p in pts])
    colors = [HIGHLIGHT if _is_efficientmod(p[5]) else OTHER for p in pts]
    err = np.array([[p[0] - p[1] for p in pts], [p[2] - p[0] for p in pts]])
    for i, p in enumerate(pts):
        ax.errorbar(x[i], y[i], xerr=err[:, i:i + 1], fmt="*" if _is_efficientmod(p[5]) else "o",
                    ms=11 if _is_efficientmod(p[5]) else 6, color=colors[i], ecolor=colors[i],
                    elinewidth=0.8, capsize=2, zorder=3)
    front = pareto(list(x), list(y))
    fx, fy = x[front], y[front]
    step_x, step_y = np.r_[fx, x.max() * 1.05], np.r_[fy, fy[-1]]
    ax.step(step_x, step_y, where="post", color="#555", lw=1, ls="--",
            zorder=2, label="Pareto frontier (measured)")
    # the 'post' step as a polyline: horizontal, then vertical, at every point
    path_x = np.repeat(step_x, 2)[1:]
    path_y = np.repeat(step_y, 2)[:-1]
    span = x.max() - x.min() or x.max()
    ax.set_xlim(max(0, x.min() - 0.12 * span), x.max() + 0.25 * span)
    yspan = y.max() - y.min() or 1
    ax.set_ylim(y.min() - 0.15 * yspan, y.max() + 0.2 * yspan)
    ax.set_xlabel(f"Measured latency, median ms (95% CI) — {col.label}")
    ax.set_ylabel("ImageNet-1K top-1 (%), paper" + (" (yours: run --top1)" if users else ""))
    ax.set_title(f"Accuracy vs latency, {col.device.upper()} (cf. paper Fig. 3 / Fig. 7)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.scatter([], [], marker="*", s=90, color=HIGHLIGHT, label="EfficientMod")
    if not all(_is_efficientmod(p[5]) for p in pts):
        ax.scatter([], [], marker="o", s=25, color=OTHER, label="other models")
    ax.legend(fontsize=7.5, loc="best")  # away from the points; labels then avoid it
    fig.canvas.draw()  # limits are final: the line's display position is known
    place_labels(ax, list(x), list(y), [p[4] for p in pts], colors,
                 obstacles=line_boxes(ax, path_x, path_y))
    if any(" †" in p[4] for p in pts):
        fig.text(0.01, -0.02, "† top-1 with strong training (the paper gives no plain figure)", fontsize=7)
    return _save(fig, out_dir, f"accuracy_vs_latency_{slug(col.label)}")


def accuracy_vs_latency_by_device(inp: ReportInputs, out_dir: Path) -> list[Path] | None:
    """One panel per device column (batch 1), side by side with a shared accuracy
    axis: results from several machines are compared by position, never merged.
    Each panel's latency axis is its own (a GPU and a CPU differ tenfold)."""
    cols = [(c, pts) for c in inp.columns if int(c.key[5]) == 1
            for pts in [_accuracy_points(c)] if len(pts) >= 2]
    if len(cols) < 2:
        return None
    n = len(cols)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.8 * nrows), dpi=PNG_DPI,
                             sharey=True, squeeze=False)
    for ax, (col, pts) in zip(axes.flat, cols):
        x = np.array([p[0] for p in pts])
        y = np.array([p[3] for p in pts])
        colors = [HIGHLIGHT if _is_efficientmod(p[5]) else OTHER for p in pts]
        for i, p in enumerate(pts):
            ax.errorbar(x[i], y[i], xerr=[[p[0] - p[1]], [p[2] - p[0]]],
                        fmt="*" if _is_efficientmod(p[5]) else "o", ms=10 if _is_efficientmod(p[5]) else 5,
                        color=colors[i], ecolor=colors[i], elinewidth=0.8, capsize=2, zorder=3)
        span = x.max() - x.min() or x.max()
        ax.set_xlim(max(0, x.min() - 0.12 * span), x.max() + 0.3 * span)
        ax.set_title(col.label, fontsize=8.5)
        ax.set_xlabel("median ms (95% CI)", fontsize=8)
        ax.grid(alpha=0.3)
        place_labels(ax, list(x), list(y), [p[4] for p in pts], colors, fontsize=6.5)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("ImageNet-1K top-1 (%), paper")
    fig.suptitle("Accuracy vs latency, one panel per device", fontsize=10)
    return _save(fig, out_dir, "accuracy_vs_latency_by_device")


def distributions(col: Column, out_dir: Path) -> list[Path] | None:
    rows = sorted(col.rows, key=lambda r: r.measurement().median)
    if not rows:
        return None
    data = [r.samples() for r in rows]
    labels = [f"{ref.paper_label(r['model'])} ({r['variant']}, {int(r['resolution'])}px)" for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.38 * len(rows)))
    bp = ax.boxplot(data, orientation="horizontal", whis=(1, 99), showfliers=True, widths=0.6, patch_artist=True,
                    flierprops=dict(marker=".", ms=2, alpha=0.4))
    for patch, r in zip(bp["boxes"], rows):
        patch.set_facecolor("#f4c7c1" if _is_efficientmod(r["model"]) else "#c9dcf0")
    ax.set_yticks(range(1, len(rows) + 1), labels, fontsize=7.5)
    ax.set_xlabel("Latency per inference (ms); box: quartiles, whiskers: 1st-99th percentile")
    ax.set_title(f"Latency distributions — {col.label}", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, out_dir, f"distributions_{slug(col.label)}")


def _line_plot(series: dict, xlabel: str, title: str, out_dir: Path, name: str, log2x=False) -> list[Path]:
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    # Distinct colours per line; EfficientMod solid, peers dashed, so two
    # EfficientMod settings never look alike.
    palette = plt.get_cmap("tab10").colors
    all_x = set()
    for k, (label, pts) in enumerate(series.items()):
        pts = sorted(pts)
        xs = [p[0] for p in pts]
        all_x.update(xs)
        med = np.array([p[1] for p in pts])
        err = np.array([[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]])
        ax.errorbar(xs, med, yerr=err, marker="*" if label.startswith("EfficientMod") else "o", ms=5, capsize=2,
                    label=label, color=palette[k % len(palette)],
                    ls="-" if label.startswith("EfficientMod") else "--")
    if log2x:
        ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(all_x), [str(v) for v in sorted(all_x)])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Median latency per call, ms (95% CI)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5)
    return _save(fig, out_dir, name)


def resolution_plots(inp: ReportInputs, out_dir: Path) -> list[Path]:
    out = []
    for col in inp.columns:
        series = {}
        for r in col.rows:
            m = r.measurement()
            lo, hi = m.median_ci()
            series.setdefault(f"{ref.paper_label(r['model'])} ({r['variant']})", []).append(
                (int(r["resolution"]), m.median, lo, hi))
        series = {k: v for k, v in series.items() if len(v) > 1}
        if series:
            out += _line_plot(series, "Input resolution (px)", f"Latency vs resolution (cf. Fig. 8) — {col.label}",
                              out_dir, f"latency_vs_resolution_{slug(col.label)}")
    return out


def batch_plots(inp: ReportInputs, out_dir: Path) -> list[Path]:
    out = []
    for cols in inp.batch_families():
        series = {}
        for c in cols:
            for r in c.rows:
                m = r.measurement()
                lo, hi = m.median_ci()
                key = f"{ref.paper_label(r['model'])} ({r['variant']}, {int(r['resolution'])}px)"
                series.setdefault(key, []).append((int(c.key[5]), m.median, lo, hi))
        series = {k: v for k, v in series.items() if len(v) > 1}
        if series:
            label = cols[0].label.split(", batch")[0]
            out += _line_plot(series, "Batch size", f"Latency vs batch size (cf. Table 10) — {label}",
                              out_dir, f"latency_vs_batch_{slug(label)}", log2x=True)
    return out


def variant_bars(inp: ReportInputs, out_dir: Path) -> list[Path] | None:
    changes = repeat_vs_reshape(inp.columns)
    if not changes:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 1.2 + 0.45 * len(changes) + 0.6))
    labels, ys = [], []
    for i, ch in enumerate(changes):
        r = ch.ratio
        lo, hi = r.change_ci_pct
        y = len(changes) - 1 - i
        color = OTHER if ch.column.device == "cpu" else HIGHLIGHT
        ax.barh(y, r.change_pct, color=color, alpha=0.85 if r.paired else 0.4, height=0.55,
                hatch=None if r.paired else "//")
        if not math.isnan(lo):
            ax.errorbar(r.change_pct, y, xerr=[[r.change_pct - lo], [hi - r.change_pct]], color="black",
                        capsize=3, lw=1)
        paper = ref.value("Figure 2", ch.model, "latency_change_pct",
                          ref.PAPER_GPU if ch.column.device == "gpu" else ref.PAPER_CPU)
        if paper is not None:
            ax.plot(paper, y, marker="D", ms=7, mfc="white", mec="black", zorder=4)
        labels.append(f"{ref.paper_label(ch.model)}\n{ch.column.label}" + ("" if r.paired else " (unpaired)"))
        ys.append(y)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    handles = [Line2D([], [], marker="D", ls="", mfc="white", mec="black", label="paper (Fig. 2: GPU −5.1%, CPU +21.8%)")]
    devices = {ch.column.device for ch in changes}
    for dev, color in (("gpu", HIGHLIGHT), ("cpu", OTHER)):
        if dev in devices:
            handles.append(Patch(color=color, alpha=0.85, label=f"{dev.upper()}, paired (interleaved blocks)"))
    if any(not ch.ratio.paired for ch in changes):
        handles.append(Patch(facecolor="#bbb", hatch="//", label="separate timing (not paired)"))
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(ys, labels, fontsize=7.5)
    ax.set_xlabel("Latency change from Repeat to Reshape (%), 95% CI; < 0: Reshape faster")
    ax.set_title("Repeat vs Reshape (cf. paper Fig. 2)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    # Below the axes: inside, it would cover bars or intervals.
    ax.legend(handles=handles, fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False)
    return _save(fig, out_dir, "repeat_vs_reshape")


def build_all(inp: ReportInputs, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for col in inp.columns:
        if col.key[5] == 1:
            paths += accuracy_vs_latency(col, out_dir) or []
        paths += distributions(col, out_dir) or []
    paths += accuracy_vs_latency_by_device(inp, out_dir) or []
    paths += variant_bars(inp, out_dir) or []
    paths += resolution_plots(inp, out_dir) + batch_plots(inp, out_dir) + fig9_plots(inp, out_dir)
    return paths


def fig9_plots(inp: ReportInputs, out_dir: Path) -> list[Path]:
    """Paper Fig. 9: latency of isotropic EfficientMod and MBConv vs width and kernel size."""
    from .tables import fig9_points

    out = []
    for label, pts in fig9_points(inp).items():
        for sweep, xlabel in (("width", "Width (channels)"), ("kernel", "Kernel size")):
            series = {}
            for (s, block, x), row in sorted(pts.items()):
                if s != sweep:
                    continue
                m = row.measurement()
                lo, hi = m.median_ci()
                name = "EfficientMod (r=6)" if block == "efficientmod" else "MBConv (r=7)"
                series.setdefault(name, []).append((x, m.median, lo, hi))
            if series:
                out += _line_plot(series, xlabel, f"EfficientMod vs MBConv (cf. Fig. 9) — {label}", out_dir,
                                  f"fig9_{sweep}_{slug(label)}")
    return out
