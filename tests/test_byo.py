"""Bring your own model: timm:NAME, PATH.onnx and module:function beside registered
models in one interleaved run, and one line + exit 2 for each kind of bad input.
Real exports and ONNX Runtime sessions; tiny models, few iterations."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from modbench.cli import main
from modbench.store import read_results, read_run_config
from modbench.common.fsio import sha256_file
from modbench.models.complexity import count_params
from modbench.common.fsio import portable_name

REPO = Path(__file__).resolve().parents[1]
FAST = ["--iters", "6", "--warmup", "1", "--block", "3", "--block-warmup", "0", "--threads", "1"]
TINY_NET = textwrap.dedent("""
    from torch import nn

    def build(width=8):
        return nn.Sequential(nn.Conv2d(3, width, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(width, 10))

    def not_a_module():
        return 42
""")


def tiny() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 5))


def export_onnx(path: Path, res: int = 64, dynamic: bool = False) -> nn.Module:
    model = tiny().eval()
    axes = {"image": {0: "N", 2: "H", 3: "W"}} if dynamic else None
    with torch.no_grad():
        torch.onnx.export(model, (torch.randn(1, 3, res, res),), str(path), dynamo=False,
                          input_names=["image"], dynamic_axes=axes)
    return model


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """A module of the user's own in a folder on sys.path, under a name unique to the test."""
    name = f"usernet_{os.getpid()}_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / f"{name}.py").write_text(TINY_NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_timm_onnx_and_callable_beside_a_registered_model(tmp_path, user_module):
    onnx_file = tmp_path / "mine.onnx"
    ref = export_onnx(onnx_file)
    out = tmp_path / "run.csv"
    assert main(["run", "timm:test_convnext", str(onnx_file), f"{user_module}:build", "mobilenetv2_100",
                 "--model-arg", "width=16", "--top1", f"{onnx_file}=61.5", "--top1",
                 f"{user_module}:build=70.25", "--out", str(out), *FAST]) == 0
    df = read_results(out).set_index("model")
    assert list(df.index) == ["timm:test_convnext", "mine.onnx", f"{user_module}:build", "mobilenetv2_100"]
    assert df.interleave_group.nunique() == 1  # one interleaved run

    t = df.loc["timm:test_convnext"]
    assert t.resolution == 160  # timm's default input size for this model
    assert t.params_m > 0 and t.macs_g > 0 and t.export_parity_rel_err < 1e-4

    o = df.loc["mine.onnx"]
    assert o.artifact_sha256 == sha256_file(onnx_file)  # the file as given, not re-exported
    assert o.exporter == "none (ONNX file)" and o.resolution == 64 and o.top1 == 61.5
    assert o.params_m == pytest.approx(count_params(ref) / 1e6)

    c = df.loc[f"{user_module}:build"]
    assert c.resolution == 224 and c.top1 == 70.25 and c.export_parity_rel_err < 1e-4
    assert c.params_m == pytest.approx((3 * 16 * 9 + 16 + 16 * 10 + 10) / 1e6)  # width=16 reached it
    assert "width=16" in c.paper_source

    cfg = read_run_config(out)
    assert cfg["model_args"] == {"width": 16} and cfg["top1"]["mine.onnx"] == 61.5
    assert str(onnx_file) in cfg["models"]  # absolute, so --resume finds it from anywhere


def test_user_models_reach_table1_and_the_accuracy_plot(tmp_path, user_module):
    out = tmp_path / "run.csv"
    assert main(["run", f"{user_module}:build", "efficientmod_xxs", "--top1", f"{user_module}:build=70.5",
                 "--resolution", "64", "--out", str(out), *FAST]) == 0
    rep = tmp_path / "report"
    assert main(["report", str(out), "--out", str(rep)]) == 0
    readme = (rep / "README.md").read_text()
    assert "Your models (not in the paper)" in readme
    user_line = next(ln for ln in readme.splitlines() if ln.startswith(f"| {user_module}:build |"))
    assert "| 70.5 |" in user_line
    from modbench.report import inputs, plots
    col = inputs.read_inputs([out]).columns[0]
    assert plots.user_top1(col.find(f"{user_module}:build")) == (70.5, False)
    assert plots.user_top1(col.find("efficientmod_xxs")) is None  # the paper's figure places it
    assert list((rep / "plots").glob("accuracy_vs_latency_*.png"))


def test_dynamic_onnx_dims_need_batch_and_resolution(tmp_path, capsys):
    onnx_file = tmp_path / "dyn.onnx"
    export_onnx(onnx_file, dynamic=True)
    assert main(["run", str(onnx_file), "--resolution", "64", "--out", str(tmp_path / "a.csv"), *FAST]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "batch is dynamic (N); give --batch" in err
    assert main(["run", str(onnx_file), "--batch", "1", "--out", str(tmp_path / "b.csv"), *FAST]) == 2
    assert "image size is dynamic (H); give --resolution" in capsys.readouterr().err
    out = tmp_path / "ok.csv"
    assert main(["run", str(onnx_file), "--batch", "2", "--resolution", "48", "--out", str(out), *FAST]) == 0
    row = read_results(out).iloc[0]
    assert (row.batch, row.resolution) == (2, 48)


def test_callable_from_pythonpath_in_a_fresh_process(tmp_path):
    """The CLI as a user runs it: their package on PYTHONPATH, started from elsewhere."""
    pkg = tmp_path / "lib" / "mypkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "net.py").write_text(TINY_NET)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "lib"))
    out = work / "r.csv"
    proc = subprocess.run([sys.executable, str(REPO / "bench.py"), "run", "mypkg.net:build", "--model-arg",
                           "width=4", "--resolution", "32", "--out", str(out), *FAST],
                          cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert read_results(out).iloc[0].model == "mypkg.net:build"


@pytest.mark.parametrize("argv, message", [
    (["timm:convnext_atoo"], "unknown timm model 'convnext_atoo'; did you mean convnext_atto"),
    (["convnext_atto"], "unknown model 'convnext_atto'; timm has it: name it timm:convnext_atto"),
    (["{tmp}/junk.onnx"], "is not a valid ONNX model"),
    (["{tmp}/absent.onnx"], "does not exist"),
    (["modbench_no_such_module_xyz:build"], "module 'modbench_no_such_module_xyz' does not import"),
    (["{mod}:nothing"], "has no callable 'nothing'"),
    (["{mod}:not_a_module"], "returned int, not a torch.nn.Module"),
    (["{mod}:build", "--model-arg", "depth=3"], "failed: TypeError"),
    (["{mod}:build", "--model-arg", "3=4"], "--model-arg takes KEY=VALUE"),
    (["efficientmod_xxs", "--model-arg", "a=1"], "applies to module:function models"),
    (["{mod}:build", "--top1", "efficientmod_xxs=70"], "not one of your own models"),
    (["{mod}:build", "--top1", "{mod}:build=high"], "top-1 must be a number"),
    (["{tmp}/fixed.onnx", "--resolution", "96"], "fixes image size at 64"),
    (["{tmp}/fixed.onnx", "--checkpoint", "{tmp}/w.pth"], "carries its own weights"),
    (["{tmp}/fixed.onnx", "--runtime", "torch-cpu"], "needs a PyTorch model"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, user_module, capsys):
    (tmp_path / "junk.onnx").write_text("this is not a protobuf\n")
    export_onnx(tmp_path / "fixed.onnx")
    argv = [a.format(tmp=tmp_path, mod=user_module) for a in argv]
    message = message.format(mod=user_module)
    assert main(["run", *argv, "--out", str(tmp_path / "x.csv"), *FAST]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.csv").exists()


def test_two_specs_of_one_name_are_refused(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    export_onnx(tmp_path / "a" / "net.onnx", res=32)
    export_onnx(tmp_path / "b" / "net.onnx", res=64)
    assert main(["run", str(tmp_path / "a" / "net.onnx"), str(tmp_path / "b" / "net.onnx"),
                 "--out", str(tmp_path / "x.csv"), *FAST]) == 2
    err = capsys.readouterr().err
    assert "would both be called 'net.onnx'" in err and err.count("\n") == 1


def test_checkpoint_loads_into_a_callable_model_strictly(tmp_path, user_module):
    from modbench.models import ModelError, create_model, resolve_spec

    entry = resolve_spec(f"{user_module}:build", model_args={"width": 6})
    state = create_model(entry.name).state_dict()
    state = {k: torch.full_like(v, 0.5) for k, v in state.items()}
    torch.save(state, tmp_path / "w.pth")
    m = create_model(entry.name, checkpoint=tmp_path / "w.pth")
    assert torch.equal(m.state_dict()["0.weight"], torch.full((6, 3, 3, 3), 0.5))
    del state["4.bias"]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(ModelError, match="1 missing"):
        create_model(entry.name, checkpoint=tmp_path / "bad.pth")


def test_core_ml_export_of_your_own_models(tmp_path, user_module, capsys):
    pytest.importorskip("coremltools")
    out = tmp_path / "pkgs"
    assert main(["export", f"{user_module}:build", "timm:test_convnext", "--format", "coreml",
                 "--model-arg", "width=4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{user_module}:build (default, 224px" in printed and "timm:test_convnext (default, 160px" in printed
    # Named portably: no ':' (Windows and CI artifact uploaders refuse it).
    packages = sorted(p.name for p in out.iterdir())
    assert len(packages) == 2 and all(p.endswith(".mlpackage") and ":" not in p for p in packages)
    assert (out / f"{portable_name(user_module + ':build')}.mlpackage").is_dir()
    assert (out / f"{portable_name('timm:test_convnext')}.mlpackage").is_dir()
