"""The composite action (action.yml) end to end, without GitHub: a real git
repository of a user's own model package, its steps run as GitHub would run them
(expressions filled in, each `run:` in bash), the suite called as `python -m bench`.
The commit that adds work to the model is caught (exit 1, ❌); the commit that changes
nothing passes (exit 0, ✅). Small on purpose: a tiny net at 32 px, few iterations."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ACTION = yaml.safe_load((REPO / "action.yml").read_text())

NET = '''from torch import nn

DEPTH = {depth}


def build(width: int = 16):
    layers = [nn.Conv2d(3, width, 3, padding=1), nn.ReLU()]
    for _ in range(DEPTH):
        layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))
'''


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def user_repo(tmp_path_factory) -> tuple[Path, dict]:
    """A repository with a `models` package of its own (the name this suite also
    uses): base, a commit that makes the net 4x deeper, a commit touching only docs."""
    repo = tmp_path_factory.mktemp("user") / "repo"
    (repo / "models").mkdir(parents=True)
    _git(repo.parent, "init", "-q", "-b", "main", str(repo))
    _git(repo, "config", "user.email", "dev@example.com")
    _git(repo, "config", "user.name", "dev")
    (repo / "models" / "__init__.py").write_text("")
    commits = {}
    for label, depth, extra in (("base", 1, None), ("slower", 4, None), ("docs", 4, "README.md")):
        (repo / "models" / "tinynet.py").write_text(NET.format(depth=depth))
        if extra:
            (repo / extra).write_text("# my models\n")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", label)
        commits[label] = _git(repo, "rev-parse", "HEAD")
    return repo, commits


def _expr(text: str, ctx: dict) -> str:
    """GitHub's ${{ a || b }} for the names action.yml uses."""
    def value(m):
        for alt in m.group(1).split("||"):
            v = ctx.get(alt.strip(), "")
            if v:
                return v
        return ""
    return re.sub(r"\$\{\{\s*(.+?)\s*\}\}", value, text)


def _run_action(repo: Path, head: str, base: str, tmp: Path, inputs: dict) -> subprocess.CompletedProcess:
    """action.yml's steps, in order, as a runner runs them (setup-python and the pip
    install are the runner's; here the suite is this checkout, on PYTHONPATH)."""
    _git(repo, "checkout", "-q", "--detach", head)
    temp = tmp / "runner-temp"
    temp.mkdir()
    summary = tmp / "step-summary.md"
    ctx = {f"inputs.{k}": str(v.get("default", "")) for k, v in ACTION["inputs"].items()}
    ctx.update({f"inputs.{k}": str(v) for k, v in inputs.items()})
    ctx.update({"github.action_path": str(REPO), "runner.temp": str(temp), "github.workspace": str(repo),
                "github.event.pull_request.base.sha": base})
    env = dict(os.environ, RUNNER_TEMP=str(temp), GITHUB_STEP_SUMMARY=str(summary),
               # -P: like the installed `modbench` script, the current folder (the
               # user's checkout, with its own `models`) is not put first on sys.path.
               MODBENCH_CMD=f"{sys.executable} -P -m bench", PYTHONPATH=str(REPO))
    out = None
    for step in ACTION["runs"]["steps"]:
        if "uses" in step or "pip install" in step["run"]:
            continue
        step_env = dict(env, **{k: _expr(str(v), ctx) for k, v in step.get("env", {}).items()})
        out = subprocess.run(["bash", "-c", _expr(step["run"], ctx)], cwd=repo, env=step_env,
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            break
    out.summary = summary.read_text() if summary.exists() else ""
    return out


# Tiny and quick: 32 px, one thread, blocks of 20 (the verdict pairs block k with block k).
INPUTS = {"models": "models/tinynet.py:build", "iterations": 160, "block": 20, "resolution": 32,
          "threads": 1}


def test_action_catches_the_slower_commit(user_repo, tmp_path):
    repo, c = user_repo
    r = _run_action(repo, c["slower"], c["base"], tmp_path, INPUTS)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "REGRESSION" in r.stdout and "slower" in r.stdout
    assert r.summary.startswith("### ❌"), r.summary
    # Samples and artifacts carry portable names (no ':' for CI uploaders or Windows).
    files = [p.name for p in (tmp_path / "runner-temp" / "modbench-gate").rglob("*") if p.is_file()]
    assert any(f.endswith(".npz") for f in files) and not [f for f in files if ":" in f]


def test_action_passes_the_unchanged_commit(user_repo, tmp_path):
    repo, c = user_repo
    r = _run_action(repo, c["docs"], c["slower"], tmp_path, INPUTS)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "latency gate: OK" in r.stdout
    assert r.summary.startswith("### ✅"), r.summary


def test_action_refuses_bad_input_before_timing(user_repo, tmp_path):
    repo, c = user_repo
    r = _run_action(repo, c["docs"], c["slower"], tmp_path, dict(INPUTS, **{"fail-on-not-comparable": "maybe"}))
    assert r.returncode == 2 and "fail-on-not-comparable must be true or false" in r.stderr
