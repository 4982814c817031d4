"""A one-line progress bar with ETA on stderr (plain lines when not a terminal)."""
from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, total: int, label: str = "", stream=None, min_interval: float = 0.5):
        # sys.stderr looked up now, not at import: it may have been replaced since.
        self.total, self.label, self.stream = max(total, 1), label, stream or sys.stderr
        self.done, self.t0, self._last = 0, time.monotonic(), 0.0
        self._status = None  # precision-driven runs: (rows still timed, worst ±, ETA s)
        self.tty = self.stream.isatty()
        self.min_interval = min_interval if self.tty else 30.0

    def __call__(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self._last >= self.min_interval or self.done >= self.total:
            self._last = now
            self._draw(now)

    def precision(self, status) -> None:
        """A precision-driven run's round: how tight the loosest row still timed is,
        and the ETA that follows from it (the iteration ceiling overstates the work)."""
        self._status = (status.active, status.worst, status.eta_s)

    def _draw(self, now: float) -> None:
        frac = min(self.done / self.total, 1.0)
        elapsed = now - self.t0
        eta = elapsed * (1 - frac) / frac if frac > 0 else float("nan")
        if self._status is not None:
            active, worst, eta = self._status
            eta = float("nan") if eta is None else eta
            frac = min(elapsed / (elapsed + eta), 1.0) if eta == eta else frac
        bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
        text = f"{self.label} [{bar}] {100 * frac:5.1f}%  {_fmt(elapsed)} elapsed, ETA {_fmt(eta)}"
        if self._status is not None:
            text += f"  ({active} rows still timed, loosest ±{worst:.1%})" if active else "  (all rows precise)"
        self.stream.write(("\r" + text) if self.tty else text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _fmt(seconds: float) -> str:
    if seconds != seconds:
        return "--:--"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class TerminalStatus:
    """A status line rewritten in place on a terminal, and silent elsewhere: a log or
    a pipe gets only the lines that stay (bad input still ends in one line)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._shown = False

    def show(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r" + text + "\033[K")
            self.stream.flush()
            self._shown = True

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._shown = False
