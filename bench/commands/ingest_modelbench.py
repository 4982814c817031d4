"""bench.py ingest-modelbench: iPhone latencies read off Apple's ModelBench app into
results rows (runtime coreml, device iphone), so reports show them beside the
paper's Table 12.

ModelBench shows its numbers on screen only: per model, 20 rounds of 50
inferences (model reloaded each round, one uncounted warm-up, the 10 lowest and 10
highest of each round dropped) summarised as Low, High, Average All and Last.
The user copies them into a CSV (`--template` writes one); every value is checked
before a single row is written.
"""
from __future__ import annotations

import csv
import datetime as _dt
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modbench.common.errors import ModbenchError, UsageError
from modbench.common.fsio import write_new
from modbench.common.invocation import command
from modbench.models import ModelError, get_entry
from modbench.models.mobile_variants import table12_facts

from ..catalog import measured_complexity
from ..env import machine_env, now_iso
from ..pipeline import new_run_id
from ..schema import Identity, Placement, Protocol, Provenance, ResultRow, Statistics
from ..store import ResultsWriter, check_new_path
from ..textable import render
from . import COMMANDS
from . import _args as A

REQUIRED = ("model", "low_ms", "high_ms", "average_all_ms", "last_ms")
OPTIONAL = ("variant", "precision", "notes")
NUMBERS = ("low_ms", "high_ms", "average_all_ms", "last_ms")
# ModelBench's protocol, recorded with every row (shared/notes/MEASURING.md).
PROTOCOL = {"rounds": 20, "inferences_per_round": 50, "warmup_per_round": 1,
            "trimmed_per_round": "10 lowest + 10 highest", "model_reloaded_each_round": True,
            "input": "224x224 BGRA image named 'input'"}

TEMPLATE = """\
# ModelBench results, in milliseconds, copied from the app's screen after a run.
# One line per model: model is a name from `{list}` (e.g. efficientmod_xxs_conv_cf);
# low_ms, high_ms, average_all_ms, last_ms are ModelBench's Low, High, Average All, Last.
# variant and precision are optional (the model's default variant; fp16).
# Lines starting with # are ignored. Then: {ingest} THIS_FILE --device "iPhone 13"
model,variant,precision,low_ms,high_ms,average_all_ms,last_ms,notes
efficientmod_xxs_conv_cf,,fp16,,,,,
efficientmod_xxs_conv_bn,,fp16,,,,,
mobilenetv2_100,,fp16,,,,,
"""


def template() -> str:
    """The template, naming the commands as modbench was called."""
    return TEMPLATE.format(list=command("list"), ingest=command("ingest-modelbench"))


def add_parser(sub) -> None:
    p = sub.add_parser("ingest-modelbench",
                       help=COMMANDS["ingest-modelbench"],
                       **A.examples("ingest-modelbench --template modelbench.csv",
                                    f'{command()} ingest-modelbench modelbench.csv --device "iPhone 13" --ios 16.6.1'))
    p.add_argument("file", nargs="?", metavar="FILE",
                   help="the filled-in CSV (with --template: where to write the template; default stdout)")
    p.add_argument("--template", action="store_true", help="write an empty template and exit")
    p.add_argument("--device", help='the phone, as its name reads, e.g. "iPhone 13" (required)')
    p.add_argument("--ios", help="iOS version of the phone, e.g. 16.6.1")
    p.add_argument("--out", help="results CSV to create (default results/DATE-modelbench-DEVICE.csv)")
    p.add_argument("--results-dir", default="results", help="folder for the results CSV (default results/)")
    p.set_defaults(func=run)


@dataclass
class Entry:
    line: int
    model: str
    variant: str
    precision: str
    low: float
    high: float
    average: float
    last: float
    notes: str


class IngestError(ModbenchError):
    pass


