"""modbench as a user installs it: a wheel built from this checkout, installed into a
fresh virtual environment (its libraries are the test environment's, so the test stays
small), used from a user's own git repository that has packages called `models`,
`common` and `src/mynet` of its own. The command line, `import modbench` with a
BatchNorm model, and the composite action's steps (`modbench gate`) on real commits:
one that makes the model slower, one that changes nothing, one that adds a model."""
from __future__ import annotations

import os
import re
import site
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
ACTION = yaml.safe_load((REPO / "action.yml").read_text())

NET = '''from torch import nn

from common.blocks import conv_block   # the user's own `common` package

DEPTH = {depth}


def build(width: int = 16):
    layers = [conv_block(3, width)]
    for _ in range(DEPTH):
        layers.append(conv_block(width, width))
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10))
'''
BLOCKS = '''from torch import nn


def conv_block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())
'''
SRC_NET = '''from torch import nn


def build():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
'''


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The bin folder of a fresh environment with this checkout's wheel installed."""
    tmp = tmp_path_factory.mktemp("installed")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp / "dist"), str(REPO)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    wheel = next((tmp / "dist").glob("modbench-*.whl"))
    py = _fresh_env(tmp / "venv")
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index",
                        "-q", str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return py.parent


def _fresh_env(env: Path) -> Path:
    """A new virtual environment (its python) that sees the test environment's
    libraries (torch, ONNX Runtime, ...) after its own folder, so modbench itself
    comes only from what is installed into it."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    py = env / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "_test_libraries.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return py


def _user_env(bin_dir: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MODBENCH_PYTHONPATH")}
    return dict(env, PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", **extra)


@pytest.fixture(scope="module")
def user_repo(tmp_path_factory) -> tuple[Path, dict]:
    """The user's repository: `models/tinynet.py` (importing the user's `common`), and
    `src/mynet/model.py`. Commits: base, 4x deeper (slower), docs only, a new model."""
    repo = tmp_path_factory.mktemp("user") / "repo"
    for pkg in ("models", "common", "src/mynet"):
        (repo / pkg).mkdir(parents=True)
        (repo / pkg / "__init__.py").write_text("")
    (repo / "common" / "blocks.py").write_text(BLOCKS)
    (repo / "src" / "mynet" / "model.py").write_text(SRC_NET)
    _git(repo.parent, "init", "-q", "-b", "main", str(repo))
    _git(repo, "config", "user.email", "dev@example.com")
    _git(repo, "config", "user.name", "dev")
    commits = {}
    for label, depth, extra in (("base", 1, None), ("slower", 4, None), ("docs", 4, "README.md"),
                                ("added", 4, "models/wide.py")):
        (repo / "models" / "tinynet.py").write_text(NET.format(depth=depth))
        if extra == "models/wide.py":
            (repo / extra).write_text(NET.format(depth=1).replace("width: int = 16", "width: int = 24"))
        elif extra:
            (repo / extra).write_text("# my models\n")
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", label)
        commits[label] = _git(repo, "rev-parse", "HEAD")
    return repo, commits


def test_the_installed_package_is_one_import_name(installed):
    py = installed / "python"
    r = subprocess.run([str(py), "-c", "import modbench, modbench.models, modbench.common, sys; "
                        "print(modbench.__version__, modbench.__file__); "
                        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
                        "('bench', 'models', 'exporters', 'common')))"],
                       capture_output=True, text=True, timeout=120, cwd="/")
    assert r.returncode == 0, r.stderr
    version, where = r.stdout.splitlines()[0].split()
    assert version == VERSION and str(REPO) not in where and "site-packages" in where
    assert r.stdout.splitlines()[1] == "[]"  # no top-level name but modbench
    r = subprocess.run([str(installed / "modbench"), "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"modbench {VERSION}"
    r = subprocess.run([str(installed / "modbench"), "constraints"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == (REPO / "constraints.txt").read_text()
    assert re.search(r"^onnxruntime==", r.stdout, re.M) and re.search(r"^torch==", r.stdout, re.M)


def test_the_users_own_packages_import_beside_modbench(installed, user_repo, tmp_path):
    """The CLI and the API in a repository with its own `models`, `common` and a src
    layout: the user's packages are theirs; a src-layout module spec gets a hint."""
    repo, c = user_repo
    _git(repo, "checkout", "-q", "--detach", c["base"])
    env = _user_env(installed)
    out = tmp_path / "run.csv"
    r = subprocess.run(["modbench", "run", "models.tinynet:build", "src/mynet/model.py:build", "--iters", "20",
                        "--warmup", "2", "--block", "10", "--resolution", "32", "--threads", "1", "--out",
                        str(out)], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "next:\n  modbench report" in r.stderr + r.stdout  # hints name the command the user has
    r = subprocess.run(["modbench", "run", "mynet.model:build", "--iters", "20"], cwd=repo, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "src/mynet/model.py:build" in r.stderr and "MODBENCH_PYTHONPATH=src" in r.stderr
    r = subprocess.run(["modbench", "run", "mynet.model:build", "--iters", "20", "--warmup", "2", "--block",
                        "10", "--resolution", "32", "--threads", "1", "--out", str(tmp_path / "src.csv")],
                       cwd=repo, env=dict(env, MODBENCH_PYTHONPATH="src"), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr

    # The API, from a script at the repository's root (its own `models` first on sys.path).
    script = repo / "notebook.py"
    script.write_text(
        "import models.tinynet, common.blocks\n"
        "import modbench\n"
        "from torch import nn\n"
        "m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))\n"
        "m.train()\n"
        "df = modbench.measure({'bn': m, 'tiny': models.tinynet.build()}, iters=20, warmup=2, block=10,\n"
        "                      resolution=[32], threads=[1], quiet=True)\n"
        "print(list(df['model']), df.attrs['path'], m.training, models.__file__)\n")
    r = subprocess.run([str(installed / "python"), str(script)], cwd=repo, env=env, capture_output=True,
                       text=True, timeout=300)
    script.unlink()
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:4] == ["['bn',", "'tiny']", "None", "True"]  # temp folder gone; caller's module untouched
    assert r.stdout.split()[4] == str(repo / "models" / "__init__.py")


def _expr(text: str, ctx: dict) -> str:
    """GitHub's ${{ a || b }} for the names action.yml uses."""
    def value(m):
        for alt in m.group(1).split("||"):
            v = ctx.get(alt.strip(), "")
            if v:
                return v
        return ""
    return re.sub(r"\$\{\{\s*(.+?)\s*\}\}", value, text)


def _run_action(bin_dir: Path, repo: Path, head: str, base: str, tmp: Path, inputs: dict):
    """action.yml's steps, in order, as a runner runs them (setup-python, the cache and
    the pip install are the runner's: here the wheel is installed already)."""
    _git(repo, "checkout", "-q", "--detach", head)
    temp = tmp / "runner-temp"
    temp.mkdir()
    summary, outputs = tmp / "step-summary.md", tmp / "outputs.txt"
    ctx = {f"inputs.{k}": str(v.get("default", "")) for k, v in ACTION["inputs"].items()}
    ctx.update({f"inputs.{k}": str(v) for k, v in inputs.items()})
    ctx.update({"github.action_path": str(REPO), "runner.temp": str(temp), "github.workspace": str(repo),
                "github.event.pull_request.base.sha": base})
    env = _user_env(bin_dir, RUNNER_TEMP=str(temp), GITHUB_STEP_SUMMARY=str(summary), GITHUB_OUTPUT=str(outputs),
                    GITHUB_ACTIONS="true")
    out = None
    for step in ACTION["runs"]["steps"]:
        if "uses" in step or "pip install" in step["run"]:
            continue
        step_env = dict(env, **{k: _expr(str(v), ctx) for k, v in step.get("env", {}).items()})
        out = subprocess.run(["bash", "-e", "-c", _expr(step["run"], ctx)], cwd=repo, env=step_env,
                             capture_output=True, text=True, timeout=400)
        if out.returncode != 0:
            break
    out.summary = summary.read_text() if summary.exists() else ""
    out.outputs = dict(line.split("=", 1) for line in outputs.read_text().splitlines()) if outputs.exists() else {}
    return out


# Tiny and quick: 32 px, one thread, blocks of 20 (the verdict pairs block k with block k).
INPUTS = {"models": "models/tinynet.py:build", "iterations": 160, "block": 20, "resolution": 32, "threads": 1}


def _groups_closed(stderr: str) -> bool:
    return stderr.count("::group::") == stderr.count("::endgroup::")


def test_the_gate_catches_the_slower_commit(installed, user_repo, tmp_path):
    repo, c = user_repo
    r = _run_action(installed, repo, c["slower"], c["base"], tmp_path, INPUTS)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "REGRESSION" in r.stdout and "slower" in r.stdout and _groups_closed(r.stderr)
    assert r.summary.startswith("### ❌"), r.summary
    assert str(tmp_path) not in r.summary and str(repo) not in r.summary  # no runner paths
    assert Path(r.outputs["results"]).is_file() and r.outputs["exit-code"] == "1"
    files = [p.name for p in (tmp_path / "runner-temp" / "modbench-gate").rglob("*") if p.is_file()]
    assert any(f.endswith(".npz") for f in files) and not [f for f in files if ":" in f]
    assert _git(repo, "worktree", "list").count("\n") == 0  # the base's worktree is gone


def test_the_gate_passes_the_unchanged_commit(installed, user_repo, tmp_path):
    repo, c = user_repo
    r = _run_action(installed, repo, c["docs"], c["slower"], tmp_path, INPUTS)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "latency gate: OK" in r.stdout and r.summary.startswith("### ✅"), r.summary


def test_a_model_the_pull_request_adds_is_new_not_a_failure(installed, user_repo, tmp_path):
    repo, c = user_repo
    r = _run_action(installed, repo, c["added"], c["docs"], tmp_path,
                    dict(INPUTS, models="models/tinynet.py:build,\nmodels/wide.py:build"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "new: `models/wide.py:build`" in r.summary and "1 new" in r.summary, r.summary
    assert "models/tinynet.py:build" in r.summary


@pytest.mark.parametrize("bad, says", [
    ({"fail-on-not-comparable": "maybe"}, "must be true or false"),
    ({"threshold": "abc"}, "--threshold"),
    ({"models": "models/tinynet.py:build,"}, "an empty item"),
    ({"models": "models/tinynet.py:build models/wide.py:build"}, "holds a space"),
    ({"iterations": "40"}, "paired block"),
])
def test_bad_input_is_refused_before_timing(installed, user_repo, tmp_path, bad, says):
    repo, c = user_repo
    r = _run_action(installed, repo, c["docs"], c["slower"], tmp_path, dict(INPUTS, **bad))
    assert r.returncode == 2 and says in r.stderr, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    assert set(r.outputs) <= {"key"}  # only the pins step's: no gate output from a refused run
    assert not (tmp_path / "runner-temp" / "modbench-gate" / "baselines").exists()


def test_the_documented_git_install_form_works(installed, tmp_path):
    """`pip install "modbench[cpu] @ git+URL@vVERSION"`, the docs' form, from a clone
    tagged as a release is (with --no-deps: the libraries are there already)."""
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(REPO), str(clone))
    _git(clone, "tag", "-f", f"v{VERSION}")  # a clone of a tagged checkout has it already
    py = _fresh_env(tmp_path / "venv")
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q",
                        "--no-deps", "--no-build-isolation", f"modbench[cpu] @ git+file://{clone}@v{VERSION}"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(py.parent / "modbench"), "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"modbench {VERSION}", r.stderr
