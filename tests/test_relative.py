"""Relative latency on a shared machine (first part): a gate that decides a change by
its interval against the threshold, and says when it cannot; a reference timed beside
the rows in the same rounds, each row's figure relative to it and calibrated; runs
compared on their relative figures when both timed the same reference. Real timed runs
of tiny models; the verdict rules on samples made here."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from modbench.cli import main
from modbench.gate.verdicts import judge_samples
from modbench.store import read_rows

NET = '''from torch import nn


def build(width: int = 8):
    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, 10))
'''
FAST = ["--iters", "60", "--warmup", "2", "--block", "10", "--resolution", "32", "--threads", "1"]


def _pair(change: float, noise: float, blocks: int = 20, block: int = 25, seed: int = 0):
    """Base and current samples timed in alternating blocks: a shared drift per block
    (cancels in the pairing), `noise` per block on each side, the current `change` slower."""
    rng = np.random.default_rng(seed)
    drift = np.repeat(np.exp(rng.normal(0, 0.2, blocks)), block)
    base = drift * np.repeat(np.exp(rng.normal(0, noise, blocks)), block) * (1 + rng.normal(0, 0.01, blocks * block))
    cur = drift * np.repeat(np.exp(rng.normal(0, noise, blocks)), block) * (1 + change) \
        * (1 + rng.normal(0, 0.01, blocks * block))
    return base, cur


@pytest.mark.parametrize("change, noise, verdicts", [
    (0.20, 0.01, {"slower"}),
    (0.00, 0.005, {"unchanged"}),
    (-0.20, 0.01, {"faster"}),
    (0.06, 0.05, {"inconclusive", "slower"}),   # above the threshold: never a pass
    (0.05, 0.03, {"inconclusive", "slower"}),
])
def test_a_change_is_decided_by_its_interval_against_the_threshold(change, noise, verdicts):
    seen = set()
    for seed in range(8):
        base, cur = _pair(change, noise, seed=seed)
        r = judge_samples(base, cur, threshold=0.05, block_size=25, paired=True, n_boot=400, seed=seed)
        seen.add(r["verdict"])
        if r["ratio"] > 1.05:
            assert r["verdict"] != "unchanged", r  # the estimate above the threshold never passes
        if r["verdict"] == "inconclusive":
            assert r["ci_low"] <= 1.05 <= r["ci_high"] and r["iterations_to_decide"] > base.size
        if r["verdict"] == "unchanged":
            assert r["ci_high"] < 1.05
        if r["verdict"] == "slower":
            assert r["ci_low"] > 1.05
    assert seen <= verdicts, seen


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("rel")
    (d / "net.py").write_text(NET)
    return d


def _run(d: Path, out: Path, *extra: str) -> int:
    old = os.getcwd()
    os.chdir(d)
    try:
        return main(["run", "net.py:build", *FAST, "--out", str(out), *extra])
    finally:
        os.chdir(old)


@pytest.fixture(scope="module")
def two_runs(user_dir, tmp_path_factory):
    a, b = user_dir / "a.csv", user_dir / "b.csv"
    assert _run(user_dir, a, "--reference", "mobilenetv2_100") == 0
    assert _run(user_dir, b, "--reference", "mobilenetv2_100") == 0
    return a, b


def test_a_reference_is_timed_beside_the_rows_and_each_row_is_relative_to_it(two_runs):
    a, _ = two_runs
    rows = read_rows(a)
    ref = [r for r in rows if ".ref-" in r.id]
    mine = [r for r in rows if r["model"] == "net.py:build"]
    assert len(ref) == 1 and len(mine) == 1 and ref[0]["model"] == "mobilenetv2_100"
    r = mine[0]
    assert r["rel_reference"] == "mobilenetv2_100" and r["interleave_group"] == ref[0]["interleave_group"]
    # The relative figure is of the two rows' own samples, paired round by round, over
    # the rounds both rows' probe readings and fast modes call normal (all, if too few).
    from modbench.measurement import MIN_NORMAL_BLOCKS, from_row
    x, y = r.samples(), ref[0].samples()
    k = min(x.size, y.size) // 10
    per_round = np.array([np.median(x[i * 10:(i + 1) * 10]) / np.median(y[i * 10:(i + 1) * 10]) for i in range(k)])
    both = from_row(r.data, x, r.probe()).normal_blocks()[:k] & from_row(ref[0].data, y, ref[0].probe()).normal_blocks()[:k]
    kept = per_round[both] if both.sum() >= MIN_NORMAL_BLOCKS else per_round
    assert ("slowed" in (r["rel_codes"] or "")) == (both.sum() < MIN_NORMAL_BLOCKS)
    assert r["rel_latency"] == pytest.approx(float(np.exp(np.mean(np.log(kept)))), rel=1e-5)
    assert r["rel_ci_low"] <= r["rel_latency"] <= r["rel_ci_high"]
    assert r["calibration"]  # where the milliseconds come from, or that there is none yet
    if r.get("calibrated_ms") is not None:
        assert "on this machine" in r["calibration"]
        assert r["calibrated_ms"] / r["rel_latency"] == pytest.approx(
            r["calibrated_ci_low_ms"] / r["rel_ci_low"], rel=1e-6)


def test_runs_that_timed_the_same_reference_are_compared_relative_to_it(two_runs, capsys):
    a, b = two_runs
    assert main(["check", str(b), "--against", str(a), "--format", "json"]) in (0, 1)
    doc = json.loads(capsys.readouterr().out)
    (row,) = [r for r in doc["rows"] if r["model"] == "net.py:build"]
    assert any("reference both runs timed" in w for w in doc["warnings"])
    if "busy machine" in row["note"] or "host slowed" in row["note"]:
        # A busy row is never judged, relative or not; nor a relative figure of a slowed host.
        assert row["mode"] == "relative to mobilenetv2_100 (not applied)"
    else:
        assert row["mode"] == "relative to mobilenetv2_100", row


def test_an_unknown_reference_is_refused_in_one_line(user_dir, capsys):
    assert _run(user_dir, user_dir / "x.csv", "--reference", "mobilenetv2_1000") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "mobilenetv2_100" in err and not (user_dir / "x.csv").exists()


def test_the_interleaved_gate_times_again_until_decided_within_its_budget(user_dir, tmp_path):
    """A threshold almost no interval clears keeps the pair inconclusive: it is timed
    again (here at most three times, whatever the machine's speed), every chunk a pair
    of rows, and the verdict rests on them all. Two sessions of one model may still
    differ by a percent or two, which such a threshold decides at once: then no chunk
    follows (that pair is timed again, as a swamped CI measurement is)."""
    from conftest import retried

    from modbench.env import cpu_fingerprint
    from modbench.gate import baselines
    from modbench.gate.interleaved import compare_ab, run_ab
    from modbench.gate.verdicts import GateSettings
    from modbench.schedule import TimingProtocol

    base = user_dir / "base.csv"
    assert _run(user_dir, base) == 0
    assert main(["baseline", "save", str(base), "--name", "b", "--dir", str(tmp_path / "bl")]) == 0
    base_csv, manifest = baselines.resolve("b", cpu_fingerprint(), tmp_path / "bl")
    settings = GateSettings(threshold=0.0001, alpha=0.001, n_boot=300)

    def gate(attempt):
        out = tmp_path / f"ab-{attempt}.csv"
        old = os.getcwd()
        os.chdir(user_dir)
        try:
            run_ab(base_csv, manifest, out, TimingProtocol(iters=40, auto=False, warmup=2, block=10, block_warmup=2),
                   log=lambda m: None, settings=settings, budget_s=300, max_chunks=3)
        finally:
            os.chdir(old)
        return out, [r.id for r in read_rows(out)]

    out, ids = retried(gate, lambda r: any(".k2." in i for i in r[1]))
    (row,) = compare_ab(out, settings).verdicts
    chunks = len([i for i in ids if i.endswith(".base")])
    assert 1 <= chunks <= 3 and not any(".k4." in i for i in ids), ids
    # Timed again only while undecided: a single chunk was decided at once.
    assert chunks > 1 or row.verdict in ("slower", "faster", "unchanged"), (row.verdict, ids)
    assert row.verdict != "not comparable"
    assert len(row.base_row.split(",")) == chunks


def test_precision_driven_rows_beside_a_reference_stop_on_their_relative_figure(user_dir, capsys):
    """Each row is timed until its figure relative to the reference is within --target-ci
    (or the budget or the ceiling ends it), and the reference exactly as long: every
    round pairs a block of each."""
    out = user_dir / "auto.csv"
    args = ["--iters", "auto", "--min-iters", "100", "--max-iters", "1500", "--target-ci", "0.03",
            "--time-budget", "60", "--warmup", "2", "--block", "10", "--resolution", "32", "--threads", "1"]
    old = os.getcwd()
    os.chdir(user_dir)
    try:
        assert main(["run", "net.py:build", *args, "--out", str(out), "--reference", "mobilenetv2_100"]) == 0
    finally:
        os.chdir(old)
    rows = read_rows(out)
    (ref,) = [r for r in rows if ".ref-" in r.id]
    (mine,) = [r for r in rows if r["model"] == "net.py:build"]
    assert mine.samples().size == ref.samples().size
    precise = (mine["rel_ci_high"] - mine["rel_ci_low"]) / 2 / mine["rel_latency"] <= 0.03
    assert precise == (not mine["rel_codes"]), mine
    if precise:  # it stopped on the relative figure, whatever its own headline's width
        assert mine.samples().size < 1500
    else:  # only the ceiling or the budget stops an imprecise one
        assert mine.samples().size == 1500 or "budget" in capsys.readouterr().out + str(mine["invalid_reason"])


def test_rows_of_two_runs_beside_one_reference_are_compared_through_it(two_runs):
    """The report's ratio of two rows timed apart, each beside the same reference: the
    ratio of their relative figures, its interval wider than either's."""
    import math

    from modbench.report.pairs import pairing_label, ratio

    a, b = (next(r for r in read_rows(f) if r["model"] == "net.py:build") for f in two_runs)
    r = ratio(a, b)
    assert r.estimate == pytest.approx(a["rel_latency"] / b["rel_latency"])
    assert "through the reference mobilenetv2_100" in pairing_label(r)
    widths = [math.log(x["rel_ci_high"] / x["rel_ci_low"]) for x in (a, b)]
    assert r.low < r.estimate < r.high and math.log(r.high / r.low) > max(widths)
    # Rows of one run are paired directly, block by block.
    ref = next(x for x in read_rows(two_runs[0]) if ".ref-" in x.id)
    assert ratio(a, ref).n_blocks > 0 and "interleaved blocks" in pairing_label(ratio(a, ref))


def test_the_report_shows_the_relative_figures_first(two_runs, tmp_path):
    """A run beside a reference: the report's first table is what a shared machine can
    cite, each cell the row's own stored figure, pointing at the row."""
    from modbench.report.inputs import read_inputs
    from modbench.report.tables import build_all

    a, _ = two_runs
    tables = build_all(read_inputs([a]))
    first = tables[0]
    assert first.name == "relative" and "mobilenetv2_100" in first.title
    (mine,) = [r for r in read_rows(a) if r["model"] == "net.py:build"]
    (cells,) = [row for row in first.rows if not isinstance(row, str) and row[3].ref and mine.id in row[3].ref]
    assert cells[3].value == pytest.approx(mine["rel_latency"])
    assert (cells[3].low, cells[3].high) == (pytest.approx(mine["rel_ci_low"]), pytest.approx(mine["rel_ci_high"]))
    if mine.get("calibrated_ms") is None:
        assert cells[4].text == "no calibration yet"
    else:
        assert cells[4].value == pytest.approx(mine["calibrated_ms"])


def test_the_relative_figure_rests_on_the_rounds_the_host_left_at_normal_speed():
    """Synthetic but exact, as the host behaved here: its slow phase slows the reference
    2x and the row only 1.6x, so the ratio of a slowed round is off by a fifth however
    well paired. Those rounds (the probe says 2x around them) are left out; a run with
    hardly any normal round says it is of a slowed host."""
    from modbench.machine_ref import Reference
    from modbench.measurement import MIN_NORMAL_BLOCKS, SLOWED, Measurement, relative_figure
    from modbench.stats import paired_ratio

    rng = np.random.default_rng(1)

    def pair(slow):
        blocks, size = slow.size, 20
        noise = lambda: rng.lognormal(0, 0.01, blocks * size)  # noqa: E731
        row = np.repeat(np.where(slow, 1.6, 1.0), size) * 6.0 * noise()
        ref = np.repeat(np.where(slow, 2.0, 1.0), size) * 2.0 * noise()
        probe = np.repeat(np.where(slow, 2.0, 1.0)[:, None], 2, axis=1) * 0.3
        return [Measurement(x, block=size, probe_ms=probe, reference=Reference(0.3, "test"), known_ms=k)
                for x, k in ((row, 6.0), (ref, 2.0))]

    slow = rng.random(40) < 0.4
    row, ref = pair(slow)
    rel = relative_figure(row, ref, n_resamples=300)
    assert rel.normal_rounds == int((~slow).sum()) and not rel.slowed and rel.codes == ()
    assert abs(rel.ratio.estimate / 3.0 - 1) < 0.01 and rel.ratio.n_blocks == rel.normal_rounds
    everything = paired_ratio(row.samples_ms, ref.samples_ms, 20, n_resamples=300)
    assert everything.estimate < 0.95 * 3.0  # what pairing alone would have published
    row, ref = pair(np.arange(40) >= MIN_NORMAL_BLOCKS - 1)  # three normal rounds only
    rel = relative_figure(row, ref, n_resamples=300)
    assert rel.slowed and rel.codes == (SLOWED,) and rel.normal_rounds == MIN_NORMAL_BLOCKS - 1
