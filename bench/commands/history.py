"""modbench history add|show|regressions|html: latency across commits (docs/history.md)."""
from __future__ import annotations

from pathlib import Path

from modbench.common.errors import EXIT_REGRESSION, UsageError
from modbench.common.invocation import command

from ..history import changes as C
from ..history.site import write_site
from ..history.store import DEFAULT_STORE, HistoryStore, commit_info, current_branch, entry_from_results, full_commit
from ..textable import render
from . import COMMANDS
from . import _args as A


def _store_arg(p) -> None:
    p.add_argument("--store", default=DEFAULT_STORE, help=f"the history folder (default {DEFAULT_STORE}/)")


def _filters(p, model: bool = False) -> None:
    p.add_argument("--branch", help="only runs added from this branch")
    p.add_argument("--machine", help="only machines whose fingerprint contains this text")
    p.add_argument("--runtime", help="only this runtime (e.g. ort-cpu)")
    if model:
        p.add_argument("--model", help="only this model")


def _detector(p) -> None:
    d = C.Params()
    p.add_argument("--alpha", type=A.open_unit_float, default=d.alpha,
                   help=f"a change point is kept when its test's p is below this (default {d.alpha})")
    p.add_argument("--penalty", type=A.positive_float, default=d.penalty,
                   help=f"the search's penalty per change point, times log(commits) (default {d.penalty})")
    p.add_argument("--min-effect", type=A.fraction, default=d.min_effect,
                   help=f"smaller steps are not change points (default {d.min_effect:.0%})")
    p.add_argument("--invalid-weight", type=A.open_unit_float, default=d.invalid_weight,
                   help=f"an INVALID row's weight against a valid row's 1 (default {d.invalid_weight})")


def add_parser(sub) -> None:
    p = sub.add_parser("history", help=COMMANDS["history"],
                       **A.examples("history add results/main.csv", "history show net.py:build",
                                    "history regressions --since HEAD~10 --threshold 5%", "history html site/"))
    hsub = p.add_subparsers(dest="history_command", required=True, parser_class=type(p))
    a = hsub.add_parser("add", help="record a results run at its commit",
                        **A.examples("history add results/main.csv",
                                     "history add results/main.csv --commit $GITHUB_SHA --branch main"))
    a.add_argument("results", metavar="RESULTS.csv", help="the results CSV of the run (with its samples)")
    _store_arg(a)
    a.add_argument("--commit", type=A.non_empty, help="the commit the run timed (default: HEAD of --repo)")
    a.add_argument("--branch", type=A.non_empty, help="the branch it was on (default: --repo's current branch)")
    a.add_argument("--repo", default=".", help="the git repository of the models (default .)")
    a.set_defaults(func=add)

    s = hsub.add_parser("show", help="a model's figures commit by commit, with its change points",
                        **A.examples("history show net.py:build", "history show net.py:build --branch main"))
    s.add_argument("model", help="the model (as in its results rows)")
    _store_arg(s)
    _filters(s)
    _detector(s)
    s.set_defaults(func=show)

    r = hsub.add_parser("regressions", help="change points that made a model slower; exit 1 on an open one",
                        **A.examples("history regressions", "history regressions --since abc1234 --threshold 3%",
                                     "history regressions --threshold-for net.py:build=10%"))
    _store_arg(r)
    _filters(r, model=True)
    r.add_argument("--since", help="only changes after this recorded commit (a git revision, an id or a prefix)")
    r.add_argument("--repo", default=".", help="the git repository --since is resolved in (default .)")
    r.add_argument("--threshold", type=A.slowdown, default=0.05,
                   help="smallest slowdown that counts (default 5%%)")
    r.add_argument("--threshold-for", action="append", default=[], metavar="MODEL=FRACTION",
                   help="a model's own threshold (repeatable)")
    _detector(r)
    r.set_defaults(func=regressions)

    h = hsub.add_parser("html", help="a static dashboard (no server): trends, change points, filters",
                        **A.examples("history html site/", "history html site/ --store .modbench-history"))
    h.add_argument("out", metavar="OUT/", help="a new or empty folder for the site")
    _store_arg(h)
    h.add_argument("--threshold", type=A.slowdown, default=0.05,
                   help="smallest slowdown the index lists as open (default 5%%)")
    _detector(h)
    h.set_defaults(func=html)


def _params(args) -> C.Params:
    return C.Params(penalty=args.penalty, alpha=args.alpha, min_effect=args.min_effect,
                    invalid_weight=args.invalid_weight)


