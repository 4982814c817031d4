"""Benchmarks of the measuring itself: are the default numbers trustworthy?

    python -m tools.selfbench machine         # is the machine quiet? per-CPU speed of a pinned loop
    python -m tools.selfbench transient       # the block-switch transient, with and without settling
    python -m tools.selfbench suite-vs-bare   # the suite vs a bare session.run loop, process by process
    python -m tools.selfbench repeatability   # 5 default invocations: CV of ratios between models
    python -m tools.selfbench busy            # rows flagged busy with and without a busy-loop competitor
    python -m tools.selfbench default-run     # the default table1 run: wall time, validity, vs 4000 fixed
    python -m tools.selfbench back-to-back    # two default table1 runs: latency_ms agreement, VALID rows
    python -m tools.selfbench reproduce       # N invocations of the trio: CV of latency_ms and ratios,
                                              # and `check --against` of each run with the next
    python -m tools.selfbench estimators A B  # offline: which reading of the samples reproduces A -> B
    python -m tools.selfbench rel-estimators DIR...  # offline: which reading of paired rounds reproduces
                                              # across the invocations of earlier `relative` sets

Each prints its measurements and targets and, with --out DIR, writes them to DIR/<name>.txt
beside the results files it made (DIR/<name>/...). Run alone on the machine: anything
else running corrupts the numbers (the busy detector will say so).
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

from modbench import schedule
from modbench.machine_ref import NORMAL_MAX
from modbench.measurement import from_row, relative_rounds
from modbench.pipeline import RunRequest, plan, prepare_all
from modbench.runners import RunSettings, get_runner
from modbench.runners.base import random_input
from modbench.runners.ort_cpu import cpu_session_options
from modbench.stats import block_bootstrap, blocks, paired_ratio, verdict_at_most
from modbench.store import read_rows, read_samples
from modbench.common.fsio import atomic_write

REPO = Path(__file__).resolve().parent.parent
TRIO = ["efficientmod_s", "efficientformerv2_s2", "mobilenetv2_100"]
# The suite's timed loop against a bare session.run loop: suite / bare at most these
# (the paper reports means, the suite's headline is the median: both must be unbiased).
SUITE_VS_BARE_GOALS = (("median", 1.01), ("mean", 1.015))


def _bench(*args: str, log=None) -> float:
    """Run bench.py in its own process; returns its wall seconds."""
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, str(REPO / "bench.py"), *args], cwd=REPO, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if log is not None:
        log(f"$ bench.py {' '.join(args)}  ({wall:.0f} s, exit {r.returncode})")
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["(no message)"])[-1]
        _refuse(f"bench.py {' '.join(args)} exited {r.returncode}: {last}")
    return wall


def _headline(r) -> float:
    """A row's headline: latency_ms, or the median for rows written before it existed."""
    v = r.get("latency_ms")
    return float(v) if v is not None and v == v else float(r["median_ms"])


def _latency(r) -> float | None:
    """A row's latency_ms where it was measured; None for a row with none (the host
    slowed it throughout): such a row has no figure to reproduce."""
    v = r.get("latency_ms")
    return float(v) if v is not None and v == v else None


def _rows(csv: Path) -> dict:
    return {r["model"]: r for r in read_rows(csv)}


def _refuse(message: str) -> None:
    """Bad input or a failed step: one line, exit 2 (exit 1 means a regression)."""
    print(f"tools.selfbench: {message}", file=sys.stderr)
    raise SystemExit(2)


class Evidence:
    """What one measurement prints, line by line; kept as OUT/<name>.txt with --out."""

    def __init__(self, name: str, out: Path | None):
        self.name, self.lines = name, []
        self.dir = (out / name) if out else Path(os.environ.get("TMPDIR", "/tmp")) / f"modbench-{name}-{os.getpid()}"
        if out and ((out / f"{name}.txt").exists() or (self.dir.exists() and any(self.dir.iterdir()))):
            # Evidence already measured is never overwritten: a new measurement goes to a new folder.
            _refuse(f"{out / name} already holds a {name} measurement; give another --out")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.out = out

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)

    def save(self) -> None:
        if self.out:
            atomic_write(self.out / f"{self.name}.txt", "\n".join(self.lines) + "\n")


# --- the machine itself ------------------------------------------------------------------

def _loop(n: int = 20000) -> None:
    x = 0
    for i in range(n):
        x += i * i


# A CPU whose pinned loop ran over 1.3x its best in more than this share of samples
# is shared with another tenant of the host.
QUIET_SLOWED = 0.10


@dataclass(frozen=True)
class MachineState:
    """Share of a pinned loop's samples over 1.3x that CPU's best, per CPU."""

    seconds: float
    slowed: dict
    line: str

    @property
    def quiet(self) -> bool:
        return max(self.slowed.values()) <= QUIET_SLOWED


