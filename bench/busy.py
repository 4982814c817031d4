"""Is the machine busy while we time? CPU used by other processes, steal, clock.

At every block boundary the scheduler takes a `BusySample`: the machine's busy CPU
time (all processes, from /proc/stat through psutil), this process's own CPU time
(all its threads, nanosecond clock), the hypervisor's steal time and the CPU clock
where readable. /proc/stat counts in 10 ms ticks, so one short block cannot be
judged alone: consecutive blocks are pooled into windows of at least WINDOW_S
seconds, and every block gets the figures of its window. A block is *disturbed* when
other processes used more than `busy_cores` cores during it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import psutil

# Long enough that the 10 ms tick of /proc/stat is below 0.05 cores on 2 CPUs.
WINDOW_S = 0.4
# Other processes using more than this many cores disturb a block.
DEFAULT_BUSY_CORES = 0.2
# A row with more than this share of disturbed blocks is not valid.
DEFAULT_MAX_DISTURBED = 0.10


@dataclass(frozen=True)
class BusySample:
    wall: float       # seconds, monotonic
    busy: float       # CPU-seconds used by everything (user+nice+system+irq+softirq)
    own: float        # CPU-seconds used by this process (every thread)
    steal: float      # CPU-seconds taken by the hypervisor
    mhz: float | None


def take() -> BusySample:
    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    try:
        f = psutil.cpu_freq()
        mhz = float(f.current) if f and f.current else None
    except (OSError, NotImplementedError, AttributeError):
        mhz = None
    return BusySample(time.monotonic(), busy, time.process_time(), getattr(t, "steal", 0.0), mhz)


@dataclass
class BlockBusy:
    """The load during one timed block (the window's, for pooled short blocks)."""

    others_cores: float
    steal_pct: float
    mhz: float | None


def block_busy(marks: list[tuple[BusySample, BusySample]], window_s: float = WINDOW_S) -> list[BlockBusy]:
    """One BlockBusy per (start, end) pair of consecutive timed blocks.

    Blocks are pooled in time order into windows of at least `window_s`; the gaps
    between blocks (untimed warm-up, settling) belong to the window too, since a
    competitor running then shares the caches and the clock all the same."""
    out: list[BlockBusy | None] = [None] * len(marks)
    ncpu = psutil.cpu_count() or 1
    i = 0
    while i < len(marks):
        j = i
        while j + 1 < len(marks) and marks[j][1].wall - marks[i][0].wall < window_s:
            j += 1
        a, b = marks[i][0], marks[j][1]
        wall = max(b.wall - a.wall, 1e-9)
        others = max((b.busy - a.busy) - (b.own - a.own), 0.0) / wall
        steal = max(b.steal - a.steal, 0.0) / (wall * ncpu) * 100
        mhz = [m for m in (a.mhz, b.mhz) if m]
        for k in range(i, j + 1):
            out[k] = BlockBusy(others, steal, min(mhz) if mhz else None)
        i = j + 1
    return out  # type: ignore[return-value]