def add(args) -> int:
    repo = Path(args.repo)
    info = commit_info(repo, args.commit)
    branch = args.branch or current_branch(repo)
    entry = entry_from_results(Path(args.results), info, branch)
    path = HistoryStore(Path(args.store)).add(entry)
    models = sorted({r["model"] for r in entry["rows"]})
    print(f"added {len(entry['rows'])} rows ({', '.join(models)}) at commit {info.commit[:12]} "
          f"({branch}) to {path}")
    print(f"next:\n  {command('history show ' + models[0])}")
    return 0


def _series(args, model: str | None) -> tuple[list, list[C.Series]]:
    entries = HistoryStore(Path(args.store)).entries()
    series = C.build_series(entries, branch=args.branch, machine=args.machine, runtime=args.runtime, model=model)
    return entries, C.analyse(series, _params(args))


def _change_line(c: C.ChangePoint) -> str:
    invalid = c.invalid_before + c.invalid_after
    weighed = f"; {invalid} INVALID weighed less" if invalid else ""
    return (f"{'SLOWER' if c.slower else 'faster'} {c.change_pct:+.1f}% [{(c.low - 1) * 100:+.1f}%, "
            f"{(c.high - 1) * 100:+.1f}%] in {c.range} ({c.subject!r}): {c.before_ms:.4g} -> {c.after_ms:.4g} ms "
            f"({c.n_before} commits before, {c.n_after} after{weighed}; p={c.p:.2g})")


def show(args) -> int:
    _, series = _series(args, args.model)
    if not series:
        raise UsageError(f"no history of model {args.model!r} in {args.store} with these filters")
    for s in series:
        starts = {c.index: c for c in s.changes}
        print(s.label)
        rows = [{"commit": p.commit[:10], "date": p.date[:10], "branch": p.branch,
                 "ms": p.value_ms, "ci": "-" if p.low_ms is None else f"{p.low_ms:.4g}-{p.high_ms:.4g}",
                 "valid": "VALID" if p.valid else "INVALID", "change": _step(starts.get(i)),
                 "subject": p.subject[:40]} for i, p in enumerate(s.points)]
        print(render(rows, ["commit", "date", "branch", "ms", "ci", "valid", "change", "subject"],
                     {"ms": "latency ms", "ci": "95% CI", "change": "step"}))
        for c in s.changes:
            print("  change point: " + _change_line(c))
        if not s.changes:
            print(f"  no change point in {len(s.points)} commits")
        print()
    return 0


def _step(c: C.ChangePoint | None) -> str:
    return "" if c is None else f"{c.change_pct:+.1f}% from here"


def _per_model(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        if not sep or not name:
            raise UsageError(f"--threshold-for {item!r}: expected MODEL=FRACTION (e.g. mynet:build=10%)")
        try:
            out[name] = A.slowdown(value)
        except Exception as exc:  # argparse.ArgumentTypeError: the type's one-line message
            raise UsageError(f"--threshold-for {item!r}: {exc}") from None
    return out


def regressions(args) -> int:
    entries, series = _series(args, args.model)
    if not series:
        raise UsageError(f"no history in {args.store} with these filters")
    since = C.resolve_commit(entries, full_commit(Path(args.repo), args.since)) if args.since else None
    found = C.open_regressions(series, C.commit_order(entries), threshold=args.threshold,
                               per_model=_per_model(args.threshold_for), since=since)
    changes = sum(len(s.changes) for s in series)
    invalid = sum(not p.valid for s in series for p in s.points)
    print(f"{len(series)} series, {sum(len(s.points) for s in series)} points, {changes} change points"
          + (f" ({invalid} INVALID points weighed {args.invalid_weight})" if invalid else ""))
    for s in series:
        for c in s.changes:
            open_ = any(r.change is c for r in found)
            print(f"{'REGRESSION' if open_ else 'change'}: {s.label}: {_change_line(c)}")
    if found:
        print(f"{len(found)} open slowdown(s) past the threshold"
              + (f" since {since[:10]}" if since else "") + f"; the commits: git log "
              + " ".join(sorted({r.change.range for r in found})))
        return EXIT_REGRESSION
    print("no open slowdown past the threshold" + (f" since {since[:10]}" if since else ""))
    return 0


def html(args) -> int:
    entries = HistoryStore(Path(args.store)).entries()
    index = write_site(Path(args.out), entries, _params(args), args.threshold)
    print(f"dashboard written: {index} (open it from disk, or serve the folder, e.g. on GitHub Pages)")
    return 0
