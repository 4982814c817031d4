"""The peers written here from shared/models/*.md (EdgeViT, Mobile-Former, VAN,
FocalNet@4M) and the Table 6 / Fig. 9 / App. L ablation networks: sizes against
the facts files and the paper (ONNX parity of every model: tests/test_registry.py)."""
import pytest

from modbench.models import ModelError, create_model, get_entry, list_entries
from modbench.models.complexity import count_macs, count_params

# Counted from the reference code (shared/models/*.md), random init.
FACTS_PARAMS = {
    "edgevit_xxs": 4_067_704, "edgevit_xs": 6_770_056, "edgevit_s": 13_108_168,
    "mobileformer_508m": 13_976_976, "van_b0": 4_105_800,
}
FACTS_MACS_G = {"edgevit_xxs": 0.551, "edgevit_xs": 1.128, "edgevit_s": 1.911,
                "mobileformer_508m": 0.4985, "van_b0": 0.864}


@pytest.mark.parametrize("name", FACTS_PARAMS)
def test_params_within_one_percent_of_facts_and_macs_match(name):
    m = create_model(name)
    assert count_params(m) == pytest.approx(FACTS_PARAMS[name], rel=0.01)
    assert count_macs(m, 224) / 1e9 == pytest.approx(FACTS_MACS_G[name], rel=0.01)


def test_paper_sizes_of_the_new_table1_rows():
    for name in ("edgevit_xxs", "edgevit_xs", "edgevit_s"):
        e = get_entry(name)
        assert e.available and "table1" in e.suites
        assert round(count_params(create_model(name)) / 1e6, 1) == e.paper.params_m
    # The paper prints 14.8M for Mobile-Former-508M (MobileOne-S4's figure); the
    # network with the published weights has 13.98M: kept apart, and recorded.
    mf = get_entry("mobileformer_508m")
    assert mf.paper.params_m == 14.8 and "slip" in mf.assumption


def test_focalnet_4m_is_timm_focalnet_with_the_recorded_assumed_config():
    from timm.models.focalnet import FocalNet

    e = get_entry("focalnet_4m")
    m = create_model("focalnet_4m")
    assert isinstance(m, FocalNet)
    assert "not published" in e.assumption and "approximate" in e.tags
    assert round(count_params(m) / 1e6, 1) == e.paper.params_m == 4.6
    assert round(count_macs(m, 224) / 1e9, 1) == e.paper.macs_g == 0.7


def test_table4_suite():
    assert [e.name for e in list_entries("table4")] == ["van_b0", "focalnet_4m", "efficientmod_xxs"]
    assert get_entry("van_b0").paper.cpu_ms == 16.3


def test_edgevit_takes_the_image_size_at_construction():
    m = create_model("edgevit_xxs", resolution=256)
    assert m.img_size == 256
    assert count_macs(m, 256) / 1e9 == pytest.approx(0.725, rel=0.01)
    with pytest.raises(ModelError, match="multiple of 32"):
        create_model("edgevit_xxs", resolution=240)


def test_mobileformer_is_resolution_agnostic():
    m = create_model("mobileformer_508m", resolution=256)
    assert count_macs(m, 256) / 1e6 == pytest.approx(641.7, rel=0.01)


def test_table6_isotropic_sizes_match_the_paper():
    rows = {e.name: e for e in list_entries("table6")}
    assert set(rows) == {"mbconv_iso_6m", "efficientmod_iso_6m", "mbconv_iso_12m", "efficientmod_iso_12m",
                         "mbconv_hier_6m", "efficientmod_hier_6m", "mbconv_hier_13m", "efficientmod_s_conv"}
    for name in ("mbconv_iso_6m", "efficientmod_iso_6m", "efficientmod_iso_12m", "mbconv_iso_12m"):
        m = create_model(name)
        # 12.4M printed for MBConv 12M; App. B's recipe counts 12.65M (see the facts file)
        assert count_params(m) / 1e6 == pytest.approx(rows[name].paper.params_m, rel=0.021), name
        assert count_macs(m, 224) / 1e9 == pytest.approx(rows[name].paper.macs_g, rel=0.03), name
    iso = create_model("efficientmod_iso_6m")
    assert iso.patch_embed.kernel_size == (14, 14) and len(iso.blocks) == 11
    assert not rows["efficientmod_hier_6m"].available and not rows["mbconv_hier_6m"].available


def test_hierarchical_mbconv_is_marked_approximate_with_its_counts():
    e = get_entry("mbconv_hier_13m")
    assert "approximate" in e.tags and "approximate" in e.assumption
    m = create_model("mbconv_hier_13m")
    assert round(count_params(m) / 1e6, 1) == e.paper.params_m == 12.9
    assert count_macs(m, 224) / 1e9 == pytest.approx(1.460, abs=0.002)  # paper: 1.6 G
    assert not any(type(b).__name__ == "EfficientModBlock" for b in m.modules())


def test_fig9_sweeps_widths_and_kernels_of_both_blocks():
    from modbench.models.mbconv_ablation import FIG9_KERNELS, FIG9_WIDTHS

    rows = list_entries("fig9")
    assert len(rows) == 2 * (len(FIG9_WIDTHS) + len(FIG9_KERNELS)) - 2  # two points are Table 6 rows
    assert {"efficientmod_iso_6m", "mbconv_iso_6m"} <= {e.name for e in rows}
    assert all(e.assumption for e in rows)
    k11 = create_model("mbconv_iso_c196_d11_k11")
    assert k11.blocks[0].dw[0].kernel_size == (11, 11)
    wide = create_model("efficientmod_iso_c384_d11_k7")
    assert wide.head.in_features == 384


def test_separate_mlp_variant_keeps_the_paper_size():
    e = get_entry("efficientmod_s_conv_sepmlp")
    m = create_model("efficientmod_s_conv_sepmlp")
    assert round(count_params(m) / 1e6, 1) == e.paper.params_m == 12.9
    assert round(count_macs(m, 224) / 1e9, 1) == e.paper.macs_g == 1.5
    assert e.assumption and "appendix_l" in e.suites


def test_fig9_points_place_each_network_in_its_sweeps():
    from modbench.models.mbconv_ablation import fig9_points

    assert fig9_points("efficientmod_iso_6m") == [("width", "efficientmod", 196), ("kernel", "efficientmod", 7)]
    assert fig9_points("mbconv_iso_6m") == [("width", "mbconv", 196), ("kernel", "mbconv", 3)]
    assert fig9_points("mbconv_iso_c196_d11_k9") == [("kernel", "mbconv", 9)]
    assert fig9_points("efficientmod_iso_c320_d11_k7") == [("width", "efficientmod", 320)]
    assert fig9_points("efficientmod_iso_12m") == []  # depth 13: Table 6 only
    assert fig9_points("efficientmod_xxs") == []
