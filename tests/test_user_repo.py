"""modbench used from a user's own repository: the installed command, specs of the
user's models (files, modules, in-memory), portable file names, the gate's summary
and JSON output."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from modbench.cli import main
from modbench.common.fsio import portable_name

REPO = Path(__file__).resolve().parents[1]

NET = '''from torch import nn


def build(width: int = 8):
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(width, 10))
'''


@pytest.fixture
def user_checkout(tmp_path, monkeypatch):
    """A user's repository whose package is called `models`, like this suite's."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "__init__.py").write_text("")
    (tmp_path / "models" / "mynet.py").write_text(NET)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_python_m_modbench_is_the_command_line_and_the_users_models_package_is_theirs(user_checkout):
    # `python -m modbench.cli run --help` once printed nothing and exited 0.
    r = subprocess.run([sys.executable, "-m", "modbench.cli", "run", "--help"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("usage: modbench run") and "PATH.py:function" in r.stdout
    # Inside a user's repository with a `models` package of its own, `python -m
    # modbench` puts the repository first on sys.path: the user's `models` is theirs.
    r = subprocess.run([sys.executable, "-m", "modbench", "run", "models.mynet:build", "--iters", "20",
                        "--warmup", "2", "--block", "10", "--resolution", "32", "--threads", "1",
                        "--out", str(user_checkout / "m.csv")],
                       cwd=user_checkout, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "python -m modbench report" in r.stdout + r.stderr  # the hint names the command as called
    assert 'modbench = "modbench.cli:console"' in (REPO / "pyproject.toml").read_text()


def test_a_module_spec_named_like_a_modbench_folder_is_the_users(user_checkout, monkeypatch):
    from modbench.models import resolve_spec

    # This checkout's root is on the tests' path (for tools/); a user's process has no such folder.
    monkeypatch.setattr(sys, "path", [p for p in sys.path if Path(p or ".").resolve() != REPO])

    entry = resolve_spec("models.mynet:build")
    assert entry.builder("default", 32)[0].out_channels == 8
    assert sys.modules["models.mynet"].__file__ == str(user_checkout / "models" / "mynet.py")
    del sys.modules["models.mynet"], sys.modules["models"]


def test_a_file_spec_loads_under_a_private_name(user_checkout):
    from modbench.models import resolve_spec

    entry = resolve_spec("models/mynet.py:build", model_args={"width": 4})
    assert entry.name == "models/mynet.py:build"
    assert "models.mynet" not in sys.modules  # a file spec never takes a package's module name
    model = entry.builder("default", 32)
    assert model[0].out_channels == 4
    other = user_checkout / "other"
    other.mkdir()
    (other / "mynet.py").write_text(NET.replace("width: int = 8", "width: int = 6"))
    assert resolve_spec("other/mynet.py:build").builder("default", 32)[0].out_channels == 6


def test_portable_names_are_distinct_and_keep_plain_names():
    plain = "efficientmod_xxs.default.ort-cpu.t2.b1.r224"
    assert portable_name(plain) == plain  # files written before keep their names
    specs = ["mynet:build.default", "mynet_build.default", "mynet;build.default", "src/mynet.py:build",
             "src\\mynet.py:build", "CON", "a" * 300, "a" * 301]
    names = [portable_name(s) for s in specs]
    assert len(set(names)) == len(names)
    bad = set(':<>|*?"\\/\r\n ')
    for n in names:
        assert not bad & set(n) and len(n) <= 120 and n.upper() != "CON"


def test_a_gate_that_cannot_judge_is_not_green(tmp_path, capsys):
    from test_gate_check import write_run

    busy = {"invalid_reason": "machine busy: 80% of blocks", "invalid_codes": "busy", "valid": False}
    base = write_run(tmp_path / "base.csv", {"a": 1.0, "ref": 1.0}, seed=1, reference_ms=5.0, **busy)
    cur = write_run(tmp_path / "cur.csv", {"a": 1.0, "ref": 1.0}, seed=2, reference_ms=5.0, **busy)
    md = tmp_path / "gate.md"
    assert main(["check", str(cur), "--against", str(base), "--reference", "ref", "--markdown", str(md)]) == 0
    out = capsys.readouterr().out
    assert "not comparable" in out and "relative to ref" in out and " direct " not in out
    assert md.read_text().startswith("### ⚠️")
    assert main(["check", str(cur), "--against", str(base), "--reference", "ref", "--strict",
                 "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "modbench.check" and doc["status"] == "not comparable" and doc["exit_code"] == 1
    assert doc["rows"][0]["model"] == "a" and doc["rows"][0]["verdict"] == "not comparable"


def test_run_check_claims_json_and_the_api_on_user_models(user_checkout, capsys):
    """One tiny run of the user's file spec and an in-memory module through the API,
    its JSON, the same rows read back, and claims as JSON."""
    import numpy as np
    from torch import nn

    from modbench.api import measure, read

    df = measure({"conv": nn.Conv2d(3, 8, 3)},
                 out=user_checkout / "api.csv", iters=40, warmup=2, block=20, resolution=[32],
                 threads=[1], quiet=True)
    assert list(df["model"]) == ["conv"] and df.attrs["path"] == str(user_checkout / "api.csv")
    assert (user_checkout / "api.csv").is_file()  # out= keeps the results where the caller says
    x = df.loc[0, "samples_ms"]
    assert x.size == df.loc[0, "iters"] == 40 and np.isclose(np.median(x), df.loc[0, "median_ms"], rtol=1e-5, atol=2e-6)

    out = user_checkout / "run.csv"
    assert main(["run", "models/mynet.py:build", "conv", "--iters", "40", "--warmup", "2", "--block", "20",
                 "--resolution", "32", "--threads", "1", "--format", "json", "--out", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "modbench.run" and doc["version"] == 1 and doc["results"] == str(out)
    rows = {r["model"]: r for r in doc["rows"]}
    assert set(rows) == {"models/mynet.py:build", "conv"}
    back = read(out)
    for _, r in back.iterrows():
        j = rows[r["model"]]
        assert j["iters"] == r["iters"] == r["samples_ms"].size
        # The headline, else the median (rows from before the headline column); the CSV keeps 6 decimals.
        want = r["latency_ms"] if "latency_ms" in r and r["latency_ms"] == r["latency_ms"] else r["median_ms"]
        assert j["latency_ms"] == pytest.approx(want, rel=1e-5, abs=2e-6)
        assert ":" not in Path(j["samples_file"]).name  # portable for CI uploaders and Windows

    assert main(["claims", str(out), "--format", "json"]) == 0
    claims = json.loads(capsys.readouterr().out)
    assert claims["kind"] == "modbench.claims" and claims["claims"]
    assert {c["status"] for c in claims["claims"]} <= {"holds", "does not hold", "inconclusive", "not measured"}


def test_resolve_spec_takes_a_module_in_memory():
    from torch import nn

    from modbench.models import resolve_spec

    conv = nn.Conv2d(3, 8, 3)
    entry = resolve_spec(conv)
    built = entry.builder("default", 32)
    assert entry.name == "Conv2d" and built is not conv and built.weight.equal(conv.weight)
    other = resolve_spec(nn.Conv2d(3, 8, 3))  # other weights: another export-cache identity
    assert other.source_id != entry.source_id


def test_the_wheel_holds_the_command_and_every_data_file(tmp_path):
    """`pip install` of this repository gives a user everything: the console script,
    one import package, and the data files the code reads (an installed copy has no
    checkout beside it)."""
    import tomllib
    import zipfile

    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path), str(REPO)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    wheel = zipfile.ZipFile(next(tmp_path.glob("modbench-*.whl")))
    names = set(wheel.namelist())
    dirs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for package, folder in dirs.items():  # the folders are side by side in the checkout, never nested
        shipped = [package.replace(".", "/") + "/" + f.relative_to(REPO / folder).as_posix()
                   for f in (REPO / folder).rglob("*")
                   if f.suffix in (".py", ".tsv", ".txt") and "__pycache__" not in f.parts]
        assert shipped and not [f for f in shipped if f not in names], package
    assert {n.split("/")[0] for n in names if not n.startswith("modbench-")} == {"modbench"}
    ep = next(n for n in names if n.endswith("entry_points.txt"))
    assert "modbench = modbench.cli:console" in wheel.read(ep).decode()
    assert "modbench/__main__.py" in names and "modbench/constraints.txt" in names
