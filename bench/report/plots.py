"""The paper's figures from measured rows: PNG (for reading) and PDF (for papers)."""
from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path


def _config_dir() -> None:
    """Matplotlib keeps its font cache under HOME; where HOME cannot be written (a
    read-only CI home) it warns three times, so it is given a folder of this run."""
    if "MPLCONFIGDIR" in os.environ:
        return
    home = Path.home()
    for base in (os.environ.get("XDG_CONFIG_HOME") or home / ".config",
                 os.environ.get("XDG_CACHE_HOME") or home / ".cache"):
        folder = Path(base) / "matplotlib"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=folder).close()
        except OSError:
            os.environ["MPLCONFIGDIR"] = tempfile.mkdtemp(prefix="modbench-matplotlib-")
            return


_config_dir()

# matplotlib is imported here, at the top, and this module only where plots are drawn
# (bench/commands/report.py imports it lazily): the rest of the report needs no matplotlib.
import matplotlib  # noqa: E402

matplotlib.use("Agg")  # headless: reports run on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from . import profiles  # noqa: E402
from . import reference as ref  # noqa: E402
from .headline import LATENCY, MEDIAN, NOT_MEASURED, figures_used, headline, is_valid  # noqa: E402
from .inputs import Column, ReportInputs  # noqa: E402
from .pairs import repeat_vs_reshape  # noqa: E402
from .tables import fig9_points  # noqa: E402

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
    return None if v is None else (v, False)


def _accuracy_points(inp: ReportInputs, col: Column) -> list[tuple]:
    """(latency, CI low, CI high, top-1, label, model, valid) of each model in the
    column: the paper's top-1, or for a user's own model the one given with run --top1.
    Latency is the row's headline (latency_ms, else median_ms); no interval: low = high."""
    pts = []
    for model in col.models():
        row = col.find(model)
        paper_top = ref.paper_top1(model)
        top = paper_top or (user_top1(row) if row is not None else None)
        if row is None or top is None:
            continue
        h = headline(row)
        lo, hi = (h.low, h.high) if h.has_interval else (h.value, h.value)
        label = inp.label(model) + (" †" if top[1] else "")
        pts.append((h.value, lo, hi, top[0], label, model, is_valid(row)))
    return pts


def _latency_axis(rows) -> str:
    """The latency axis' label, from the figure the rows' headline came from."""
    used = figures_used(rows)
    return ("Latency at normal machine speed, ms (95% CI)" if used == [LATENCY] else
            "Median latency, ms (95% CI)" if set(used) <= {MEDIAN, NOT_MEASURED} else
            "Latency, ms (95% CI; latency_ms where rows have it, else median)")


def _draw_points(ax, inp: ReportInputs, pts, big: float = 11, small: float = 6) -> list[str]:
    """Each point with its interval: highlighted models as stars, the others as dots,
    INVALID rows hollow. Returns the point colours (for their labels)."""
    colors = []
    for p in pts:
        hl = inp.highlighted(p[5])
        color = HIGHLIGHT if hl else OTHER
        colors.append(color)
        ax.errorbar(p[0], p[3], xerr=[[p[0] - p[1]], [p[2] - p[0]]], fmt="*" if hl else "o",
                    ms=big if hl else small, color=color, ecolor=color, mfc=color if p[6] else "white",
                    mec=color, mew=1.2, elinewidth=0.8, capsize=2, zorder=3)
    return colors


def _legend_handles(inp: ReportInputs, pts) -> list:

    users = any(inp.is_user(p[5]) for p in pts)
    hl = [p for p in pts if inp.highlighted(p[5])]
    name = ("your models" if users else "highlighted" if inp.highlight else "EfficientMod")
    handles = []
    if hl:
        handles.append(Line2D([], [], marker="*", ls="", ms=10, color=HIGHLIGHT, label=name))
    if len(hl) < len(pts):
        handles.append(Line2D([], [], marker="o", ls="", ms=6, color=OTHER, label="other models"))
    if not all(p[6] for p in pts):
        handles.append(Line2D([], [], marker="o", ls="", ms=6, color="#444", mfc="white",
                              label="INVALID row (hollow)"))
    return handles


