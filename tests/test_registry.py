"""Every registered model, runner and exporter, taken from the registries at collection
time: a model added with @register_model gets built, exported to ONNX through the real
exporter and checked for parity without anyone adding it to a list here."""
import re
from pathlib import Path

import pytest
import torch

import modbench.models as models
from modbench.runners import RUNNERS, RunnerUnavailable, register_runner
from modbench.runners.base import Runner
from modbench.vocab import DEVICES, UnknownDevice
from modbench.common.registry import Registry
from modbench.exporters import EXPORTERS, ExportCache, ExportError, Exporter, ExportRequest, OnnxExporter, get_exporter
from modbench.models import create_model, list_entries
from modbench.models.byo import USER_SOURCE
from modbench.models.registry import _REGISTRY

ENTRIES = list_entries()
# 64 is the smallest side at which every stage of these networks keeps more than one
# position (at 32 the last stage is 1x1, so attention, context kernels and pooling
# would be checked on a single pixel). Every model builds and runs at 64 except the
# ones below, found by building each at 32, 64, 96, ... 224:
NATIVE_ONLY = {
    # timm bakes a 7x7 attention bias into its last stage: only 224 fits it.
    "efficientformer_l1": 224,
}
SMALL = 64


def _param(e):
    marks = () if e.available else pytest.mark.skip(reason=f"{e.name}: {e.unavailable_reason}")
    return pytest.param(e, id=e.name, marks=marks)


def _wake_layer_scale(model: torch.nn.Module) -> None:
    """Layer scales start at a tiny constant (1e-4 in EfficientMod), which would let a
    wrong branch hide under the parity tolerance: set each such parameter to 1."""
    with torch.no_grad():
        for p in model.parameters():
            first = p.flatten()[0]
            if p.numel() > 1 and 0 < abs(float(first)) < 1e-3 and torch.all(p == first):
                p.fill_(1.0)


@pytest.mark.parametrize("entry", [_param(e) for e in ENTRIES])
def test_every_model_builds_exports_and_keeps_parity(entry, tmp_path):
    res = NATIVE_ONLY.get(entry.name, SMALL)
    torch.manual_seed(0)
    model = create_model(entry.name, resolution=res)
    _wake_layer_scale(model)
    # A cache of its own: an earlier test may have exported the same graph, and the
    # parity figure checked here must be this export's.
    exporter = OnnxExporter(cache=ExportCache(tmp_path))
    art = exporter.export(model, ExportRequest(entry.name, entry.default_variant, res, 1, entry.source_id))
    assert not art.meta["cache_hit"]  # a fresh cache: the parity figure is this export's
    assert art.input_shape == (1, 3, res, res)
    assert art.meta["parity_rel_err"] <= exporter.parity_tol


def test_native_only_models_really_refuse_the_small_resolution():
    """NATIVE_ONLY is a finding, not a wish: each model there fails at SMALL."""
    for name in NATIVE_ONLY:
        with pytest.raises(Exception):
            m = create_model(name, resolution=SMALL)
            with torch.no_grad():
                m(torch.zeros(1, 3, SMALL, SMALL))


def test_every_family_name_is_written_where_it_is_registered():
    """grep -rn '"name"' models/ finds the decorator that registers it."""
    source = "\n".join(p.read_text() for p in Path(models.__file__).parent.glob("*.py"))
    for e in ENTRIES:
        if e.paper.source.startswith(USER_SOURCE):
            continue  # a user's own model, registered at run time
        assert re.search(r'@\w*register\w*\(\s*"' + re.escape(e.name) + '"', source), e.name
    assert len(ENTRIES) >= 68


@pytest.mark.parametrize("name", sorted(RUNNERS))
def test_every_runner_is_registered_under_its_name_and_says_if_it_cannot_run(name):
    cls = RUNNERS[name]
    assert issubclass(cls, Runner) and cls.name == name
    assert cls.device in DEVICES
    runner = cls()
    try:
        runner.check_available()
    except RunnerUnavailable as exc:
        assert str(exc).strip() and "\n" not in str(exc), name


def test_runner_registration_checks_the_device_and_refuses_a_second_name():
    class Elsewhere(Runner):
        artifact = "onnx"
        device = "tpu"

        def open(self, artifact, input_shape, settings):
            raise AssertionError("never opened")

    with pytest.raises(UnknownDevice):
        register_runner("tpu-test")(Elsewhere)
    assert "tpu-test" not in RUNNERS
    Elsewhere.device = "cpu"
    with pytest.raises(RuntimeError, match="registered twice"):
        register_runner("ort-cpu")(Elsewhere)
    assert RUNNERS["ort-cpu"] is not Elsewhere


@pytest.mark.parametrize("fmt", sorted(EXPORTERS))
def test_every_exporter_is_registered_under_its_format(fmt):
    cls = EXPORTERS[fmt]
    assert issubclass(cls, Exporter) and cls.format == fmt
    ex = get_exporter(fmt)
    assert type(ex) is cls


def test_unknown_export_format_is_one_line():
    with pytest.raises(ExportError, match="unknown export format 'tflite'; known: "):
        get_exporter("tflite")


def test_models_runtimes_and_export_formats_are_registered_one_way():
    """The three registries are one type, filled by their decorators, and a misspelt
    name gets the same kind of one-line answer from each."""
    assert all(isinstance(r, Registry) for r in (_REGISTRY, RUNNERS, EXPORTERS))
    for registry, wrong in ((_REGISTRY, "efficientmod_xx"), (RUNNERS, "ort-cp"), (EXPORTERS, "onx")):
        with pytest.raises(ValueError, match=rf"unknown {registry.kind} '{wrong}'; did you mean"):
            registry.lookup(wrong)
    with pytest.raises(TypeError):
        RUNNERS["x"] = None  # read-only to its users: only a decorator adds a name
