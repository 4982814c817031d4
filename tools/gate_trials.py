"""The pull-request gate, tried as a user runs it: what it says of an unchanged commit
and of commits that slow the model by about 5% and 10%, each tried N times.

    python -m tools.gate_trials [--tries 10] [--extra 1,2] --out results/evidence-DATE

A git repository of a user's own model (models/net.py: a stem and DEPTH 3x3 conv blocks)
gets three commits on top of its base: a README only ("unchanged"), and one and two more
conv blocks: real layers, whose true cost is measured first in one long interleaved run
of the three depths (their latency relative to the base's, paired round by round). Then
`modbench gate --models models/net.py:build --base-ref BASE` with its defaults runs at
each head in turn, the conditions alternated so that a host phase falls on all alike.
The targets (issue 33): unchanged never slower; the 10% commit slower in >= 9 of 10; the
5% commit slower or inconclusive, never unchanged, in >= 8 of 10; at most 3 minutes a
model. Run alone on the machine; the machine's state is printed before and after.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from modbench.gate.interleaved import compare_ab
from modbench.gate.verdicts import GateSettings
from modbench.measurement import from_row, relative_figure
from modbench.store import read_rows

from tools.selfbench import Evidence, _refuse, machine_state

NET = '''"""A user's model: a stride-4 stem and DEPTH 3x3 conv blocks."""
from torch import nn

DEPTH = {depth}


def build(width: int = 24, depth: int = DEPTH):
    blocks = [nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
              for _ in range(depth)]
    return nn.Sequential(nn.Conv2d(3, width, 4, stride=4), *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, 10)).eval()