def accuracy_vs_latency(inp: ReportInputs, col: Column, out_dir: Path, column_width: bool = False
                        ) -> list[Path] | None:
    """Top-1 vs latency of one column. column_width: a second version drawn at a
    paper's column width (3.4 in) at its final size, labelling only the highlighted
    models and the Pareto front (twenty labels do not fit there)."""
    pts = _accuracy_points(inp, col)
    if len(pts) < 2:
        return None
    # Drawn at the PNG's dpi: labels are placed from text extents, which do not
    # scale exactly with dpi, so placing at another dpi lets them collide when saved.
    # Twenty labels need more room than a handful to sit next to their points.
    size = (3.4, 2.9) if column_width else (6.4, 4.4) if len(pts) <= 12 else (8.5, 6.0)
    fig, ax = plt.subplots(figsize=size, dpi=PNG_DPI)
    x = np.array([p[0] for p in pts])
    y = np.array([p[3] for p in pts])
    colors = _draw_points(ax, inp, pts, *((7, 3.5) if column_width else (11, 6)))
    front = pareto(list(x), list(y))
    fx, fy = x[front], y[front]
    step_x, step_y = np.r_[fx, x.max() * 1.05], np.r_[fy, fy[-1]]
    ax.step(step_x, step_y, where="post", color="#555", lw=1, ls="--", zorder=2)
    # the 'post' step as a polyline: horizontal, then vertical, at every point
    path_x = np.repeat(step_x, 2)[1:]
    path_y = np.repeat(step_y, 2)[:-1]
    # The limits hold every interval, not only the points: a cut error bar reads as a bound.
    lows, highs = min(p[1] for p in pts), max(p[2] for p in pts)
    span = highs - lows or x.max()
    ax.set_xlim(max(0, lows - 0.05 * span), highs + 0.12 * span)
    yspan = y.max() - y.min() or 1
    ax.set_ylim(y.min() - 0.15 * yspan, y.max() + 0.2 * yspan)
    rows = [col.find(p[5]) for p in pts]
    small = 6.5 if column_width else None
    ax.set_xlabel(f"{_latency_axis(rows)} — {col.label}", fontsize=small)
    ax.set_ylabel("ImageNet-1K top-1 (%)", fontsize=small)
    ax.set_title("Top-1 accuracy vs latency", fontsize=7.5 if column_width else 10)
    if column_width:
        ax.tick_params(labelsize=6)
    ax.grid(alpha=0.3)
    handles = [Line2D([], [], color="#555", lw=1, ls="--", label="Pareto frontier (measured)")]
    ax.legend(handles=handles + _legend_handles(inp, pts), fontsize=5.5 if column_width else 7.5, loc="best")
    fig.canvas.draw()  # limits are final: the line's display position is known
    if column_width:  # only what a reader looks for: the highlighted models and the front
        keep = [i for i in range(len(pts)) if inp.highlighted(pts[i][5]) or i in front]
        place_labels(ax, list(x[keep]), list(y[keep]), [pts[i][4] for i in keep], [colors[i] for i in keep],
                     fontsize=5.5, obstacles=line_boxes(ax, path_x, path_y))
    else:
        place_labels(ax, list(x), list(y), [p[4] for p in pts], colors,
                     obstacles=line_boxes(ax, path_x, path_y))
    foot = []
    if any(" †" in p[4] for p in pts):
        foot.append("† top-1 with strong training (the paper gives no plain figure)")
    if any(inp.is_user(p[5]) for p in pts):
        foot.append("top-1 of your models: as given with run --top1; others: their papers")
    if foot:
        fig.text(0.01, -0.07 if column_width else -0.02, "; ".join(foot), fontsize=5 if column_width else 7)
    return _save(fig, out_dir, f"accuracy_vs_latency_{slug(col.label)}" + ("_column" if column_width else ""))


