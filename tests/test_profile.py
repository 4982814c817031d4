"""modbench profile: per-operator profiles from ONNX Runtime's and torch's own profilers,
beside a plain timed run, and the difference of two. Real exports and sessions of tiny
networks; every comparison is between figures measured in the same test."""
import copy
import json
import math
import platform

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from modbench.api import profile
from modbench.cli import main
from modbench.profiling import module_of_node
from modbench.report import profiles as P

FAST = dict(resolution=32, threads=1, iters=60, warmup=10, block=10, rounds=5, profile_iters=10)


class Mixer(nn.Module):
    """A conv stem, then a token section built of Reshape and Transpose (the
    channels-last detour of a hybrid network), then a conv; `planted` adds a wide
    3x3 convolution the plain network does not have."""

    def __init__(self, planted: bool = False):
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, 1, 1)
        self.norm = nn.LayerNorm(16)
        self.proj = nn.Linear(16, 16)
        self.extra = nn.Sequential(nn.Conv2d(16, 96, 3, 1, 1), nn.Conv2d(96, 16, 3, 1, 1)) if planted else None
        self.head = nn.Conv2d(16, 8, 1)

    def forward(self, x):
        x = self.stem(x)
        b, c, h, w = x.shape
        t = x.reshape(b, c, h * w).transpose(1, 2)          # tokens: B x HW x C
        t = self.proj(self.norm(t))
        x = t.transpose(1, 2).reshape(b, c, h, w) + x
        if self.extra is not None:
            x = self.extra(x)
        return self.head(x).mean((2, 3))


def _by(run, level, label):
    agg = run.by(level)
    return {r["key"]: r for _, r in agg[agg["label"] == label].iterrows()}


@pytest.fixture(scope="module")
def planted_run():
    torch.manual_seed(0)
    return profile({"mixer_plain": Mixer(), "mixer_planted": Mixer(planted=True)},
                   compare=[("mixer_planted", "mixer_plain")], **FAST)


def test_reshape_transpose_section_shows_those_types_mapped_to_their_modules(planted_run):
    types = _by(planted_run, "op_type", "mixer_plain")
    assert {"Reshape", "Transpose"} <= set(types), sorted(types)
    assert _by(planted_run, "category", "mixer_plain")[P.LAYOUT]["kernels_per_iter"] >= 2
    nodes = planted_run.nodes[planted_run.nodes["label"] == "mixer_plain"]
    # The Linear's MatMul/Gemm lands on its module path, the stem's Conv on `stem`.
    assert "proj" in set(nodes[nodes["category"] == P.MATMUL]["module"])
    assert "stem" in set(nodes[nodes["op_type"].str.contains("Conv")]["module"])


def test_the_profile_accounts_for_a_large_share_of_the_timed_latency(planted_run):
    for s in P.summaries(planted_run.nodes):
        # The profiled kernel time against the plain timed median, both measured here.
        assert s.accounted > 0.5, P.headline(s)
        shares = planted_run.nodes[planted_run.nodes["label"] == s.label]["share"].sum()
        assert shares == pytest.approx(1.0)
        scaled = planted_run.nodes[planted_run.nodes["label"] == s.label]["scaled_ms"].sum()
        assert scaled == pytest.approx(s.latency_ms)


def test_a_planted_convolution_raises_the_conv_share(planted_run):
    conv = P.CONV
    plain = _by(planted_run, "category", "mixer_plain")[conv]
    planted = _by(planted_run, "category", "mixer_planted")[conv]
    # Noise from the same run: the spread of the plain network's Conv share over its rounds.
    rounds = plain["round_ms"] / _by_total_rounds(planted_run, "mixer_plain")
    assert planted["share"] > plain["share"] + 3 * np.std(rounds) + 0.05, (planted["share"], plain["share"])
    [c] = planted_run.comparisons
    change = next(ch for ch in c.changes if ch.level == "category" and ch.key == conv)
    assert change.verdict == "more" and change.ratio > 1
    assert c.ratio > 1  # the planted network is slower in the paired timed run too


def _by_total_rounds(run, label):
    return run.by("category").query("label == @label")["round_ms"].sum()


def test_a_model_compared_with_itself_shows_no_type_changing_beyond_noise():
    torch.manual_seed(1)
    m = Mixer()
    run = profile({"mixer_a": m, "mixer_b": copy.deepcopy(m)}, compare=[("mixer_a", "mixer_b")], **FAST)
    [c] = run.comparisons
    judged = [ch for ch in c.changes if ch.level == "category" and ch.verdict != "small"]
    assert len(judged) >= 3
    for ch in judged:
        assert ch.verdict == "unchanged", ch
        # The noise, measured here: the interval the paired rounds give. A change outside
        # it is smaller than the threshold a verdict needs.
        assert ch.ci_low <= 1 <= ch.ci_high or abs(ch.ratio - 1) < P.THRESHOLD, ch
    assert not math.isnan(c.ratio) and c.n_blocks >= 2