def machine_state(seconds: float = 10.0) -> MachineState:
    """Is this machine quiet enough for the targets? A fixed pure-Python loop pinned to
    each CPU in turn, for `seconds`: on a dedicated core its time is steady; where the
    host shares the physical core with another tenant (SMT), it is bimodal, slower by
    tens of percent for a share of the samples. Neither /proc/stat nor steal time shows
    that tenant, so a quiet `top` is not evidence of a quiet machine."""
    cpus = sorted(os.sched_getaffinity(0))
    times = {c: [] for c in cpus}
    t_end = time.monotonic() + seconds
    try:
        while time.monotonic() < t_end:
            for c in cpus:
                os.sched_setaffinity(0, {c})
                t0 = time.perf_counter()
                _loop()
                times[c].append(time.perf_counter() - t0)
    finally:
        os.sched_setaffinity(0, set(cpus))
    slowed, parts = {}, []
    for c in cpus:
        t = np.asarray(times[c])
        slowed[c] = float(np.mean(t > 1.3 * t.min()))
        parts.append(f"cpu{c} {slowed[c]:.0%} slowed (median {np.median(t) / t.min():.2f}x, "
                     f"p90 {np.percentile(t, 90) / t.min():.2f}x its best)")
    quiet = max(slowed.values()) <= QUIET_SLOWED
    line = (f"machine {'quiet' if quiet else 'NOT quiet'} ({seconds:.0f} s of a pinned loop per CPU; share of "
            f"samples over 1.3x that CPU's best, quiet at most {QUIET_SLOWED:.0%}): " + ", ".join(parts))
    return MachineState(seconds, slowed, line)


def wait_quiet(limit_s: float, log: Evidence) -> MachineState:
    """Poll the machine until it is quiet or `limit_s` has passed; the last state."""
    t_end = time.monotonic() + limit_s
    while True:
        st = machine_state(5.0)
        if st.quiet or time.monotonic() >= t_end:
            log(f"  before: {st.line}")
            return st
        time.sleep(10.0)


@contextmanager
def timed_step(args, log: Evidence, quiet: list):
    """One timed step of a target. With --wait-quiet S: wait up to S seconds for a quiet
    machine first, check it again after, and append whether it was quiet throughout to
    `quiet` (the summaries then also give the quiet steps alone)."""
    before = wait_quiet(args.wait_quiet, log) if args.wait_quiet else None
    yield
    if before is not None:
        after = machine_state(5.0)
        log(f"  after: {after.line}")
        quiet.append(before.quiet and after.quiet)


def _quiet_steps(quiet: list, log: Evidence, what: str) -> list:
    """The indices of the steps timed on a quiet machine, said in one line."""
    q = [k for k, ok in enumerate(quiet) if ok]
    if quiet:
        log(f"{what} on a quiet machine (before and after): {len(q)} of {len(quiet)}"
            + (f" ({', '.join(str(k + 1) for k in q)})" if q else ""))
    return q


def machine(args, log: Evidence) -> None:
    log(machine_state(args.seconds).line)


# --- the block-switch transient ---------------------------------------------------------

def transient(args, log: Evidence) -> None:
    """Iteration position within a block vs the block's median, three models round-robin."""

    req = RunRequest(models=TRIO, threads=[args.threads])
    prep = prepare_all(plan(req), req, "onnx")
    runner = get_runner("ort-cpu")
    log(f"3 models round-robin, ORT CPU {args.threads} threads, blocks of 50, {args.rounds} rounds each setting")
    now = schedule.TimingProtocol(iters=50 * args.rounds, auto=False, warmup=20, block=50, block_warmup=2)
    for label, protocol in (("fixed 2 untimed iterations per block (before)", replace(now, settle_max=0)),
                            (f"2 + settle until within {now.settle_tol:.0%} (now)", now)):
        sessions = []
        try:
            sessions = [runner.open(p.artifact, (1, 3, p.job.resolution, p.job.resolution),
                                    RunSettings(threads=args.threads)) for p in prep]
            ms = schedule.time_sessions(sessions, protocol)
        finally:
            for s in sessions:
                s.close()
        log(f"\n{label}")
        for p, m in zip(prep, ms):
            x = m.samples_ms.reshape(-1, 50)
            rel = np.median(x / np.median(x, axis=1, keepdims=True), axis=0)
            bias = m.mean / np.mean(x[:, 10:])  # the mean vs the mean without each block's first 10
            log(f"  {p.job.model:22s} iteration 1..5 / block median: {' '.join(f'{v:.3f}' for v in rel[:5])}; "
                f"mean / mean-without-first-10: {bias:.4f}; settle iterations per block "
                f"{np.mean(m.settle):.1f}")


# --- suite vs bare loop, process by process ------------------------------------------------

def _bare_child(args) -> None:
    """In its own process: a hand-written loop over each file, as a user would write it."""

    out = {}
    for name, path, res in json.loads(args.files):
        sess = ort.InferenceSession(path, cpu_session_options(RunSettings(threads=args.threads)),
                                    providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: random_input((1, 3, res, res))}
        for _ in range(args.warmup):
            sess.run(None, feed)
        t = np.empty(args.iters)
        for i in range(args.iters):
            t0 = time.perf_counter()
            sess.run(None, feed)
            t[i] = (time.perf_counter() - t0) * 1e3
        out[name] = [float(np.median(t)), float(np.mean(t))]
    print(json.dumps(out))


