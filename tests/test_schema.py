"""The results schema: one table of columns, versioned files, typed rows.

Real files only: the results committed under results/ (version 1, written before
the schema had a number) and files the real writer makes."""
import csv
import json
import io
import shutil
from pathlib import Path

import numpy as np
import pytest

from modbench import schema
from modbench.cli import main
from modbench.measurement import Measurement, Validity
from modbench.pipeline import Job, job_identity
from modbench.schema import (COLUMNS, GROUPS, PARTS, SCHEMA, SCHEMA_VERSION, TYPES, Protocol, Provenance,
                          ResultRow, cell_text, cell_value)
from modbench.store import (ResultsWriter, read_results, read_rows, read_run_config,
                         run_config_path, samples_dir)

REPO = Path(__file__).resolve().parent.parent
OLD = REPO / "results" / "table4-ort-cpu.csv"  # committed before schema_version existed


def _copy(src: Path, folder: Path) -> Path:
    dst = folder / src.name
    shutil.copy(src, dst)
    shutil.copytree(samples_dir(src), samples_dir(dst))
    if run_config_path(src).exists():
        shutil.copy(run_config_path(src), run_config_path(dst))
    return dst


def _row(i: int, x: np.ndarray) -> ResultRow:
    m = Measurement(x, block=8)
    job = Job("efficientmod_xxs", "repeat", "ort-cpu", 1, 1, 224)
    session = {"threads": 1, "provider": "CPUExecutionProvider", "device_name": "cpu-x",
               "runtime_settings": {"spinning": True, "inter_op_threads": 1}}
    return ResultRow.compose(
        job_identity(job, "run1", session, row_id=f"{job.row_id}.{i}"),
        {k: v for k, v in session.items() if k != "threads"},
        {"cpu_name": "cpu", "cpu_logical": 2, "hostname": "h", "git_dirty": False, "cluster": "local",
         "node": "-:h"},
        {"params_m": 4.7, "opset": 17, "artifact_format": "onnx"},
        m.summary(Validity()),
        Protocol(threads_requested=1, schedule="single", interleave_group="run1:0", block_size=8,
                 block_warmup=1),
        Provenance(timestamp="2026-11-30T00:00:00+00:00", extra={"note": i}))


# --- one table --------------------------------------------------------------------------

def test_every_column_is_written_once_with_its_type_group_and_meaning():
    names = [c.name for c in SCHEMA]
    assert len(names) == len(set(names)) == len(COLUMNS)
    for c in SCHEMA:
        assert c.type in TYPES and c.group in GROUPS, c
        assert c.meaning.strip() and "\n" not in c.meaning, c
    # Every column is in exactly one part, and every part is a frozen dataclass.
    in_parts = [f for g in GROUPS for f in PARTS[g].__dataclass_fields__]
    assert sorted(in_parts) == sorted(names)
    with pytest.raises(AttributeError):
        PARTS["identity"]().model = "x"
    assert schema.REQUIRED and all(schema.BY_NAME[c].required for c in schema.REQUIRED)
    assert schema.IDENTITY == ("model", "variant", "runtime", "device", "precision", "threads", "batch",
                               "resolution")
    assert COLUMNS[0] == "schema_version"


def test_the_docs_list_every_column_as_the_schema_says():
    text = (REPO / "docs" / "results-store.md").read_text()
    start = text.index("<!-- columns:")
    table = text[text.index("\n", start) + 1:text.index("<!-- /columns -->")]
    assert table == schema.docs_table(), ("docs/results-store.md's column table is not the schema's: "
                                          "paste the output of `python -m modbench.schema` between its markers")


def test_cells_read_back_as_their_type():
    assert cell_value("threads", "2.0") == 2 and cell_value("threads", "") is None
    assert cell_value("valid", "False") is False and cell_value("median_ms", "1.5") == 1.5
    assert cell_value("runtime_settings", '{"a": 1}') == '{"a": 1}'
    for name, text in (("threads", "2.5"), ("batch", "big"), ("valid", "maybe")):
        with pytest.raises(schema.CellError):
            cell_value(name, text)
    assert cell_text("threads", 2.0) == "2" and cell_text("extra", {"b": 1, "a": 2}) == '{"a": 2, "b": 1}'


def test_a_column_given_twice_is_refused_never_overwritten():
    with pytest.raises(ValueError, match="given twice"):
        ResultRow.compose({"runtime": "ort-cpu"}, {"runtime": "onnxruntime"})
    with pytest.raises(ValueError, match="not in the results schema"):
        ResultRow.compose({"no_such_column": 1})
    # The same value from two sources is one value.
    assert ResultRow.compose({"torch_version": "2"}, {"torch_version": "2"})["torch_version"] == "2"


# --- versions -------------------------------------------------------------------------

