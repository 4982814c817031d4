"""tools.selfbench, the benchmarks of the measuring itself: its machine probe and its
refusal to overwrite a measurement already made (the timed targets themselves run for
minutes and live in the notes, not here); tools.harness_overhead on a tiny run."""
import os
import re

import pytest

from tools import harness_overhead, selfbench


def test_the_machine_probe_times_every_cpu_it_may_run_on_and_gives_the_affinity_back():
    cpus = os.sched_getaffinity(0)
    state = selfbench.machine_state(0.5)
    assert set(state.slowed) == cpus
    assert all(0.0 <= v <= 1.0 for v in state.slowed.values())
    assert state.quiet == (max(state.slowed.values()) <= selfbench.QUIET_SLOWED)
    assert ("machine quiet" if state.quiet else "machine NOT quiet") in state.line
    assert all(f"cpu{c} " in state.line for c in cpus)
    assert os.sched_getaffinity(0) == cpus  # the probe pins itself; the process must not stay pinned


@pytest.mark.parametrize("existing", ["busy.txt", "busy/quiet-0.csv"])
def test_a_measurement_already_made_is_refused_not_overwritten(tmp_path, capsys, existing):
    evidence = tmp_path / existing
    evidence.parent.mkdir(parents=True, exist_ok=True)
    evidence.write_text("measured before\n")
    with pytest.raises(SystemExit) as stop:
        selfbench.main(["busy", "--out", str(tmp_path), "--runs", "1"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already holds a busy measurement" in err[0]
    assert evidence.read_text() == "measured before\n"


def test_the_overhead_benchmark_judges_medians_and_means_by_their_intervals(capsys):
    """A real (tiny) run of tools/harness_overhead.py: both statistics, each with its paired
    interval and a verdict the interval supports."""
    assert harness_overhead.main(["--model", "mobilenetv2_100", "--threads", "1", "--blocks", "4",
                                  "--block", "3", "--same-session"]) == 0
    lines = capsys.readouterr().out.splitlines()
    verdicts = {}
    for stat in ("median", "mean"):
        line = next(x for x in lines if x.startswith(f"overhead ratio (suite/bare) of {stat}s"))
        est, lo, hi, verdict = re.search(r"blocks ([\d.]+) \(95% CI ([\d.]+)-([\d.]+)\); target <= [\d.]+: (.+)$",
                                         line).groups()
        assert float(lo) <= float(est) <= float(hi)
        verdicts[stat] = verdict
    assert set(verdicts.values()) <= {"met", "NOT met", "undecided (the interval spans it)"}