def suite_vs_bare(args, log: Evidence) -> None:

    req = RunRequest(models=TRIO, threads=[args.threads])
    prep = prepare_all(plan(req), req, "onnx")  # the cache both sides then load the same files from
    files = json.dumps([[p.job.model, str(p.artifact.path), p.job.resolution] for p in prep])
    log(f"suite: `bench.py run {' '.join(TRIO)} --iters {args.iters} --threads {args.threads}` (round-robin, "
        f"one process); bare: a perf_counter loop of {args.iters} session.run per model, sequential, another "
        f"process; same ONNX files; {args.pairs} pairs alternating suite/bare")
    ratios = {m: [] for m in TRIO}
    quiet = []
    for k in range(args.pairs):
        csv = log.dir / f"suite-{k}.csv"
        with timed_step(args, log, quiet):
            _bench("run", *TRIO, "--iters", str(args.iters), "--threads", str(args.threads), "--out", str(csv))
            proc = subprocess.run([sys.executable, "-m", "tools.selfbench", "_bare", "--files", files, "--iters",
                                   str(args.iters), "--threads", str(args.threads)], cwd=REPO, capture_output=True,
                                  text=True)
        if proc.returncode != 0:
            _refuse(f"the bare loop exited {proc.returncode}: {(proc.stderr.strip().splitlines() or [''])[-1]}")
        suite = {m: (r["median_ms"], r["mean_ms"]) for m, r in _rows(csv).items()}
        bare = json.loads(proc.stdout.strip().splitlines()[-1])
        for m in TRIO:
            ratios[m].append((suite[m][0] / bare[m][0], suite[m][1] / bare[m][1]))
        log(f"pair {k + 1}: " + "; ".join(f"{m} median {suite[m][0]:.3f}/{bare[m][0]:.3f} mean "
                                          f"{suite[m][1]:.3f}/{bare[m][1]:.3f} ms" for m in TRIO))
    q = _quiet_steps(quiet, log, "pairs")
    for label, keep in (("all pairs", range(args.pairs)), ("quiet pairs only", q if len(q) >= 2 else [])):
        if not keep:
            continue
        log(f"\nsuite / bare, {label} (geometric mean over pairs, 95% bootstrap CI over pairs); targets: "
            + ", ".join(f"{what} <= {goal}" for what, goal in SUITE_VS_BARE_GOALS))
        for m in TRIO:
            for j, (what, goal) in enumerate(SUITE_VS_BARE_GOALS):
                logs = np.log([ratios[m][k][j] for k in keep])
                lo, hi = block_bootstrap(lambda d: np.exp(d.mean(axis=1)), logs, block=1)
                est = math.exp(logs.mean())
                log(f"  {m:22s} {what:6s} {est:.4f} [{lo:.4f}, {hi:.4f}]  {verdict_at_most(lo, hi, goal)}")


# --- repeatability of ratios across invocations ----------------------------------------------

def _paired_ratios(csv: Path, rows: dict) -> dict:
    """The ratio a report prints for two rows of one run: geometric mean of the ratios
    of block medians, block k of one against block k of the other."""

    x = {m: read_samples(csv, rows[m]) for m in TRIO}
    return {(a, b): paired_ratio(x[a], x[b], int(rows[a]["block_size"]),
                                 block_size_b=int(rows[b]["block_size"])).estimate
            for a, b in _PAIRS}


_PAIRS = ((TRIO[0], TRIO[1]), (TRIO[0], TRIO[2]), (TRIO[1], TRIO[2]))


def repeatability(args, log: Evidence) -> None:
    runs, paired = [], []
    log(f"{args.runs} separate default invocations of `bench.py run {' '.join(TRIO)}` (auto iterations, "
        "default threads); target: CV of each ratio <= 1%")
    quiet = []
    for k in range(args.runs):
        csv = log.dir / f"run-{k}.csv"
        with timed_step(args, log, quiet):
            wall = _bench("run", *TRIO, "--out", str(csv))
        rows = _rows(csv)
        runs.append({m: _headline(rows[m]) for m in TRIO})
        paired.append(_paired_ratios(csv, rows))
        log(f"run {k + 1} ({wall:.0f} s): " + ", ".join(
            f"{m} {_headline(rows[m]):.3f} ms ({int(rows[m]['iters'])} it, ±{rows[m]['ci_rel_half_width']:.2%}, "
            f"{'VALID' if rows[m]['valid'] else 'INVALID'})" for m in TRIO))
    cv = lambda v: float(np.std(v, ddof=1) / np.mean(v))  # noqa: E731
    log("\nCV across invocations")
    for m in TRIO:
        log(f"  latency_ms of {m:22s} {cv([r[m] for r in runs]):.2%}")
    for a, b in _PAIRS:
        v = cv([r[a] / r[b] for r in runs])
        log(f"  ratio {a} / {b}: {v:.2%}  {'met' if v <= 0.01 else 'NOT met'}")
    log("the paired ratio a report prints (block by block), each run, and its CV")
    for a, b in _PAIRS:
        v = [p[(a, b)] for p in paired]
        log(f"  {a} / {b}: {' '.join(f'{x:.4f}' for x in v)}  CV {cv(v):.2%}")
    q = _quiet_steps(quiet, log, "runs")
    if len(q) >= 2:
        for a, b in _PAIRS:
            v = cv([runs[k][a] / runs[k][b] for k in q])
            log(f"  quiet runs only, ratio {a} / {b}: {v:.2%}  {'met' if v <= 0.01 else 'NOT met'}")