def parse(text: str, source: str = "input") -> list[Entry]:
    """Parse and check a filled-in template; IngestError names the line at fault."""

    lines = [(i, ln) for i, ln in enumerate(text.splitlines(), start=1)
             if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise IngestError(f"{source}: no header and no rows (write one with --template)")
    head_no, head = lines[0]
    header = [h.strip().lower() for h in next(csv.reader([head.lstrip("\ufeff")]))]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise IngestError(f"{source} line {head_no}: column {dupes[0]!r} appears {header.count(dupes[0])} times "
                          "in the header; each column once")
    missing = [c for c in REQUIRED if c not in header]
    unknown = [h for h in header if h not in REQUIRED + OPTIONAL]
    if missing or unknown:
        what = (f"no column {missing[0]!r}" if missing else f"unknown column {unknown[0]!r}")
        raise IngestError(f"{source} line {head_no}: wrong header ({what}); expected "
                          f"{','.join(REQUIRED[:1] + OPTIONAL[:2] + REQUIRED[1:] + OPTIONAL[2:])}")
    entries, seen = [], {}
    for no, ln in lines[1:]:
        cells = next(csv.reader([ln]))
        if len(cells) > len(header):
            raise IngestError(f"{source} line {no}: {len(cells)} fields, the header has {len(header)}")
        row = {h: (cells[i].strip() if i < len(cells) else "") for i, h in enumerate(header)}
        where = f"{source} line {no}"
        if not row["model"]:
            raise IngestError(f"{where}: no model name")
        try:
            entry = get_entry(row["model"])
        except ModelError as exc:
            raise IngestError(f"{where}: {exc}") from None
        variant = row.get("variant") or entry.default_variant
        if variant not in entry.variants:
            raise IngestError(f"{where}: model {entry.name} has no variant {variant!r}; "
                              f"it has {', '.join(entry.variants)}")
        precision = (row.get("precision") or "fp16").lower()
        if precision not in ("fp16", "fp32"):
            raise IngestError(f"{where}: precision must be fp16 or fp32, not {precision!r}")
        nums = {}
        for col in NUMBERS:
            raw = row[col].lower().removesuffix("ms").strip()
            if not raw:
                raise IngestError(f"{where}: {col} is empty")
            try:
                v = float(raw)
            except ValueError:
                raise IngestError(f"{where}: {col} {row[col]!r} is not a number") from None
            if not math.isfinite(v) or v <= 0:
                raise IngestError(f"{where}: {col} {row[col]!r} must be a positive number of milliseconds")
            nums[col] = v
        lo, hi = nums["low_ms"], nums["high_ms"]
        for col in ("average_all_ms", "last_ms"):
            if not lo <= nums[col] <= hi:
                raise IngestError(f"{where}: {col} {nums[col]:g} lies outside low..high "
                                  f"({lo:g}..{hi:g}); were the columns swapped?")
        key = (entry.name, variant, precision)
        if key in seen:
            raise IngestError(f"{where}: {entry.name} ({variant}, {precision}) already given on line {seen[key]}")
        seen[key] = no
        entries.append(Entry(no, entry.name, variant, precision, lo, hi, nums["average_all_ms"],
                             nums["last_ms"], row.get("notes", "")))
    if not entries:
        raise IngestError(f"{source}: a header but no rows")
    return entries


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def to_rows(entries: list[Entry], device: str, ios: str | None, source: str, run_id: str) -> list[dict]:
    env = machine_env()
    t12 = table12_facts()
    rows = []
    for e in entries:
        entry = get_entry(e.model)
        # Table 12 is the paper's iPhone table; other models keep their own table's facts.
        paper = t12.get(e.model, entry.paper)
        measured = measured_complexity(entry)
        row_id = f"{e.model}.{e.variant}.coreml.{_slug(device)}.{e.precision}.b1.r224"
        identity = Identity(row_id=row_id, run_id=run_id, model=e.model, variant=e.variant, runtime="coreml",
                            device="iphone", precision=e.precision, threads=None, batch=1, resolution=224)
        facts = {
            "params_m": measured[0] if measured else None, "macs_g": measured[1] if measured else None,
            "top1": paper.top1, "paper_params_m": paper.params_m, "paper_macs_g": paper.macs_g,
            "paper_gpu_ms": paper.gpu_ms, "paper_cpu_ms": paper.cpu_ms,
            "paper_resolution": paper.resolution, "paper_source": paper.source,
            "checkpoint": None, "artifact_format": "coreml", "exporter": "torch.export+coremltools",
        }
        protocol = Protocol(schedule="modelbench", interleave_group=f"{run_id}:modelbench",
                            block_size=PROTOCOL["inferences_per_round"], warmup=PROTOCOL["warmup_per_round"],
                            runtime_settings={"app": "ModelBench", "compute_units": "app default", **PROTOCOL})
        # The phone's numbers: ModelBench's Average All is what the paper reports; the
        # app shows no per-inference series, so there is no iteration count.
        stats = Statistics(mean_ms=e.average, median_ms=e.average, min_ms=e.low, max_ms=e.high,
                           valid=True, invalid_reason="")
        # Of this machine only what made the model file; the rest describes the phone.
        software = {"os": f"iOS {ios}" if ios else "iOS",
                    **{k: env.get(k) for k in ("coremltools_version", "torch_version", "git_commit",
                                               "git_dirty")}}
        rows.append(ResultRow.compose(
            identity, protocol, facts, stats, software,
            Placement(provider="modelbench", device_name=device, cluster="local", node=f"iphone:{device}"),
            Provenance(timestamp=now_iso(), extra={
                "source": "ModelBench screen", "file": source, "line": e.line,
                "low_ms": e.low, "high_ms": e.high, "average_all_ms": e.average,
                "last_ms": e.last, "paper_iphone_ms": paper.iphone_ms,
                "samples": "Average All and Last (the app shows no per-inference times)",
                **({"notes": e.notes} if e.notes else {})})).to_record())
    return rows


def run(args) -> int:
    if args.template:
        if args.file is None:
            sys.stdout.write(template())
            return 0
        path = Path(args.file)
        write_new(path, template(), "template file")
        print(f"wrote {path}: fill in one line per model, then "
              f"{command()} ingest-modelbench {path} --device \"iPhone 13\"")
        return 0
    if args.file is None:
        raise UsageError("name the filled-in ModelBench CSV (or use --template to get one)")
    if args.device and any(ch in args.device for ch in "\r\n\t"):
        raise UsageError(f"--device {args.device!r} holds a line break or tab; give the phone's name on one line")
    if not args.device or not args.device.strip():
        raise UsageError('--device is required, e.g. --device "iPhone 13"')
    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8-sig")  # Excel's "CSV UTF-8" starts with a BOM
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    try:
        entries = parse(text, str(path))
    except (IngestError, csv.Error) as exc:
        raise UsageError(str(exc)) from None
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else Path(args.results_dir) / f"{stamp}-modelbench-{_slug(args.device)}.csv"
    check_new_path(out, hint="give another --out (ingested results are never appended to)")
    run_id = new_run_id()
    rows = to_rows(entries, args.device.strip(), args.ios, str(path), run_id)
    with ResultsWriter.create(out, {"kind": "modelbench-ingest", "source": str(path),
                                    "device": args.device.strip(), "ios": args.ios,
                                    "source_text": text}) as writer:
        for row, e in zip(rows, entries):
            writer.append(row, np.array([e.average, e.last]))
    show = [dict(r, paper_iphone_ms=r["extra"]["paper_iphone_ms"], last_ms=r["extra"]["last_ms"])
            for r in rows]
    print(render(show, ["model", "variant", "precision", "min_ms", "median_ms", "max_ms", "last_ms",
                        "paper_iphone_ms"],
                 {"min_ms": "low", "median_ms": "average", "max_ms": "high", "last_ms": "last",
                  "paper_iphone_ms": "paper iPhone 13"}))
    print(f"wrote {len(rows)} rows to {out}")
    return 0