'''
RESOLUTION = "224"


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _modbench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modbench", *args], cwd=cwd, capture_output=True, text=True)


def user_repo(root: Path, depth: int, extra: list[int]) -> tuple[Path, str, dict[str, str]]:
    """(repository, base commit, {condition: head commit}); every head's parent is the base."""
    repo = root / "repo"
    (repo / "models").mkdir(parents=True)
    (repo / "models" / "__init__.py").write_text("")
    (repo / "models" / "net.py").write_text(NET.format(depth=depth))
    _git(root, "init", "-q", "-b", "main", str(repo))
    _git(repo, "config", "user.email", "dev@example.com")
    _git(repo, "config", "user.name", "dev")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base")
    base = _git(repo, "rev-parse", "HEAD")
    heads = {}
    for name, change in [("unchanged", None)] + [(f"+{k} block{'s' if k > 1 else ''}", k) for k in extra]:
        _git(repo, "checkout", "-q", "--detach", base)
        if change is None:
            (repo / "README.md").write_text("# my model\n")
        else:
            (repo / "models" / "net.py").write_text(NET.format(depth=depth + change))
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", name)
        heads[name] = _git(repo, "rev-parse", "HEAD")
    return repo, base, heads


def true_sizes(root: Path, depth: int, extra: list[int], iters: int, log) -> dict[int, tuple]:
    """Each extra depth's latency relative to the base depth, from one interleaved run of
    all of them (`modbench run`, round-robin, fixed count): {extra: (ratio, low, high)}."""
    spec = root / "sizes.py"
    spec.write_text(NET.format(depth=depth) + "".join(
        f"\n\ndef d{k}():\n    return build(depth=DEPTH + {k})\n" for k in [0, *extra]))
    out = root / "sizes.csv"
    names = [f"{spec}:d{k}" for k in [0, *extra]]
    t0 = time.monotonic()
    r = _modbench("run", *names, "--iters", str(iters), "--block", "25", "--reference", "none",
                  "--resolution", RESOLUTION, "--out", str(out), cwd=root)
    if r.returncode != 0:
        _refuse(f"the true-size run failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    rows = {str(row["model"]).rsplit(":", 1)[-1]: row for row in read_rows(out)}
    m = {k: from_row(rows[f"d{k}"].data, rows[f"d{k}"].samples(), rows[f"d{k}"].probe()) for k in [0, *extra]}
    log(f"true size: one run of depths {', '.join(str(depth + k) for k in [0, *extra])}, {iters} iterations each, "
        f"interleaved in blocks of 25 ({time.monotonic() - t0:.0f} s); relative to depth {depth}, over the rounds "
        "both blocks ran at normal speed:")
    sizes = {}
    for k in extra:
        fig = relative_figure(m[k], m[0])
        sizes[k] = (fig.ratio.estimate, fig.ratio.low, fig.ratio.high)
        log(f"  +{k} block(s): {fig.ratio.estimate - 1:+.2%} [{fig.ratio.low - 1:+.2%}, {fig.ratio.high - 1:+.2%}] "
            f"({fig.normal_rounds} normal rounds{', SLOWED' if fig.slowed else ''}); "
            f"median {m[k].median:.3f} vs {m[0].median:.3f} ms")
    return sizes


def one_gate(repo: Path, base: str, head: str, work: Path) -> dict:
    """`modbench gate` with its defaults at `head` against `base`: its exit code, verdict,
    change and interval, and wall seconds."""
    _git(repo, "checkout", "-q", "--detach", head)
    t0 = time.monotonic()
    r = _modbench("gate", "--models", "models/net.py:build", "--base-ref", base, "--work", str(work),
                  "--resolution", RESOLUTION, cwd=repo)
    wall = time.monotonic() - t0
    if r.returncode not in (0, 1):
        return {"exit": r.returncode, "verdict": "error", "wall": wall,
                "why": (r.stderr.strip().splitlines() or ["?"])[-1]}
    ab = sorted(work.glob("ab-*.csv"))
    v = compare_ab(ab[-1], GateSettings()).verdicts[0]
    timed = sum(int(row["iters"]) for row in read_rows(ab[-1]) if row["row_id"].endswith(".head"))
    return {"exit": r.returncode, "verdict": v.verdict, "ratio": v.ratio, "low": v.ci_low, "high": v.ci_high,
            "wall": wall, "iters": timed}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tries", type=int, default=10)
    ap.add_argument("--depth", type=int, default=18, help="the base's conv blocks (default 18)")
    ap.add_argument("--extra", default="1,2", help="blocks the slower commits add (default 1,2: about 5%% and 10%%)")
    ap.add_argument("--size-iters", type=int, default=3000, help="iterations a depth in the true-size run")
    ap.add_argument("--out", type=Path, help="folder for gate-trials.txt")
    args = ap.parse_args(argv)
    extra = [int(x) for x in args.extra.split(",")]
    log = Evidence("gate-trials", args.out)
    log(f"before: {machine_state().line}")
    try:
        with tempfile.TemporaryDirectory(prefix="modbench-gate-trials-") as tmp:
            root = Path(tmp)
            repo, base, heads = user_repo(root, args.depth, extra)
            sizes = true_sizes(root, args.depth, extra, args.size_iters, log)
            log(f"\n`modbench gate --models models/net.py:build --base-ref BASE --resolution {RESOLUTION}` "
                f"(defaults: 300 iterations a side to start, threshold 5%, budget 180 s a model), "
                f"{args.tries} tries of each head, alternated:")
            results = {name: [] for name in heads}
            for k in range(args.tries):
                for name, head in heads.items():
                    res = one_gate(repo, base, head, root / f"work-{k}-{len(results[name])}-{name[:2]}")
                    results[name].append(res)
                    shown = (f"{res['ratio'] - 1:+.2%} [{res['low'] - 1:+.2%}, {res['high'] - 1:+.2%}], "
                             f"{res['iters']} iterations a side" if res.get("ratio") else res.get("why", ""))
                    log(f"  try {k + 1:2d} {name:10s} exit {res['exit']} {res['verdict']:13s} {shown} "
                        f"({res['wall']:.0f} s)")
            log("\nsummary")
            for name, rs in results.items():
                counts = {v: sum(r["verdict"] == v for r in rs) for v in sorted({r["verdict"] for r in rs})}
                walls = [r["wall"] for r in rs]
                size = next((sizes[k] for k in extra if name.startswith(f"+{k} ")), None)
                target = ("never slower: " + ("met" if not counts.get("slower") else "NOT met")) if size is None \
                    else _target(size[0], counts, len(rs))
                log(f"  {name:10s} {'true size %+.2f%%' % ((size[0] - 1) * 100) if size else '':18s} "
                    + ", ".join(f"{v} {n}" for v, n in counts.items())
                    + f"; wall {min(walls):.0f}-{max(walls):.0f} s (at most 180 s of timing a model); {target}")
    finally:
        log(f"after: {machine_state().line}")
        log.save()
    return 0


def _target(size: float, counts: dict, n: int) -> str:
    """Issue 33's targets for a slowdown of true size `size` (a ratio)."""
    if size >= 1.075:
        ok = counts.get("slower", 0) >= 0.9 * n
        return f"~10%: slower in >= 9 of 10: {'met' if ok else 'NOT met'}"
    ok = counts.get("unchanged", 0) == 0 and counts.get("slower", 0) + counts.get("inconclusive", 0) >= 0.8 * n
    return f"~5%: slower or inconclusive in >= 8 of 10, never unchanged: {'met' if ok else 'NOT met'}"


if __name__ == "__main__":
    sys.exit(main())