# --- busy machine detection --------------------------------------------------------------------

def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def busy(args, log: Evidence) -> None:

    models = ["mobilenetv2_100", "efficientmod_xxs", "efficientformerv2_s0"]
    log(f"{args.runs} runs with a busy-loop competitor on one core and {args.runs} without, alternating: "
        f"`bench.py run {' '.join(models)} --iters {args.iters}` (default threads); targets: >= 95% of rows "
        "flagged busy with it, <= 5% without")
    flagged = {True: [], False: []}
    quiet = []
    for k in range(args.runs):
        for competitor in (True, False):
            hog = None
            with timed_step(args, log, quiet):
                if competitor:
                    hog = mp.get_context("spawn").Process(target=_spin, args=(600,))
                    hog.start()
                try:
                    csv = log.dir / f"{'busy' if competitor else 'quiet'}-{k}.csv"
                    _bench("run", *models, "--iters", str(args.iters), "--out", str(csv))
                finally:
                    if hog is not None:
                        hog.terminate()
                        hog.join()
            rows = _rows(csv).values()
            f = [("machine busy" in str(r["invalid_reason"])) for r in rows]
            flagged[competitor] += f
            log(f"{'with' if competitor else 'without'} competitor, run {k + 1}: "
                + ", ".join(f"{r['model']} others {r['others_cpu_mean']:.2f} cores (max {r['others_cpu_max']:.2f}), "
                            f"{int(r['disturbed_blocks'])}/{int(r['blocks'])} blocks disturbed, median "
                            f"{r['median_ms']:.2f} ms, latency_ms {_headline(r):.2f}" for r in rows))
    _quiet_steps(quiet, log, "runs")
    b, q = np.mean(flagged[True]), np.mean(flagged[False])
    log(f"\nflagged busy: with competitor {b:.0%} of {len(flagged[True])} rows ({'met' if b >= 0.95 else 'NOT met'}); "
        f"without {q:.0%} of {len(flagged[False])} ({'met' if q <= 0.05 else 'NOT met'})")


# --- the default run ------------------------------------------------------------------------------

def default_run(args, log: Evidence) -> None:
    auto, fixed = log.dir / "default.csv", log.dir / "fixed-4000.csv"
    quiet = []
    with timed_step(args, log, quiet):
        wall = _bench("run", "--suite", args.suite, "--out", str(auto), log=log)
    a = _rows(auto)
    valid = sum(bool(r["valid"]) for r in a.values())
    log(f"default `bench.py run --suite {args.suite}`: {wall / 60:.1f} min wall (target <= 10), "
        f"{valid}/{len(a)} rows VALID (target all)")
    for m, r in a.items():
        if not r["valid"]:
            log(f"  INVALID {m}: {r['invalid_reason']}")
    threads = str(int(next(iter(a.values()))["threads"]))
    if args.skip_fixed:
        return
    with timed_step(args, log, quiet):
        wall_f = _bench("run", "--suite", args.suite, "--iters", "4000", "--threads", threads, "--out",
                        str(fixed), log=log)
    f = _rows(fixed)
    log(f"fixed 4000-iteration round-robin run, same threads: {wall_f / 60:.1f} min")
    common = sorted(set(a) & set(f))
    # The machine's speed moves between two invocations; the ratio to each run's
    # geometric mean removes that shift and leaves the per-model agreement.
    g = math.exp(np.mean([math.log(a[m]["median_ms"] / f[m]["median_ms"]) for m in common]))
    log(f"machine speed between the two runs (geometric mean of median ratios): {g:.4f}")
    within_raw = within_norm = 0
    for m in common:
        raw = a[m]["median_ms"] / f[m]["median_ms"]
        norm = raw / g
        within_raw += abs(raw - 1) <= 0.01
        within_norm += abs(norm - 1) <= 0.01
        log(f"  {m:32s} auto {a[m]['median_ms']:8.3f} ms ({int(a[m]['iters'])} it)  fixed {f[m]['median_ms']:8.3f} ms"
            f"  ratio {raw:.4f}  speed-corrected {norm:.4f}")
    log(f"within 1% of the fixed run: {within_raw}/{len(common)} as measured, {within_norm}/{len(common)} "
        "after the between-run speed correction")
    _quiet_steps(quiet, log, "runs")


# --- issue 19: numbers that reproduce on a shared machine ------------------------------------