def accuracy_vs_latency_by_device(inp: ReportInputs, out_dir: Path) -> list[Path] | None:
    """One panel per device column (batch 1), side by side with a shared accuracy
    axis: results from several machines are compared by position, never merged.
    Each panel's latency axis is its own (a GPU and a CPU differ tenfold)."""
    cols = [(c, pts) for c in inp.columns if int(c.key[5]) == 1
            for pts in [_accuracy_points(inp, c)] if len(pts) >= 2]
    if len(cols) < 2:
        return None
    n = len(cols)
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.8 * nrows), dpi=PNG_DPI,
                             sharey=True, squeeze=False, layout="constrained")
    for ax, (col, pts) in zip(axes.flat, cols):
        x = np.array([p[0] for p in pts])
        y = np.array([p[3] for p in pts])
        colors = _draw_points(ax, inp, pts, big=10, small=5)
        lows, highs = min(p[1] for p in pts), max(p[2] for p in pts)
        span = highs - lows or x.max()
        ax.set_xlim(max(0, lows - 0.05 * span), highs + 0.15 * span)
        ax.set_title(col.label, fontsize=8.5)
        ax.set_xlabel(_latency_axis([col.find(p[5]) for p in pts]), fontsize=8)
        ax.grid(alpha=0.3)
        # A crowded panel labels only what a reader looks for: the highlighted models and the front.
        keep = list(range(len(pts))) if len(pts) <= 12 else \
            [i for i in range(len(pts)) if inp.highlighted(pts[i][5]) or i in pareto(list(x), list(y))]
        place_labels(ax, list(x[keep]), list(y[keep]), [pts[i][4] for i in keep], [colors[i] for i in keep],
                     fontsize=6.5)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("ImageNet-1K top-1 (%)")
    everything = [p for _, pts in cols for p in pts]
    fig.legend(handles=_legend_handles(inp, everything), fontsize=7.5, loc="outside lower center",
               ncol=3, frameon=False)
    fig.suptitle("Top-1 accuracy vs latency, one panel per device", fontsize=10)
    return _save(fig, out_dir, "accuracy_vs_latency_by_device")


def distributions(inp: ReportInputs, col: Column, out_dir: Path) -> list[Path] | None:
    rows = sorted(col.rows, key=lambda r: headline(r).value)
    if not rows:
        return None
    data = [r.samples() for r in rows]
    labels = [f"{inp.label(r['model'])} ({r['variant']}, {int(r['resolution'])}px)"
              + ("" if is_valid(r) else " ‡") for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 0.9 + 0.38 * len(rows)))
    bp = ax.boxplot(data, orientation="horizontal", whis=(1, 99), showfliers=True, widths=0.6, patch_artist=True,
                    flierprops=dict(marker=".", ms=2, alpha=0.4))
    for patch, r in zip(bp["boxes"], rows):
        color = "#f4c7c1" if inp.highlighted(r["model"]) else "#c9dcf0"
        # An INVALID row: hollow box, coloured outline (as its point is hollow elsewhere).
        patch.set_facecolor(color if is_valid(r) else "white")
        patch.set_edgecolor("black" if is_valid(r) else (HIGHLIGHT if inp.highlighted(r["model"]) else OTHER))
    ax.set_yticks(range(1, len(rows) + 1), labels, fontsize=7.5)
    ax.set_xlabel("Latency per inference (ms); box: quartiles, whiskers: 1st-99th percentile")
    ax.set_title(f"Latency distributions — {col.label}", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    if not all(is_valid(r) for r in rows):
        ax.legend(handles=[Patch(facecolor="white", edgecolor=OTHER, label="‡ INVALID row (hollow)")],
                  fontsize=7, loc="lower right")
    return _save(fig, out_dir, f"distributions_{slug(col.label)}")


def _line_plot(series: dict, xlabel: str, title: str, out_dir: Path, name: str, log2x=False,
               ylabel: str = "Median latency per call, ms (95% CI)") -> list[Path]:
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
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5)
    return _save(fig, out_dir, name)


def resolution_plots(inp: ReportInputs, out_dir: Path) -> list[Path]:
    out = []
    for col in inp.columns:
        series = {}
        for r in col.rows:
            series.setdefault(f"{inp.label(r['model'])} ({r['variant']})", []).append(
                (int(r["resolution"]),) + _point(r))
        series = {k: v for k, v in series.items() if len(v) > 1}
        if series:
            out += _line_plot(series, "Input resolution (px)", f"Latency vs input resolution — {col.label}",
                              out_dir, f"latency_vs_resolution_{slug(col.label)}",
                              ylabel=_latency_axis(col.rows).replace(", ms", " per call, ms"))
    return out


