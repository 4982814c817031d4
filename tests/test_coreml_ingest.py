"""ModelBench numbers into results rows; bad files fail with the line named, nothing written.
The Core ML runner refuses off macOS with one line."""
import os
import platform

import pytest

from modbench.cli import main
from modbench.commands.ingest_modelbench import IngestError, parse, template
from modbench.store import read_results, read_samples

HEADER = "model,variant,precision,low_ms,high_ms,average_all_ms,last_ms,notes\n"
GOOD = ("# copied from the phone\n" + HEADER +
        "efficientmod_xxs_conv_cf,,fp16,1.10,1.42,1.21,1.19,\n"
        "efficientmod_xxs_conv_bn,fused,,0.85,1.02,0.91 ms,0.90,after BN fold\n")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MODBENCH_CACHE", str(tmp_path / "cache"))


def test_parse_good_file():
    entries = parse(GOOD, "f.csv")
    assert [(e.model, e.variant, e.precision, e.average, e.line) for e in entries] == [
        ("efficientmod_xxs_conv_cf", "repeat", "fp16", 1.21, 3),
        ("efficientmod_xxs_conv_bn", "fused", "fp16", 0.91, 4)]


def test_template_parses_once_filled():
    filled = template().replace(",fp16,,,,,", ",fp16,1,3,2,2,")
    assert len(parse(filled)) == 3
    with pytest.raises(IngestError, match=r"line 7: low_ms is empty"):
        parse(template())


@pytest.mark.parametrize("text, message", [
    (HEADER.replace("average_all_ms", "avg") + "mobilenetv2_100,,,1,2,1.5,1.5,\n",
     r"f.csv line 1: wrong header \(no column 'average_all_ms'\)"),
    (HEADER.replace("notes", "comment") + "mobilenetv2_100,,,1,2,1.5,1.5,\n",
     r"line 1: wrong header \(unknown column 'comment'\)"),
    (HEADER + "efficientmod_xxs_conv_cf,,,1,2,1.5,1.5,\n,,,1,2,1.5,1.5,\n", r"f.csv line 3: no model name"),
    (HEADER + "mobilenet_v9,,,1,2,1.5,1.5,\n", r"line 2: unknown model 'mobilenet_v9'"),
    (HEADER + "mobilenetv2_100,,,1,2,1.5x,1.5,\n", r"line 2: average_all_ms '1.5x' is not a number"),
    (HEADER + "mobilenetv2_100,,,1,2,-1,1.5,\n", r"line 2: average_all_ms '-1' must be a positive"),
    (HEADER + "mobilenetv2_100,,,2,1,1.5,1.5,\n", r"line 2: average_all_ms 1.5 lies outside low..high"),
    (HEADER + "mobilenetv2_100,fast,,1,2,1.5,1.5,\n", r"line 2: model mobilenetv2_100 has no variant 'fast'"),
    (HEADER + "mobilenetv2_100,,int8,1,2,1.5,1.5,\n", r"line 2: precision must be fp16 or fp32"),
    (HEADER + "mobilenetv2_100,,,1,2,1.5,1.5,\nmobilenetv2_100,,,1,2,1.5,1.5,\n",
     r"line 3: mobilenetv2_100 \(default, fp16\) already given on line 2"),
    (HEADER + "mobilenetv2_100,,,1,2,1.5,1.5,,extra\n", r"line 2: 9 fields, the header has 8"),
    (HEADER, r"a header but no rows"),
    ("# nothing\n", r"no header and no rows"),
])
def test_parse_bad_files_name_the_line(text, message):
    with pytest.raises(IngestError, match=message):
        parse(text, "f.csv")


def test_cli_ingest_writes_results_rows(tmp_path, capsys):
    src = tmp_path / "mb.csv"
    src.write_text(GOOD)
    out = tmp_path / "res" / "iphone.csv"
    assert main(["ingest-modelbench", str(src), "--device", "iPhone 13", "--ios", "16.6.1",
                 "--out", str(out)]) == 0
    df = read_results(out)
    assert list(df["runtime"]) == ["coreml", "coreml"] and set(df["device"]) == {"iphone"}
    assert set(df["device_name"]) == {"iPhone 13"} and list(df["median_ms"]) == [1.21, 0.91]
    assert list(df["paper_source"]) == ["Table 12 row 9", "Table 12 row 10"]
    assert abs(df["params_m"].iloc[0] - 4.415) < 0.01
    assert list(read_samples(out, df["samples_file"].iloc[1])) == [0.91, 0.90]
    assert "paper iPhone 13" in capsys.readouterr().out
    # Never overwritten.
    assert main(["ingest-modelbench", str(src), "--device", "iPhone 13", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_cli_bad_file_writes_nothing(tmp_path, capsys):
    src = tmp_path / "mb.csv"
    src.write_text(HEADER + "efficientmod_xxs_conv_cf,,,1,2,1.5,1.5,\nmobilenetv2_100,,,1,2,abc,1.5,\n")
    out = tmp_path / "iphone.csv"
    assert main(["ingest-modelbench", str(src), "--device", "iPhone 13", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"modbench: error: {src} line 3: average_all_ms 'abc' is not a number"]
    assert list(tmp_path.iterdir()) == [src]
    assert main(["ingest-modelbench", str(src), "--out", str(out)]) == 2
    assert "--device is required" in capsys.readouterr().err


def test_cli_template(tmp_path, capsys):
    dest = tmp_path / "t.csv"
    assert main(["ingest-modelbench", "--template", str(dest)]) == 0
    assert dest.read_text() == template() and "modbench ingest-modelbench" in template()
    assert main(["ingest-modelbench", "--template", str(dest)]) == 2
    assert main(["ingest-modelbench", "--template"]) == 0
    assert "average_all_ms" in capsys.readouterr().out


@pytest.mark.skipif(platform.system() == "Darwin", reason="the refusal is for non-macOS hosts")
@pytest.mark.parametrize("runtime", ["coreml-cpu", "coreml-gpu", "coreml-all"])
def test_coreml_runner_refuses_off_macos(runtime, tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert main(["run", "efficientmod_xxs", "--runtime", runtime, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs macOS" in err[0]
    assert not out.exists() and not os.listdir(tmp_path)