def _validity_line(r) -> str:
    slowed = r.get("slowed_share")
    s = "" if slowed is None or slowed != slowed else f", {slowed:.0%} of blocks slowed"
    if _latency(r) is None and "latency_ms" in r.data:
        return (f"no latency_ms (all-samples median {float(r['median_ms']):.3f} ms; "
                f"{int(r.get('blocks_used') or 0)}/{int(r.get('blocks') or 0)} blocks at normal speed{s}, INVALID)")
    return (f"{_headline(r):.3f} ms ±{(r.get('ci_rel_half_width') or float('nan')):.2%} "
            f"({int(r.get('blocks_used') or 0)}/{int(r.get('blocks') or 0)} blocks used{s}, "
            f"{'VALID' if r['valid'] else 'INVALID'})")


def back_to_back(args, log: Evidence) -> None:
    """Two default runs of a suite, one after the other: does latency_ms reproduce?"""
    csvs, walls, quiet = [], [], []
    for k in range(2):
        csv = log.dir / f"run-{k}.csv"
        with timed_step(args, log, quiet):
            log(f"  probe before run {k + 1}: {machine_state(5.0).line}")
            walls.append(_bench("run", "--suite", args.suite, "--out", str(csv), log=log))
            log(f"  probe after run {k + 1}: {machine_state(5.0).line}")
        csvs.append(csv)
    a, b = _rows(csvs[0]), _rows(csvs[1])
    for k, (rows, wall) in enumerate(((a, walls[0]), (b, walls[1]))):
        valid = sum(bool(r["valid"]) for r in rows.values())
        log(f"run {k + 1}: {wall / 60:.1f} min wall (target <= 10), {valid}/{len(rows)} rows VALID "
            "(target >= 20 of 25)")
    common = sorted(set(a) & set(b))
    within1 = within3 = measured = 0
    for m in common:
        la, lb = _latency(a[m]), _latency(b[m])
        ratio = lb / la if la and lb else None
        if ratio is not None:
            measured += 1
            within1 += abs(ratio - 1) <= 0.01
            within3 += abs(ratio - 1) <= 0.03
        log(f"  {m:32s} {_validity_line(a[m])}  |  {_validity_line(b[m])}  ratio "
            + (f"{ratio:.4f}" if ratio is not None else "- (no latency_ms in a run)"))
    log(f"latency_ms measured in both runs: {measured}/{len(common)}; within 1%: {within1}/{len(common)} "
        f"(target >= 20 of 25); within 3%: {within3}/{len(common)} (target all)")
    # Issue 33: the relative figures (a default run times the reference beside its rows).
    rel = [m for m in common if a[m].get("rel_latency") and b[m].get("rel_latency")]
    if rel:
        for k, rows in enumerate((a, b)):
            ok = sum(not rows[m].get("rel_codes") for m in rel)
            log(f"run {k + 1}: {ok}/{len(rel)} relative figures VALID (target >= 20 of 24)")
        both = [m for m in rel if not a[m].get("rel_codes") and not b[m].get("rel_codes")]
        near = [m for m in rel if abs(b[m]["rel_latency"] / a[m]["rel_latency"] - 1) <= 0.02]
        log(f"relative figures within 2% run to run: {len(near)}/{len(rel)} (target >= 22 of 24); "
            f"of those VALID in both runs: {sum(m in near for m in both)}/{len(both)}")
        for m in rel:
            log(f"  {m:32s} rel {a[m]['rel_latency']:.4f} {a[m].get('rel_codes') or 'VALID'} | "
                f"{b[m]['rel_latency']:.4f} {b[m].get('rel_codes') or 'VALID'}  ratio "
                f"{b[m]['rel_latency'] / a[m]['rel_latency']:.4f}")
    for k, rows in enumerate((a, b)):
        for m, r in rows.items():
            if not r["valid"]:
                log(f"  run {k + 1} INVALID {m}: {r['invalid_reason']}")
    _quiet_steps(quiet, log, "runs")


def _check_against(base: Path, cur: Path, log: Evidence) -> tuple[int, str]:
    r = subprocess.run([sys.executable, str(REPO / "bench.py"), "check", "--against", str(base), str(cur)],
                       cwd=REPO, capture_output=True, text=True)
    if r.returncode not in (0, 1):
        _refuse(f"check --against {base} {cur} exited {r.returncode}: {(r.stderr.strip().splitlines() or [''])[-1]}")
    head = next((ln for ln in r.stdout.splitlines() if "latency gate" in ln), r.stdout.strip()[:200])
    return r.returncode, head


