import onnx
import pytest

from modbench.exporters import ExportCache, ExportError, ExportRequest, OnnxExporter
from modbench.models import create_model, get_entry


def request(name="efficientmod_xxs", **kw):
    e = get_entry(name)
    fields = dict(model=name, variant=e.default_variant, resolution=224, batch=1, source_id=e.source_id)
    fields.update(kw)
    return ExportRequest(**fields)


@pytest.fixture(scope="module")
def xxs():
    return create_model("efficientmod_xxs")


def test_export_is_static_checked_and_cached(xxs, tmp_path):
    ex = OnnxExporter(cache=ExportCache(tmp_path))
    art = ex.export(xxs, request())
    assert not art.meta["cache_hit"]
    assert art.meta["parity_rel_err"] < 1e-4
    assert art.meta["opset"] == 17 and art.meta["exporter"] == "torchscript"
    g = onnx.load(str(art.path))
    dims = [d.dim_value for d in g.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 224, 224]
    again = ex.export(xxs, request())
    assert again.meta["cache_hit"] and again.path == art.path


def test_cache_key_covers_what_changes_the_graph(xxs, tmp_path):
    ex = OnnxExporter(cache=ExportCache(tmp_path))
    base = ex.key_fields(request())
    for change in ({"variant": "reshape"}, {"resolution": 256}, {"batch": 2},
                   {"source_id": "other"}, {"checkpoint_id": "sha256:x"}, {"dynamic_batch": True}):
        assert ex.key_fields(request(**change)) != base
    assert OnnxExporter(opset=18, cache=ExportCache(tmp_path)).key_fields(request()) != base


def test_damaged_cache_file_is_rebuilt(xxs, tmp_path):
    ex = OnnxExporter(cache=ExportCache(tmp_path))
    art = ex.export(xxs, request())
    data = bytearray(art.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    art.path.write_bytes(bytes(data))
    rebuilt = ex.export(xxs, request())
    assert not rebuilt.meta["cache_hit"]
    onnx.checker.check_model(str(rebuilt.path))


def test_dynamic_batch_axis(xxs, tmp_path):
    art = OnnxExporter(cache=ExportCache(tmp_path)).export(xxs, request(dynamic_batch=True))
    dim0 = onnx.load(str(art.path)).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_param == "batch"


def test_parity_gate_refuses_divergent_export(xxs, tmp_path):
    # A zero tolerance turns the real float32 disagreement (~1e-6) into a divergence.
    ex = OnnxExporter(parity_tol=0.0, cache=ExportCache(tmp_path))
    with pytest.raises(ExportError, match=r"diverges from PyTorch: relative error .* > tolerance 0; not timed"):
        ex.export(xxs, request())
    assert not list((tmp_path / "onnx").glob("*.onnx"))


def test_dynamo_exporter_refuses_low_opset():
    with pytest.raises(ValueError, match="opset 18"):
        OnnxExporter(exporter="dynamo", opset=17)