def test_every_committed_results_file_reads_at_its_own_version_with_typed_values():
    # Results files (a profile's node table under results/profiles/ is another kind of CSV).
    files = sorted(p for p in (REPO / "results").rglob("*.csv") if ".samples" not in p.parts
                   and "samples_file" in p.open().readline().split(","))
    assert len(files) > 10
    for f in files:  # evidence of every release stays readable by this one
        df = read_results(f)
        v = df.attrs["schema_version"]
        assert 1 <= v <= SCHEMA_VERSION and set(df["schema_version"]) == {v}, f
    assert read_results(OLD).attrs["schema_version"] == 1
    rows = read_rows(OLD)
    r = rows[0]
    assert isinstance(r["iters"], int) and isinstance(r["batch"], int) and isinstance(r["threads"], int)
    assert isinstance(r["median_ms"], float) and isinstance(r["valid"], bool)
    assert r.get("latency_ms") is None  # an old file has no such column: None, not NaN
    assert float(np.median(r.samples())) == pytest.approx(r["median_ms"], rel=1e-5)
    typed = r.result()
    assert typed.identity.model == r["model"] and typed.protocol.iters == r["iters"]
    assert isinstance(typed.protocol.runtime_settings, dict)


def test_a_file_of_a_newer_version_is_refused_with_one_line(tmp_path, capsys):
    out = tmp_path / "new.csv"
    x = np.random.default_rng(0).uniform(5, 6, 64)
    with ResultsWriter.create(out, {"models": []}) as w:
        w.append(_row(0, x), x)
    lines = out.read_text().splitlines(keepends=True)
    rec = next(csv.reader(io.StringIO(lines[1])))
    assert rec[COLUMNS.index("schema_version")] == str(SCHEMA_VERSION)
    rec[COLUMNS.index("schema_version")] = str(SCHEMA_VERSION + 1)
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(rec)
    out.write_text(lines[0] + buf.getvalue())
    assert main(["report", str(out), "--out", str(tmp_path / "rep"), "--no-plots"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert str(out) in err and f"version {SCHEMA_VERSION + 1}" in err and f"up to {SCHEMA_VERSION}" in err
    assert not (tmp_path / "rep").exists()


def test_resume_of_an_older_version_is_refused_with_one_line(tmp_path, capsys):
    old = _copy(OLD, tmp_path)
    before = old.read_bytes()
    assert main(["run", "--resume", str(old)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "version 1" in err and f"version {SCHEMA_VERSION} files" in err
    assert old.read_bytes() == before
    # Its request is read as it is (no schema_version: version 1).
    assert "schema_version" not in read_run_config(old)


# --- typed rows -----------------------------------------------------------------------

def test_a_result_row_round_trips_through_the_store(tmp_path):
    out = tmp_path / "r.csv"
    rng = np.random.default_rng(3)
    # Each row is stored with the samples its figures came from.
    xs = [rng.uniform(4, 6, 96) for _ in range(2)]
    rows = [_row(i, x) for i, x in enumerate(xs)]
    with ResultsWriter.create(out, {"models": ["efficientmod_xxs"]}) as w:
        for r, x in zip(rows, xs):
            w.append(r, x)
    back = [s.result() for s in read_rows(out)]
    for r, b in zip(rows, back):
        # What was written, as the file holds it: floats to 6 significant decimals.
        want = {k: cell_value(k, cell_text(k, v)) for k, v in r.to_record().items()}
        want = ResultRow.from_record(dict(want, samples_file=b["samples_file"]))
        assert b == want
        assert b.identity == r.identity and b.protocol.runtime_settings == {"spinning": True,
                                                                            "inter_op_threads": 1}
        assert b.provenance.schema_version == SCHEMA_VERSION and b.statistics.valid is r.statistics.valid
    assert read_run_config(out)["schema_version"] == SCHEMA_VERSION


def test_an_old_file_rewritten_as_the_current_version_is_the_same_run_to_the_gate(tmp_path, capsys):
    """Version 1 and version 2 rows of the same measurements: the gate pairs every row,
    finds no setting different (typed values compare equal across versions) and judges
    the same samples unchanged."""
    old = _copy(OLD, tmp_path)
    new = tmp_path / "v2.csv"
    stored = read_rows(old)
    with ResultsWriter.create(new, read_run_config(old)) as w:
        for s in stored:
            row = ResultRow.from_record(dict(s.data, schema_version=None, samples_file=None))
            w.append(row, {"samples_ms": s.samples(), "probe_ms": s.probe()})
    assert read_results(new).attrs["schema_version"] == SCHEMA_VERSION
    assert main(["check", str(new), "--against", str(old), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["rows"]) == len(stored) and not doc["warnings"]
    judged = [r for r in doc["rows"] if r["ratio"] is not None]
    assert judged and all(r["ratio"] == pytest.approx(1.0) for r in judged)
    assert doc["counts"]["slower"] == doc["counts"]["faster"] == 0
    assert all("missing" not in r["note"] and "new:" not in r["note"] for r in doc["rows"])