def reproduce(args, log: Evidence) -> None:
    """N invocations of the trio: the CV of each model's latency_ms and of their ratios;
    each run judged against the one before by `check --against` (no "slower" expected)."""
    runs, verdicts, quiet = [], [], []
    log(f"{args.runs} separate default invocations of `bench.py run {' '.join(TRIO)} --time-budget "
        f"{args.time_budget:g}`; targets: CV of each model's latency_ms <= 1.5%, of each ratio <= 1%; "
        "`check --against` of each run with the next: no 'slower'")
    prev = None
    for k in range(args.runs):
        csv = (args.reuse or log.dir) / f"run-{k}.csv"
        if args.reuse:  # judge runs timed before, with this code's reading of them
            wall = float("nan")
        else:
            with timed_step(args, log, quiet):
                wall = _bench("run", *TRIO, "--time-budget", f"{args.time_budget:g}", "--out", str(csv))
        rows = _rows(csv)
        runs.append({m: _latency(rows[m]) for m in TRIO})
        log(f"run {k + 1} ({wall:.0f} s): " + "; ".join(f"{m} {_validity_line(rows[m])}" for m in TRIO))
        if prev is not None:
            code, head = _check_against(prev, csv, log)
            verdicts.append(code)
            log(f"  check --against run-{k - 1}.csv run-{k}.csv: exit {code}: {head}")
        prev = csv
    cv = lambda v: float(np.std(v, ddof=1) / np.mean(v))  # noqa: E731
    log("\nCV across invocations (runs with a latency_ms; a run slowed throughout has none)")
    for m in TRIO:
        vals = [r[m] for r in runs if r[m] is not None]
        v = cv(vals) if len(vals) >= 2 else float("nan")
        log(f"  latency_ms of {m:22s} {v:.2%} over {len(vals)} of {len(runs)} runs  "
            f"{'met' if v <= 0.015 and len(vals) == len(runs) else 'NOT met'}")
    for a, b in _PAIRS:
        vals = [r[a] / r[b] for r in runs if r[a] is not None and r[b] is not None]
        v = cv(vals) if len(vals) >= 2 else float("nan")
        log(f"  ratio {a} / {b}: {v:.2%} over {len(vals)} runs  "
            f"{'met' if v <= 0.01 and len(vals) == len(runs) else 'NOT met'}")
    slower = sum(c == 1 for c in verdicts)
    log(f"check --against, each run with the next: {slower} of {len(verdicts)} said 'slower' "
        f"({'met' if slower == 0 else 'NOT met'})")
    _quiet_steps(quiet, log, "runs")


# --- issue 33: relative latency -------------------------------------------------------------

REL_MODELS = ["efficientmod_s", "efficientformerv2_s2", "deit_tiny_distilled_patch16_224"]
REFERENCE = "mobilenetv2_100"


def _rel_line(r) -> str:
    rel, lo, hi = (r.get(k) for k in ("rel_latency", "rel_ci_low", "rel_ci_high"))
    if rel is None or rel != rel:
        return "no relative figure"
    cal = r.get("calibrated_ms")
    return (f"rel {rel:.4f} ±{(hi - lo) / 2 / rel:.2%} ({'VALID' if not r.get('rel_codes') else r['rel_codes']})"
            + (f", calibrated {cal:.3f} ms" if cal is not None and cal == cal else ", no calibration yet")
            + f", latency_ms {_validity_line(r)}")


def relative(args, log: Evidence) -> None:
    """N invocations of three models beside the reference: the CV of each row's relative
    figure, calibrated ms and latency_ms across invocations; how many relative figures
    were VALID; `check --against` of each run with the next."""
    runs, checks, quiet = [], [], []
    log(f"{args.runs} separate invocations of `bench.py run {' '.join(REL_MODELS)} --reference {REFERENCE} "
        f"--time-budget {args.time_budget:g} --threads {args.threads}"
        + (f" --block {args.block}" if args.block else "") + "`; targets: CV of each relative figure "
        "<= 1.5%, of each calibrated ms <= 3%; `check --against` each run with the next: 'unchanged' for "
        ">= 90% of rows, never 'slower'")
    prev = None
    for k in range(args.runs):
        csv = log.dir / f"run-{k}.csv"
        with timed_step(args, log, quiet):
            wall = _bench("run", *REL_MODELS, "--reference", REFERENCE, "--time-budget", f"{args.time_budget:g}",
                          "--threads", str(args.threads), "--out", str(csv),
                          *(("--block", str(args.block)) if args.block else ()))
        rows = {r["model"]: r for r in read_rows(csv) if r["model"] in REL_MODELS}
        runs.append(rows)
        log(f"run {k + 1} ({wall:.0f} s):")
        for m in REL_MODELS:
            log(f"  {m:32s} {_rel_line(rows[m])}")
        if prev is not None:
            r = subprocess.run([sys.executable, str(REPO / "bench.py"), "check", "--against", str(prev), str(csv),
                                "--format", "json"], cwd=REPO, capture_output=True, text=True)
            doc = json.loads(r.stdout) if r.returncode in (0, 1) else {"rows": []}
            mine = [x for x in doc["rows"] if x["model"] in REL_MODELS]
            checks.append([x["verdict"] for x in mine])
            log(f"  check --against run-{k - 1}.csv: exit {r.returncode}: "
                + ", ".join(f"{x['model']} {x['verdict']} {x['change_pct'] if x.get('change_pct') is not None else float('nan'):+.1f}% ({x['mode']})"
                            for x in mine))
        prev = csv
    cv = lambda v: float(np.std(v, ddof=1) / np.mean(v)) if len(v) >= 2 else float("nan")  # noqa: E731
    num = lambda v: v is not None and v == v  # noqa: E731
    log("\nacross invocations")
    for m in REL_MODELS:
        rel = [r[m]["rel_latency"] for r in runs if num(r[m].get("rel_latency"))]
        cal = [r[m]["calibrated_ms"] for r in runs if num(r[m].get("calibrated_ms"))]
        lat = [_latency(r[m]) for r in runs if _latency(r[m]) is not None]
        ok = sum(not r[m].get("rel_codes") and num(r[m].get("rel_latency")) for r in runs)
        log(f"  {m:32s} relative CV {cv(rel):.2%} ({len(rel)} runs, {'met' if cv(rel) <= 0.015 else 'NOT met'}); "
            f"calibrated CV {cv(cal):.2%} ({len(cal)} runs, {'met' if cal and cv(cal) <= 0.03 else 'NOT met'}); "
            f"latency_ms CV {cv(lat):.2%} ({len(lat)} runs); relative VALID {ok}/{len(runs)}")
    flat = [v for c in checks for v in c]
    same, slower = sum(v == "unchanged" for v in flat), sum(v == "slower" for v in flat)
    log(f"check --against: {same} of {len(flat)} rows unchanged, {slower} slower "
        f"({'met' if flat and same >= 0.9 * len(flat) and not slower else 'NOT met'})")
    _quiet_steps(quiet, log, "runs")


