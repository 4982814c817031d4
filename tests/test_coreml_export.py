"""Real Core ML conversions on Linux: specs, names, shapes and op histograms.

Converting takes 6-40 s a model here, so the packages are made once per module in
a private cache and shared by the tests."""
import os
import shutil

import pytest

from modbench.exporters import CoreMLExporter, ExportCache, ExportError, ExportRequest, get_exporter
from modbench.exporters.coreml import inspect_package, is_macos
from modbench.models import create_model, get_entry


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("coreml-cache")
    old = os.environ.get("MODBENCH_CACHE")
    os.environ["MODBENCH_CACHE"] = str(d)
    yield d
    if old is None:
        os.environ.pop("MODBENCH_CACHE", None)
    else:
        os.environ["MODBENCH_CACHE"] = old


@pytest.fixture(scope="module")
def diag(cache_dir):
    """Released vs channels-first xxs, converted through the diagnose command's path."""
    from modbench.commands.coreml_diagnose import diagnose_rows
    return {r["model"]: r for r in diagnose_rows(["efficientmod_xxs", "efficientmod_xxs_cf"])}


def _request(name):
    e = get_entry(name)
    return ExportRequest(name, e.default_variant, 224, 1, e.source_id)


@pytest.fixture(scope="module")
def modelbench_mnv2(cache_dir):
    exporter = CoreMLExporter(image_input=True, cache=ExportCache(cache_dir))
    return exporter, exporter.export(create_model("mobilenetv2_100"), _request("mobilenetv2_100"))


def test_released_xxs_spec_and_transposes(diag):
    r = diag["efficientmod_xxs"]
    meta_in = inspect_package(r["package"])
    assert meta_in["inputs"] == [{"name": "input", "kind": "tensor", "shape": [1, 3, 224, 224],
                                  "dtype": "FLOAT32"}]
    assert [o["name"] for o in meta_in["outputs"]] == ["logits"]
    assert meta_in["outputs"][0]["shape"] == [1, 1000]
    assert meta_in["spec_version"] >= 7  # iOS16 ML program
    # Every permute of the channels-last model survives as a transpose.
    assert r["transpose"] >= 30 and r["layer_norm"] == 23 and r["linear"] > 50
    # fp16 weights: ~2 bytes a parameter.
    assert 1.8 < r["weights_mb"] / r["params_m"] < 2.2


def test_channels_first_xxs_has_no_block_transposes(diag):
    r, base = diag["efficientmod_xxs_cf"], diag["efficientmod_xxs"]
    # The only transposes left are inside the 3 attention blocks (q^T k), one each.
    assert r["transpose"] == 3
    assert r["linear"] == 1 and r["conv"] >= 70  # the head is the only Linear left
    assert r["layer_norm"] == base["layer_norm"]  # written so coremltools fuses it
    assert r["ops"] < base["ops"]
    assert r["op_histogram"] == inspect_package(r["package"])["ops"]


def test_modelbench_form_of_mobilenetv2(modelbench_mnv2):
    exporter, art = modelbench_mnv2
    assert art.path.name.endswith(".mlpackage") and art.path.is_dir()
    assert art.meta["inputs"] == [{"name": "input", "kind": "image", "shape": [224, 224], "color": "RGB"}]
    ops = art.meta["op_histogram"]
    assert ops.get("transpose", 0) == 0 and ops["conv"] == 52
    if not is_macos():
        assert art.meta["parity_rel_err"] is None and "macOS" in art.meta["parity_checked"]
    again = exporter.export(create_model("mobilenetv2_100"), _request("mobilenetv2_100"))
    assert again.meta["cache_hit"] and again.path == art.path


def test_damaged_package_is_not_reused(modelbench_mnv2, tmp_path):
    exporter, art = modelbench_mnv2
    copy = tmp_path / "cache"
    shutil.copytree(exporter.cache.root, copy)
    cache = ExportCache(copy)
    key = art.path.name.removesuffix(".mlpackage")
    assert cache.lookup("coreml", key, ".mlpackage") is not None
    weight = next((copy / "coreml" / art.path.name).rglob("weight.bin"))
    with open(weight, "r+b") as f:
        f.write(b"\x00\x01\x02")
    assert cache.lookup("coreml", key, ".mlpackage") is None


def test_bad_options_are_one_clear_error():
    with pytest.raises(ExportError, match="precision"):
        get_exporter("coreml", precision="int8")
    with pytest.raises(ExportError, match="deployment target"):
        get_exporter("coreml", target="iOS12")
    with pytest.raises(ExportError, match="dynamic"):
        CoreMLExporter().export(create_model("efficientmod_xxs"),
                                ExportRequest("efficientmod_xxs", "repeat", 224, 1, "x", dynamic_batch=True))