def batch_plots(inp: ReportInputs, out_dir: Path) -> list[Path]:
    out = []
    for cols in inp.batch_families():
        series = {}
        for c in cols:
            for r in c.rows:
                key = f"{inp.label(r['model'])} ({r['variant']}, {int(r['resolution'])}px)"
                series.setdefault(key, []).append((int(c.key[5]),) + _point(r))
        series = {k: v for k, v in series.items() if len(v) > 1}
        if series:
            label = cols[0].label.split(", batch")[0]
            out += _line_plot(series, "Batch size", f"Latency vs batch size — {label}",
                              out_dir, f"latency_vs_batch_{slug(label)}", log2x=True,
                              ylabel=_latency_axis([r for c in cols for r in c.rows]).replace(", ms", " per call, ms"))
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
        bad = "" if is_valid(ch.repeat) and is_valid(ch.reshape) else " ‡ INVALID row"
        labels.append(f"{inp.label(ch.model)}\n{ch.column.label}" + ("" if r.paired else " (unpaired)") + bad)
        ys.append(y)
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
    ax.set_title("Repeat vs Reshape, beside the EfficientMod paper's Fig. 2", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    # Below the axes: inside, it would cover bars or intervals.
    ax.legend(handles=handles, fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, frameon=False)
    return _save(fig, out_dir, "repeat_vs_reshape")


def build_all(inp: ReportInputs, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for col in inp.columns:
        if col.key[5] == 1:
            paths += accuracy_vs_latency(inp, col, out_dir) or []
            paths += accuracy_vs_latency(inp, col, out_dir, column_width=True) or []
        paths += distributions(inp, col, out_dir) or []
    paths += accuracy_vs_latency_by_device(inp, out_dir) or []
    paths += variant_bars(inp, out_dir) or []
    paths += resolution_plots(inp, out_dir) + batch_plots(inp, out_dir) + fig9_plots(inp, out_dir)
    return paths


def profile_bars(nodes, out_dir: Path) -> list[Path]:
    """Per runtime and device: each profiled model's timed latency as a bar, split by
    operator category (each category's share of the profiled kernel time)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    colors = dict(zip(profiles.CATEGORIES, plt.get_cmap("tab10").colors))
    for (runtime, device), g in nodes.groupby(["runtime", "device"], sort=False):
        agg = profiles.aggregate(g, "category")
        labels = list(dict.fromkeys(g["label"]))
        fig, ax = plt.subplots(figsize=(7.2, 1.0 + 0.42 * len(labels)))
        left = np.zeros(len(labels))
        for cat in profiles.CATEGORIES:
            ms = np.array([agg[(agg["label"] == lab) & (agg["key"] == cat)]["scaled_ms"].sum() for lab in labels])
            if ms.any():
                ax.barh(range(len(labels)), ms, left=left, color=colors[cat], label=cat, height=0.6)
                left += ms
        ax.set_yticks(range(len(labels)), labels, fontsize=7.5)
        ax.invert_yaxis()
        ax.set_xlabel("timed latency (median, ms), split by each operator type's share of the profile")
        ax.set_title(f"Where the time goes: {runtime} ({device})", fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=3, frameon=False)
        paths += _save(fig, out_dir, f"profile_{slug(runtime)}_{slug(str(device))}")
    return paths


def fig9_plots(inp: ReportInputs, out_dir: Path) -> list[Path]:
    """Paper Fig. 9: latency of isotropic EfficientMod and MBConv vs width and kernel size."""
    out = []
    for label, pts in fig9_points(inp).items():
        for sweep, xlabel in (("width", "Width (channels)"), ("kernel", "Kernel size")):
            series = {}
            for (s, block, x), row in sorted(pts.items()):
                if s != sweep:
                    continue
                name = "EfficientMod (r=6)" if block == "efficientmod" else "MBConv (r=7)"
                series.setdefault(name, []).append((x,) + _point(row))
            if series:
                out += _line_plot(series, xlabel, f"EfficientMod vs MBConv (the EfficientMod paper's Fig. 9) — "
                                  f"{label}", out_dir, f"fig9_{sweep}_{slug(label)}",
                                  ylabel=_latency_axis(list(pts.values())).replace(", ms", " per call, ms"))
    return out


def _point(row) -> tuple:
    """(latency, low, high) of a row for a line plot; no interval: low = high."""
    h = headline(row)
    return (h.value, h.low, h.high) if h.has_interval else (h.value, h.value, h.value)