def estimators(args, log: Evidence) -> None:
    """Offline, on two results files of the same models (e.g. back-to-back's run-0 and
    run-1): how well each way of reading the same samples and probe readings reproduces
    from one file to the other. Times nothing."""

    def per_row(path):
        out = {}
        for r in read_rows(path):
            x, p = r.samples(), r.probe()
            m = from_row(r.data, x, p)
            normal = m.normal_blocks()
            bs = [x[i:i + m.block_size] for i in range(0, x.size, m.block_size)]
            fig = {"median (all samples)": float(np.median(x)), "mean (all samples)": float(np.mean(x)),
                   "latency_ms (as stored)": _headline(r)}
            if normal is not None and normal.sum() >= 4:
                used = np.concatenate([b for b, ok in zip(bs, normal) if ok])
                pu = p.mean(axis=1)[normal]
                by_probe = m.block_speeds() <= NORMAL_MAX
                fig["median of normal blocks (probe and fast mode), as this code computes"] = float(np.median(used))
                fig["median of blocks the probe alone calls normal"] = float(np.median(
                    np.concatenate([b for b, ok in zip(bs, by_probe) if ok])))
                fig["same, probe-corrected to the reference"] = float(np.median(
                    np.concatenate([b for b, ok in zip(bs, by_probe) if ok])) * m.reference.ms
                    / np.median(p.mean(axis=1)[by_probe]))
                fig["median of normal blocks, probe-corrected"] = float(np.median(used) * m.reference.ms
                                                                        / np.median(pu))
            out[r["model"]] = fig
        return out

    a, b = per_row(args.files[0]), per_row(args.files[1])
    common = sorted(set(a) & set(b))
    names = sorted({k for m in common for k in a[m]} & {k for m in common for k in b[m]})
    log(f"{args.files[0]} vs {args.files[1]}: {len(common)} models; per estimator, models whose two "
        "figures agree within 1% / 2% / 3%, and the 10th-90th percentile of the ratios")
    for name in names:
        ratios = np.array([b[m][name] / a[m][name] for m in common if name in a[m] and name in b[m]])
        if ratios.size == 0:
            continue
        d = np.abs(ratios - 1)
        lo, hi = np.percentile(ratios, [10, 90])
        log(f"  {name:52s} {int((d <= 0.01).sum()):2d} / {int((d <= 0.02).sum()):2d} / {int((d <= 0.03).sum()):2d} "
            f"of {ratios.size}   {lo:.3f}-{hi:.3f}")


def _round_figures(m, ref, keep, f) -> tuple[np.ndarray, np.ndarray]:
    """Per round, f of the row's block and of the reference's block (the kept rounds)."""
    ba, bb = blocks(m.samples_ms, m.block_size), blocks(ref.samples_ms, ref.block_size)
    k = min(len(ba), len(bb))
    a, b = np.array([f(x) for x in ba[:k]]), np.array([f(y) for y in bb[:k]])
    return (a[keep[:k]], b[keep[:k]]) if keep is not None else (a, b)


# Ways to read one row's latency relative to the reference from the same paired rounds.
# The first is the suite's (stats.relative_latency); the others are the levers tried.
REL_ESTIMATORS = {
    "geomean of round median ratios (the suite's)": lambda a, b: float(np.exp(np.mean(np.log(a / b)))),
    "median of round median ratios": lambda a, b: float(np.median(a / b)),
    "ratio of the medians of round medians": lambda a, b: float(np.median(a) / np.median(b)),
    "ratio of the lowest round medians (best round)": lambda a, b: float(a.min() / b.min()),
}
REL_BLOCK_STATS = {"median": np.median, "mean": np.mean, "10th percentile": lambda x: np.percentile(x, 10)}


