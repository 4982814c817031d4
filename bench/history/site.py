"""The history dashboard: a static site, one page per model and an index, that works
opened from disk and served from any static host (GitHub Pages): relative links only,
the data inline in each page, no request at view time, no library from a CDN.

Each model page carries its series as JSON; a small inline script draws each trend
as SVG (the interval band, valid and INVALID points, the change points) for the
branch, machine and runtime chosen, with the commit on hover and in a table."""
from __future__ import annotations

import html
import json
from pathlib import Path

from modbench.common.fsio import atomic_dir, check_new_output, portable_name

from . import changes as C
from .store import SERIES_FIELDS, Entry

ALL = "*"  # the filters' "every branch / machine / runtime"

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr.invalid td{color:#a15c00}
.filters label{margin-right:1em}.chart{max-width:100%;height:auto;background:#fff}
.axis{stroke:#444}.tick{font-size:11px;fill:#444}.band{fill:#1f77b4;fill-opacity:.18;stroke:none}
.trend{fill:none;stroke:#1f77b4;stroke-width:1.5}.pt.valid{fill:#1f77b4}
.pt.invalid{fill:#fff;stroke:#ff7f0e;stroke-width:2.5}.change line{stroke:#d62728;stroke-width:2;stroke-dasharray:6 3}
.change text{fill:#d62728;font-size:12px;font-weight:bold}.open{color:#d62728;font-weight:bold}
#info{min-height:1.4em;font-family:monospace}
"""

SCRIPT = r"""
const D = JSON.parse(document.getElementById('data').textContent);
const NS = 'http://www.w3.org/2000/svg';
const $ = id => document.getElementById(id);
function el(tag, attrs, parent, text) {
  const e = tag === 'svg' || parent instanceof SVGElement ? document.createElementNS(NS, tag) : document.createElement(tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}
function pct(r) { return (r > 1 ? '+' : '') + ((r - 1) * 100).toFixed(1) + '%'; }
function chart(box, pts, cps) {
  const W = 960, H = 320, L = 70, R = 20, T = 24, B = 46;
  const svg = el('svg', {viewBox: `0 0 ${W} ${H}`, width: W, height: H, class: 'chart'}, box);
  const ys = pts.flatMap(p => [p.v, p.lo ?? p.v, p.hi ?? p.v]);
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  const pad = (y1 - y0) * 0.1 || y0 * 0.05; y0 -= pad; y1 += pad;
  const X = i => pts.length === 1 ? (L + W - R) / 2 : L + (W - L - R) * i / (pts.length - 1);
  const Y = v => T + (H - T - B) * (1 - (v - y0) / (y1 - y0));
  el('line', {x1: L, y1: H - B, x2: W - R, y2: H - B, class: 'axis'}, svg);
  el('line', {x1: L, y1: T, x2: L, y2: H - B, class: 'axis'}, svg);
  for (let k = 0; k <= 4; k++) {
    const v = y0 + (y1 - y0) * k / 4;
    el('text', {x: L - 6, y: Y(v) + 4, 'text-anchor': 'end', class: 'tick'}, svg, v.toPrecision(3));
  }
  el('text', {x: 14, y: T + (H - T - B) / 2, transform: `rotate(-90 14 ${T + (H - T - B) / 2})`,
              'text-anchor': 'middle', class: 'tick'}, svg, 'ms');
  const ci = pts.map((p, i) => [i, p]).filter(([i, p]) => p.lo !== null && p.hi !== null);
  if (ci.length > 1) {
    const up = ci.map(([i, p]) => `${X(i)},${Y(p.hi)}`), down = ci.slice().reverse().map(([i, p]) => `${X(i)},${Y(p.lo)}`);
    el('polygon', {points: up.concat(down).join(' '), class: 'band'}, svg);
  }
  el('polyline', {points: pts.map((p, i) => `${X(i)},${Y(p.v)}`).join(' '), class: 'trend'}, svg);
  const step = Math.max(1, Math.ceil(pts.length / 12));
  pts.forEach((p, i) => {
    if (i % step === 0 || i === pts.length - 1)
      el('text', {x: X(i), y: H - B + 16, 'text-anchor': 'middle', class: 'tick'}, svg, p.c.slice(0, 7));
  });
  for (const c of cps) {
    const i = pts.findIndex(p => p.c === c.after);
    if (i < 1) continue;
    const x = (X(i - 1) + X(i)) / 2;
    const g = el('g', {class: 'change ' + (c.ratio > 1 ? 'slower' : 'faster'), 'data-range': c.range}, svg);
    el('line', {x1: x, y1: T, x2: x, y2: H - B}, g);
    el('text', {x: x + 4, y: T - 6}, g, pct(c.ratio) + ' ' + c.range);
    el('title', {}, g, `change point in ${c.range}: ${pct(c.ratio)} [${pct(c.low)}, ${pct(c.high)}], p=${c.p.toPrecision(2)}`);
  }
  pts.forEach((p, i) => {
    const dot = el('circle', {cx: X(i), cy: Y(p.v), r: 6, class: 'pt ' + (p.ok ? 'valid' : 'invalid'),
                              'data-commit': p.c, tabindex: 0}, svg);
    const text = `${p.c.slice(0, 10)} ${p.d.slice(0, 10)} ${p.b}: ${p.v.toPrecision(4)} ms` +
                 (p.lo !== null ? ` [${p.lo.toPrecision(4)}, ${p.hi.toPrecision(4)}]` : '') +
                 (p.ok ? '' : ` INVALID (${p.why})`) + ` - ${p.s}`;
    el('title', {}, dot, text);
    dot.addEventListener('mouseenter', () => { $('info').textContent = text; });
    dot.addEventListener('focus', () => { $('info').textContent = text; });
  });
}
function table(box, pts, cps) {
  const at = {}; for (const c of cps) at[c.after] = c;
  const t = el('table', {class: 'points'}, box);
  const head = el('tr', {}, t);
  for (const h of ['commit', 'date', 'branch', 'ms', '95% interval', 'validity', 'change point', 'subject']) el('th', {}, head, h);
  for (const p of pts) {
    const r = el('tr', {class: p.ok ? 'valid' : 'invalid', 'data-commit': p.c}, t);
    el('td', {}, r, p.c.slice(0, 10)); el('td', {}, r, p.d.slice(0, 10)); el('td', {}, r, p.b);
    el('td', {class: 'num'}, r, p.v.toPrecision(4));
    el('td', {class: 'num'}, r, p.lo !== null ? `${p.lo.toPrecision(4)}-${p.hi.toPrecision(4)}` : '-');
    el('td', {}, r, p.ok ? 'VALID' : 'INVALID: ' + p.why);
    const c = at[p.c];
    el('td', {class: c ? 'change-cell' : ''}, r, c ? `${pct(c.ratio)} in ${c.range}` : '');
    el('td', {}, r, p.s);
  }
}
function options(id, values) {
  const s = $(id);
  for (const v of values) el('option', {value: v}, s, v);
  s.addEventListener('change', render);
}
function render() {
  const b = $('branch').value, m = $('machine').value, r = $('runtime').value;
  const root = $('charts'); root.textContent = '';
  let shown = 0;
  for (const s of D.series) {
    if ((m !== '*' && s.machine !== m) || (r !== '*' && s.runtime !== r)) continue;
    const pts = s.points.filter(p => b === '*' || p.b === b);
    if (!pts.length) continue;
    shown++;
    const box = el('section', {class: 'series'}, root);
    el('h2', {}, box, s.label);
    const cps = s.changes[b] || [];
    el('p', {class: 'summary'}, box, cps.length ? cps.map(c => `change point: ${pct(c.ratio)} in ${c.range}`).join('; ')
                                                : `no change point in ${pts.length} commits`);
    chart(box, pts, cps);
    table(box, pts, cps);
  }
  $('count').textContent = `${shown} series shown`;
}
options('branch', D.branches); options('machine', D.machines); options('runtime', D.runtimes);
render();
"""

INDEX_SCRIPT = r"""
function filter() {
  const want = {branch: document.getElementById('branch').value, machine: document.getElementById('machine').value,
                runtime: document.getElementById('runtime').value};
  for (const row of document.querySelectorAll('tr.series')) {
    const ok = Object.entries(want).every(([k, v]) => v === '*' || row.dataset[k].split('\n').includes(v));
    row.hidden = !ok;
  }
}
for (const id of ['branch', 'machine', 'runtime']) document.getElementById(id).addEventListener('change', filter);
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _page(title: str, body: str, script: str) -> str:
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width\"><title>{_e(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n{body}\n<script>{script}</script>\n</body></html>\n")


def _select(name: str, values) -> str:
    opts = "".join(f"<option value=\"{_e(v)}\">{_e(v)}</option>" for v in values)
    return f"<label>{name} <select id=\"{name}\"><option value=\"{ALL}\">all</option>{opts}</select></label>"


def _json(data) -> str:
    # Inside <script>, "</script>" in a commit subject would end the element.
    return json.dumps(data, sort_keys=True).replace("<", "\\u003c")


def _change(c: C.ChangePoint) -> dict:
    return {"after": c.after, "before": c.before, "range": c.range, "ratio": c.ratio, "low": c.low, "high": c.high,
            "p": c.p}


def _series_data(s: C.Series, per_branch: dict[str, list[C.ChangePoint]]) -> dict:
    k = dict(zip(SERIES_FIELDS, s.key))
    return {**k, "label": s.label, "changes": {b: [_change(c) for c in cs] for b, cs in per_branch.items()},
            "points": [{"c": p.commit, "d": p.date, "s": p.subject, "b": p.branch, "v": p.value_ms, "lo": p.low_ms,
                        "hi": p.high_ms, "ok": p.valid, "why": p.invalid_reason} for p in s.points]}


def model_file(model: str) -> str:
    return f"models/{portable_name(model)}.html"


def write_site(out: Path, entries: list[Entry], params: C.Params, threshold: float) -> Path:
    """Write the site into `out` (new or empty) whole: a partial site never appears."""
    out = Path(out)
    check_new_output(out, "dashboard folder", folder=True)
    branches = sorted({e.branch for e in entries})
    every = C.analyse(C.build_series(entries), params)
    by_branch = {b: {s.key: s.changes for s in C.analyse(C.build_series(entries, branch=b), params)}
                 for b in branches}
    found = C.open_regressions(every, C.commit_order(entries), threshold=threshold, per_model={})
    with atomic_dir(out) as tmp:
        (tmp / "models").mkdir()
        (tmp / ".nojekyll").write_text("")  # GitHub Pages: serve every file as it is
        for model in sorted({s.field("model") for s in every}):
            mine = [s for s in every if s.field("model") == model]
            data = {"model": model, "branches": sorted({p.branch for s in mine for p in s.points}),
                    "machines": sorted({s.field("machine") for s in mine}),
                    "runtimes": sorted({s.field("runtime") for s in mine}),
                    "series": [_series_data(s, {ALL: s.changes, **{b: by_branch[b].get(s.key, []) for b in branches}})
                               for s in mine]}
            # The selects get their options from the data (the script fills them).
            body = (f"<p><a href=\"../index.html\">all models</a></p><h1>{_e(model)}</h1>\n<div class=\"filters\">"
                    f"{_select('branch', [])}{_select('machine', [])}{_select('runtime', [])}"
                    "<span id=\"count\"></span></div>\n<p id=\"info\"></p><div id=\"charts\"></div>\n"
                    f"<script type=\"application/json\" id=\"data\">{_json(data)}</script>")
            (tmp / model_file(model)).write_text(_page(f"{model}: latency history", body, SCRIPT), encoding="utf-8")
        (tmp / "index.html").write_text(_index(every, found, entries), encoding="utf-8")
    return out / "index.html"


def _index(series: list[C.Series], found: list[C.Regression], entries: list[Entry]) -> str:
    open_by = {}
    for r in found:
        open_by.setdefault(id(r.series), []).append(r)
    rows = []
    for s in series:
        last = s.points[-1]
        regs = open_by.get(id(s), [])
        ci = "-" if last.low_ms is None else f"{last.low_ms:.4g}-{last.high_ms:.4g}"
        opened = "; ".join(f"{r.change.change_pct:+.1f}% in {r.change.range}" for r in regs)
        rows.append(
            f"<tr class=\"series\" data-branch=\"{_e(chr(10).join(sorted({p.branch for p in s.points})))}\" "
            f"data-machine=\"{_e(s.field('machine'))}\" data-runtime=\"{_e(s.field('runtime'))}\">"
            f"<td><a href=\"{_e(model_file(s.field('model')))}\">{_e(s.field('model'))}</a></td>"
            f"<td>{_e(s.field('variant'))}</td><td>{_e(s.field('runtime'))}</td><td>{_e(s.field('machine'))}</td>"
            f"<td>{_e(last.commit[:10])}</td><td class=\"num\">{last.value_ms:.4g}</td><td class=\"num\">{ci}</td>"
            f"<td>{'VALID' if last.valid else 'INVALID'}</td><td class=\"num\">{len(s.points)}</td>"
            f"<td class=\"num\">{len(s.changes)}</td><td class=\"{'open' if regs else ''}\">{_e(opened) or '-'}</td></tr>")
    machines = sorted({s.field("machine") for s in series})
    runtimes = sorted({s.field("runtime") for s in series})
    branches = sorted({e.branch for e in entries})
    body = ("<h1>Latency history</h1>\n"
            f"<p>{len(entries)} runs at {len(C.commit_order(entries))} commits; {len(series)} series; "
            f"<span class=\"open\">{len(found)} open regression(s)</span>.</p>\n"
            f"<div class=\"filters\">{_select('branch', branches)}{_select('machine', machines)}"
            f"{_select('runtime', runtimes)}</div>\n<table id=\"latest\"><tr><th>model</th><th>variant</th>"
            "<th>runtime</th><th>machine</th><th>latest commit</th><th>latest ms</th><th>95% interval</th>"
            "<th>validity</th><th>commits</th><th>change points</th><th>open regressions</th></tr>\n"
            + "\n".join(rows) + "\n</table>")
    return _page("Latency history", body, INDEX_SCRIPT)
