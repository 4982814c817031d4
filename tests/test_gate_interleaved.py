"""The interleaved mode end to end on this machine: real exports, real ORT sessions,
a few dozen iterations. It must catch EfficientMod-xxs with an extra MLP per block
(~27% more MACs) against the baseline's saved xxs graph."""
import json

from modbench.cli import main
from modbench.store import read_results


def test_interleaved_catches_the_slowed_model(tmp_path, capsys):
    base, root = tmp_path / "base.csv", tmp_path / "bl"
    assert main(["run", "efficientmod_xxs", "--threads", "1", "--iters", "10", "--warmup", "1",
                 "--block", "10", "--out", str(base)]) == 0
    assert main(["baseline", "save", str(base), "--name", "t", "--dir", str(root)]) == 0
    manifest = json.loads(next(root.glob("*/t/baseline.json")).read_text())
    assert list(manifest["artifacts"]) == ["efficientmod_xxs.repeat.ort-cpu.t1.b1.r224"]
    capsys.readouterr()

    ab = tmp_path / "ab.csv"
    rc = main(["check", "--interleaved", "--baseline", "t", "--baseline-dir", str(root),
               "--pair", "efficientmod_xxs_slowed=efficientmod_xxs", "--iters", "160", "--warmup", "3",
               # 20 paired blocks: the block bootstrap needs enough blocks to be decisive
               "--block", "8", "--out", str(ab), "--junit", str(tmp_path / "j.xml")])
    out = capsys.readouterr().out
    assert rc == 1, out
    assert "slower" in out and "interleaved" in out
    # Both graphs were timed as one group by the group timer every run uses: two rows,
    # the same protocol, block by block, and the baseline row keeps the baseline's graph.
    df = read_results(ab)
    rows = {r.row_id.rsplit(".", 1)[1]: r for _, r in df.iterrows()}
    assert set(rows) == {"base", "head"} and df.interleave_group.nunique() == 1
    assert all(r.iters == 160 and r.block_size == 8 and r.schedule == "round-robin" for r in rows.values())
    assert {json.loads(r.extra)["ab_side"] for r in rows.values()} == {"base", "head"}
    assert rows["base"].artifact_sha256 == read_results(base).artifact_sha256[0] != rows["head"].artifact_sha256
    # The verdict can be re-read from the results file it wrote, without timing again.
    assert main(["check", str(ab)]) == 1
    assert main(["check", "--interleaved", "--baseline", "t", "--baseline-dir", str(root),
                 "--out", str(ab)]) == 2  # never overwrites results
