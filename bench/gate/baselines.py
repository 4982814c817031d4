"""Where baselines live: <root>/<machine>/<name>/, one machine folder per fingerprint.

A baseline is a frozen copy of one results run (CSV, request, samples) plus, when
the export cache still holds them, the exact ONNX files that were timed (matched by
SHA-256), so the interleaved mode can time the baseline's graph beside the current
one. A baseline is never replaced silently: saving over a name is refused, and
--replace keeps the old one under <name>.replaced-<time>.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from filelock import FileLock

from modbench.common.fsio import atomic_write, default_cache_dir, ensure_writable_dir, portable_name, sha256_file
from modbench.common.invocation import command

from ..pipeline import RunRequest, plan
from ..store import read_results, run_config_path, samples_dir, stored_rows
from .verdicts import GateError, read_run, run_fingerprints

DEFAULT_ROOT = Path("baselines")
MANIFEST = "baseline.json"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # used with fullmatch: "$" lets "x\n" through


def machine_slug(fp: str) -> str:
    readable = re.sub(r"[^a-z0-9]+", "-", fp.lower()).strip("-")[:48]
    return f"{readable}-{hashlib.sha256(fp.encode()).hexdigest()[:8]}"


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name) or ".replaced-" in name:
        raise GateError(f"baseline name {name!r} must be letters, digits, '.', '_' or '-' (at most 64)")


def _single_fingerprint(csv_path: Path) -> str:
    fps = run_fingerprints(read_run(csv_path))
    if len(fps) != 1:
        raise GateError(f"{csv_path} mixes machines ({sorted(fps)}); a baseline is one machine's run")
    return fps.pop()


def _find_artifact(sha: str, cache_root: Path) -> Path | None:
    for side in sorted((cache_root / "onnx").glob("*.json")):
        try:
            if json.loads(side.read_text()).get("sha256") == sha:
                art = side.with_suffix(".onnx")
                if art.is_file() and sha256_file(art) == sha:
                    return art
        except (OSError, ValueError):
            continue
    return None


def save(results_csv, name: str, root=DEFAULT_ROOT, replace: bool = False,
         cache_root: Path | None = None) -> tuple[Path, dict]:
    results_csv = Path(results_csv)
    _check_name(name)
    fp = _single_fingerprint(results_csv)
    df = read_results(results_csv)
    incomplete = _incomplete(results_csv, df)
    if incomplete:
        raise GateError(f"{results_csv} is an unfinished run ({incomplete}); finish it with "
                        f"`{command()} run --resume {results_csv}` before saving it as a baseline")
    for row in stored_rows(df, results_csv):
        row.arrays()  # a baseline is only made of rows whose samples hold up (SamplesError: one line)
    machine = Path(root) / machine_slug(fp)
    target = machine / name
    ensure_writable_dir(machine, "baseline folder")
    if target.exists() and not replace:
        old = json.loads((target / MANIFEST).read_text()) if (target / MANIFEST).is_file() else {}
        raise GateError(f"baseline {name!r} already exists for this machine (saved {old.get('saved', '?')} "
                        f"from {old.get('source', '?')}); pick another name or pass --replace "
                        "(the old one is kept)")
    tmp = Path(tempfile.mkdtemp(dir=machine, prefix=f".{name}."))
    try:
        shutil.copy2(results_csv, tmp / results_csv.name)
        if run_config_path(results_csv).is_file():
            shutil.copy2(run_config_path(results_csv), tmp / run_config_path(results_csv).name)
        shutil.copytree(samples_dir(results_csv), tmp / samples_dir(results_csv).name)
        artifacts, cache_root = {}, cache_root or default_cache_dir()
        if "artifact_sha256" in df:
            (tmp / "artifacts").mkdir()
            for _, r in df.iterrows():
                sha = r.get("artifact_sha256")
                art = _find_artifact(sha, cache_root) if isinstance(sha, str) and sha else None
                if art is not None:
                    file = f"{portable_name(r['row_id'])}.onnx"
                    shutil.copy2(art, tmp / "artifacts" / file)
                    artifacts[r["row_id"]] = f"artifacts/{file}"
        commits = sorted({str(c) for c in df.get("git_commit", [])})
        manifest = {"name": name, "fingerprint": fp, "results": results_csv.name,
                    "source": str(results_csv), "saved": dt.datetime.now().isoformat(timespec="seconds"),
                    "git_commit": commits, "rows": len(df), "models": sorted(set(df["model"])),
                    "artifacts": artifacts}
        atomic_write(tmp / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))
        read_results(tmp / results_csv.name)  # the copy must load before it becomes the baseline
        _claim(tmp, target, name, replace)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target, manifest


def _claim(tmp: Path, target: Path, name: str, replace: bool) -> None:
    """Give the built folder its name atomically: under the name's lock, the check that
    it is free and the rename are one step, so of two saves of one name one wins and
    the other is refused (never both told they succeeded)."""
    with FileLock(str(target.with_name(f".{name}.lock"))):
        if target.exists():
            if not replace:
                raise GateError(f"baseline {name!r} was just saved by another process; pick another name "
                                "or pass --replace (the old one is kept)")
            stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
            os.replace(target, target.with_name(f"{name}.replaced-{stamp}"))
        os.rename(tmp, target)


def _incomplete(csv_path: Path, df) -> str:
    """Rows the run asked for that are not in the file ('' if complete or unknown)."""
    cfg = run_config_path(csv_path)
    if not cfg.is_file():
        return ""
    try:
        want = {j.row_id for j in plan(RunRequest.from_json(json.loads(cfg.read_text())))}
    except Exception:  # a request this checkout cannot plan: judge by the rows alone
        return ""
    missing = want - set(df["row_id"])
    return f"{len(missing)} of {len(want)} rows missing" if missing else ""


def entries(root=DEFAULT_ROOT, fp: str | None = None) -> list[dict]:
    """Manifests of saved baselines (of one machine when fp is given), replaced ones excluded."""
    root = Path(root)
    dirs = [root / machine_slug(fp)] if fp else sorted(p for p in root.glob("*") if p.is_dir())
    out = []
    for d in dirs:
        for m in sorted(d.glob(f"*/{MANIFEST}")):
            if ".replaced-" in m.parent.name:
                continue
            try:
                out.append(dict(json.loads(m.read_text()), path=str(m.parent)))
            except ValueError:
                continue
    return out


def resolve(name: str, fp: str, root=DEFAULT_ROOT) -> tuple[Path, dict]:
    """The results CSV of baseline `name` saved on the machine `fp`."""
    _check_name(name)
    d = Path(root) / machine_slug(fp) / name
    if not (d / MANIFEST).is_file():
        others = [e for e in entries(root) if e["name"] == name]
        hint = (f"; it exists for other machines ({', '.join(sorted({e['fingerprint'] for e in others}))}): "
                "compare with --against PATH --allow-mismatch" if others
                else f"; save one with `{command()} baseline save RESULTS.csv --name {name}`")
        raise GateError(f"no baseline {name!r} for machine {fp!r} under {root}{hint}")
    manifest = json.loads((d / MANIFEST).read_text())
    return d / manifest["results"], dict(manifest, path=str(d))
