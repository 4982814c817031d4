"""How sessions share the machine while they are timed.

round-robin: every session runs `block` iterations in turn until each has `iters`.
  On these VMs the machine's speed drifts ~10% between minutes; interleaving makes
  the drift hit every model alike, so ratios between them stay meaningful.
sequential: each session runs all its iterations before the next starts.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np

from .measurement import Measurement
from .runners.base import Session

SCHEDULES = ("round-robin", "sequential")
# Lets ONNX Runtime's spinning workers of the previous session go idle before the
# next session's block starts, so they do not steal its cores.
SETTLE_S = 0.005


def time_sessions(sessions: list[Session], iters: int, warmup: int, block: int, schedule: str,
                  block_warmup: int = 0,
                  progress: Callable[[int], None] = lambda n: None) -> list[Measurement]:
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}")
    firsts, chunks = [], [[] for _ in sessions]

    def warm(s: Session) -> None:
        firsts.append(s.first_run())
        if warmup:
            s.run_block(warmup)
        progress(1 + warmup)

    def one_block(i: int, n: int) -> None:
        s = sessions[i]
        if block_warmup:
            s.run_block(block_warmup)
        chunks[i].append(s.run_block(n))
        progress(n + block_warmup)

    if schedule == "sequential":
        for i, s in enumerate(sessions):
            warm(s)
            done = 0
            while done < iters:
                n = min(block, iters - done)
                one_block(i, n)
                done += n
    else:
        for s in sessions:
            warm(s)
            time.sleep(SETTLE_S)
        done = 0
        while done < iters:
            n = min(block, iters - done)
            for i in range(len(sessions)):
                one_block(i, n)
                if len(sessions) > 1:
                    time.sleep(SETTLE_S)
            done += n
    return [Measurement(np.concatenate(c), warmup=warmup, load_ms=s.load_ms, first_run_ms=f)
            for c, s, f in zip(chunks, sessions, firsts)]


def total_work(n_sessions: int, iters: int, warmup: int, block: int, block_warmup: int) -> int:
    """Iterations the progress bar counts: first run, warm-up, timed and per-block warm-up."""
    blocks = -(-iters // block)
    return n_sessions * (1 + warmup + iters + blocks * block_warmup)