def rel_estimators(args, log: Evidence) -> None:
    """Offline, on the runs of earlier `relative` measurements: how each way of reading
    the same paired rounds reproduces across a set's invocations (CV of each model's
    figure), over the normal-speed rounds and over all rounds. Times nothing."""
    log("CV across one set's invocations of each model's figure relative to "
        f"{REFERENCE}; per set, the mean CV over {', '.join(REL_MODELS)} (the worst in brackets)")
    for folder in args.dirs:
        runs = sorted(folder.glob("run-*.csv"))
        figures: dict = {}
        for csv in runs:
            rows = {r["model"]: r for r in read_rows(csv)}
            if REFERENCE not in rows:
                continue
            ref_row = rows[REFERENCE]
            ref = from_row(ref_row.data, ref_row.samples(), ref_row.probe())
            for model in REL_MODELS:
                if model not in rows:
                    continue
                r = rows[model]
                m = from_row(r.data, r.samples(), r.probe())
                keep, _, slowed = relative_rounds(m, ref)
                for rounds, use in (("normal rounds", keep), ("all rounds", None)):
                    if rounds == "normal rounds" and slowed:
                        continue  # the suite codes such a figure `slowed`: it is not one to reproduce
                    for sname, sf in REL_BLOCK_STATS.items():
                        a, b = _round_figures(m, ref, use, sf)
                        for ename, ef in REL_ESTIMATORS.items():
                            figures.setdefault((rounds, sname, ename), {}).setdefault(model, []).append(ef(a, b))
        log(f"\n{folder} ({len(runs)} runs)")
        for (rounds, sname, ename), per_model in figures.items():
            cvs = [float(np.std(v, ddof=1) / np.mean(v)) for v in per_model.values() if len(v) >= 2]
            n = min(len(v) for v in per_model.values())
            if cvs:
                log(f"  {rounds:13s} block {sname:15s} {ename:48s} CV {np.mean(cvs):.2%} ({max(cvs):.2%}), "
                    f"{n}+ runs")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    for name, fn in (("machine", machine), ("transient", transient), ("suite-vs-bare", suite_vs_bare),
                     ("repeatability", repeatability), ("busy", busy), ("default-run", default_run),
                     ("back-to-back", back_to_back), ("reproduce", reproduce), ("relative", relative),
                     ("estimators", estimators), ("rel-estimators", rel_estimators)):
        p = sub.add_parser(name)
        p.set_defaults(fn=fn)
        p.add_argument("--out", type=Path, help="folder for the evidence (NAME.txt) and the results files it made")
        p.add_argument("--threads", type=int, default=2)
        if name != "machine":
            p.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                           help="before each timed step, wait up to S seconds for a quiet machine; record its "
                                "state before and after, and summarise the quiet steps alone too")
    sub.choices["machine"].add_argument("--seconds", type=float, default=10.0)
    sub.choices["transient"].add_argument("--rounds", type=int, default=30)
    sub.choices["suite-vs-bare"].add_argument("--pairs", type=int, default=5)
    sub.choices["suite-vs-bare"].add_argument("--iters", type=int, default=2000)
    sub.choices["repeatability"].add_argument("--runs", type=int, default=5)
    sub.choices["busy"].add_argument("--runs", type=int, default=5)
    sub.choices["busy"].add_argument("--iters", type=int, default=300)
    sub.choices["default-run"].add_argument("--suite", default="table1")
    sub.choices["default-run"].add_argument("--skip-fixed", action="store_true")
    sub.choices["back-to-back"].add_argument("--suite", default="table1")
    sub.choices["reproduce"].add_argument("--runs", type=int, default=6)
    sub.choices["relative"].add_argument("--runs", type=int, default=5)
    sub.choices["relative"].add_argument("--time-budget", type=float, default=60.0)
    sub.choices["relative"].add_argument("--block", type=int, help="iterations per block (default: run's own)")
    sub.choices["estimators"].add_argument("files", nargs=2, type=Path, metavar="RESULTS.csv")
    sub.choices["rel-estimators"].add_argument("dirs", nargs="+", type=Path, metavar="DIR",
                                               help="folders of an earlier `relative` (their run-K.csv)")
    sub.choices["reproduce"].add_argument("--time-budget", type=float, default=60.0)
    sub.choices["reproduce"].add_argument("--reuse", type=Path, metavar="DIR",
                                          help="time nothing: judge the run-K.csv files of an earlier "
                                               "reproduce in DIR with this code")
    bare = sub.add_parser("_bare")
    bare.add_argument("--files", required=True)
    bare.add_argument("--iters", type=int, required=True)
    bare.add_argument("--threads", type=int, default=2)
    bare.add_argument("--warmup", type=int, default=50)
    args = ap.parse_args(argv)
    if args.what == "_bare":
        _bare_child(args)
        return 0
    log = Evidence(args.what, args.out)
    timed = args.what not in ("machine", "estimators", "rel-estimators") and not getattr(args, "reuse", None)
    if timed:
        log(machine_state().line)  # before and after: the evidence is only as good as the machine was quiet
    try:
        args.fn(args, log)
    except SystemExit as stop:
        log(f"stopped early (exit {stop.code}): the lines above are all this measurement has")
        raise
    finally:
        if timed:
            log(machine_state().line)
        log.save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