def test_torch_profile_maps_aten_operators_to_module_paths():
    torch.manual_seed(2)
    run = profile({"mixer_torch": Mixer()}, runtime="torch-cpu", **FAST)
    nodes = run.nodes
    assert set(nodes["module"]) >= {"stem", "norm", "proj", "head"}
    cats = dict(zip(nodes["op_type"], nodes["category"]))
    assert cats["conv2d"] == P.CONV and cats["linear"] == P.MATMUL and cats["layer_norm"] == P.NORM
    assert {"reshape", "transpose"} <= set(nodes["op_type"])
    [s] = P.summaries(nodes)
    assert s.accounted > 0.5, P.headline(s)


def test_exported_node_names_map_back_to_module_paths():
    assert module_of_node("/layers.0/blocks/blocks.1/mlp/fc1/MatMul/MatMulAddFusion") == "layers.0.blocks.1.mlp.fc1"
    assert module_of_node("/patch_embed/proj/Conv_output_0_nchwc") == "patch_embed.proj"
    assert module_of_node("/blocks/blocks.1/blocks.1.0/conv_dw/Conv") == "blocks.1.0.conv_dw"
    assert module_of_node("ReorderOutput_token_12") == "(graph)"
    assert P.stage_of("layers.0.blocks.1.mlp.fc1") == "layers.0"
    assert P.block_of("layers.0.blocks.1.mlp.fc1") == "layers.0.blocks.1"
    assert P.block_of("layers.0.downsample.proj") == "layers.0.downsample"
    assert P.stage_of("patch_embed.proj") == "patch_embed"
    assert P.category("Conv", "1x32x16x16,32x1x3x3,32") == P.DW_CONV
    assert P.category("Conv", "1x3x64x64,32x3x7x7,32") == P.CONV
    assert P.category("aten::permute") == P.LAYOUT and P.category("Tile") == P.LAYOUT


def _custom_op_file(path):
    node = helper.make_node("Mystery", ["x"], ["y"], domain="com.example")
    graph = helper.make_graph([node], "custom", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 32, 32])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    model.ir_version = 9
    onnx.save(model, path)


def test_an_onnx_file_with_a_custom_op_is_refused_in_one_line(tmp_path, capsys):
    f = tmp_path / "custom.onnx"
    _custom_op_file(f)
    assert main(["profile", str(f), "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Mystery" in err, err
    assert not list(tmp_path.glob("p*"))


def test_cli_writes_versioned_files_and_the_report_draws_them(tmp_path, capsys):
    net = tmp_path / "net.py"
    net.write_text("from torch import nn\n\ndef build():\n    return nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), "
                   "nn.ReLU(), nn.Flatten(1), nn.Linear(8 * 32 * 32, 4))\n")
    spec = f"{net}:build"
    stem = tmp_path / "out" / "prof"
    args = ["profile", spec, "--resolution", "32", "--threads", "1", "--iters", "30", "--warmup", "5",
            "--block", "10", "--rounds", "2", "--profile-iters", "5", "--out", str(stem)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "by category" in text and "of it" in text
    doc = json.loads((tmp_path / "out" / "prof.json").read_text())
    assert doc["kind"] == "modbench.profile" and doc["version"] == 1
    assert doc["models"][0]["by_category"][0]["share"] > 0
    nodes = P.read_nodes(tmp_path / "out" / "prof.csv")
    assert set(nodes["kind"]) == {"modbench.profile-nodes"}
    # Never overwritten: the same --out again is refused in one line before any work.
    assert main(args) == 2
    assert "already exists" in capsys.readouterr().err
    report = tmp_path / "report"
    assert main(["report", "--profiles", str(stem) + ".csv", "--out", str(report)]) == 0
    assert list((report / "plots").glob("profile_*.png"))
    assert (report / "tables" / "profile_category_ort_cpu.tex").is_file()
    assert "Where the time goes" in (report / "README.md").read_text()


def test_core_ml_profile_needs_macos_in_one_line(capsys):
    if platform.system() == "Darwin":
        pytest.skip("on macOS the compute plan is read")
    assert main(["profile", "efficientmod_xxs", "--runtime", "coreml-cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs macOS" in err
