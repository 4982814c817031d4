"""A one-line progress bar with ETA on stderr (plain lines when not a terminal)."""
from __future__ import annotations

import math
import sys
import time


class Progress:
    """total: the iterations the run may time at most. budget_s: the seconds a time
    budget allows the whole run (None: no budget); with one, the bar tracks time and
    the ETA never exceeds what the budget has left."""

    def __init__(self, total: int, label: str = "", stream=None, min_interval: float = 0.5,
                 budget_s: float | None = None):
        # sys.stderr looked up now, not at import: it may have been replaced since.
        self.total, self.label, self.stream = max(total, 1), label, stream or sys.stderr
        self.done, self.t0, self._last = 0, time.monotonic(), 0.0
        self.budget_s = budget_s
        self._status = None  # precision-driven runs: the last round's RoundStatus
        self._ended = False
        self.tty = self.stream.isatty()
        self.min_interval = min_interval if self.tty else 30.0

    def __call__(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        # Once at the iteration count (settling iterations can take the count past it),
        # not at every call after it: a log gets one line per interval.
        at_end = self.done >= self.total and not self._ended
        if now - self._last >= self.min_interval or at_end:
            self._ended = self._ended or at_end
            self._last = now
            self._draw(now)

    def precision(self, status) -> None:
        """A precision-driven run's round: how tight the loosest row still timed is,
        and the time left that follows from it (the iteration ceiling overstates the work).
        Fields read with defaults, so an older RoundStatus without the time ones works."""
        self._status = status

    def line(self, now: float | None = None) -> str:
        """The progress line as it would be drawn now."""
        now = time.monotonic() if now is None else now
        elapsed = now - self.t0
        frac = min(self.done / self.total, 1.0)
        eta = elapsed * (1 - frac) / frac if frac > 0 else math.nan
        st = self._status
        active = getattr(st, "active", None)
        worst = getattr(st, "worst", None)
        if st is not None:
            st_eta = getattr(st, "eta_s", None)
            if st_eta is not None and st_eta == st_eta:
                eta = float(st_eta)
            budget = getattr(st, "budget_s", None)
            group_elapsed = getattr(st, "elapsed_s", None)
            if budget and group_elapsed is not None:
                eta = min(eta, max(budget - group_elapsed, 0.0)) if eta == eta else max(budget - group_elapsed, 0.0)
        if self.budget_s:
            # Time bounds the run: the bar is time spent out of the time it can take.
            left = max(self.budget_s - elapsed, 0.0)
            eta = min(eta, left) if eta == eta else left
        if eta == eta and (self.budget_s or st is not None):
            frac = min(elapsed / (elapsed + eta), 1.0) if elapsed + eta > 0 else frac
        bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
        text = f"{self.label} [{bar}] {100 * frac:5.1f}%  {_fmt(elapsed)} elapsed, {_fmt(eta)} left"
        if st is not None:
            if not active:
                text += "  (all rows precise)"
            elif worst is None or not math.isfinite(worst):
                text += f"  ({active} rows still timed, no interval yet)"
            else:
                text += f"  ({active} rows still timed, loosest ±{worst:.1%})"
        return text

    def _draw(self, now: float) -> None:
        text = self.line(now)
        self.stream.write(("\r" + text + "\033[K") if self.tty else text + "\n")
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
