"""Plain-text tables for the terminal."""
from __future__ import annotations


def render(rows: list[dict], columns: list[str], headers: dict | None = None) -> str:
    headers = headers or {}
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    heads = [headers.get(c, c) for c in columns]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(heads)]
    num = [all(_isnum(r.get(c)) for r in rows if r.get(c) not in (None, "")) for c in columns]

    def line(vals):
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(vals, widths, num)).rstrip()

    out = [line(heads), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def _isnum(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)
