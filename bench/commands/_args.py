"""Argument types shared by every command: numbers are checked once, here, as argparse
parses them, so a bad value ends in one line and exit 2 before anything runs.

Each function is an argparse `type=`; it raises argparse.ArgumentTypeError, which the
parser turns into UsageError ("modbench run: argument --batch: ...").
"""
from __future__ import annotations

import argparse
import math

from modbench.common.invocation import command

# Larger values are typing mistakes, not benchmarks: a batch of 100000 224px images is
# 60 GB of input alone, and would end in an allocation failure deep inside torch.
MAX_BATCH = 4096
MAX_RESOLUTION = 4096
MAX_THREADS = 1024
MAX_ITERS = 10_000_000
MIN_RESOLUTION = 32


def _int(text: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, not {text!r}") from None


def bounded_int(low: int, high: int | None = None, what: str = "a positive integer"):
    """An integer type in [low, high]."""
    def parse(text: str) -> int:
        v = _int(text)
        if v < low or (high is not None and v > high):
            span = f"at least {low}" if high is None else f"between {low} and {high}"
            raise argparse.ArgumentTypeError(f"expected {what} ({span}), not {text!r}")
        return v
    parse.__name__ = "integer"
    return parse


positive_int = bounded_int(1)
non_negative_int = bounded_int(0, what="an integer")
batch_size = bounded_int(1, MAX_BATCH, "a batch size")
resolution = bounded_int(MIN_RESOLUTION, MAX_RESOLUTION, "an input side in pixels")
thread_count = bounded_int(1, MAX_THREADS, "a thread count")
iterations = bounded_int(1, MAX_ITERS, "a number of iterations")
opset = bounded_int(7, 30, "an ONNX opset")


def int_list(item=positive_int):
    """A non-empty comma list of integers, each checked by `item`: an empty list is
    bad input, never 'nothing to do'."""
    def parse(text: str) -> list[int]:
        parts = [p.strip() for p in str(text).split(",")]
        if not any(parts):
            raise argparse.ArgumentTypeError(f"expected one or more integers separated by commas, not {text!r}")
        if not all(parts):
            raise argparse.ArgumentTypeError(f"an empty item in {text!r}")
        out = [item(p) for p in parts]
        if len(set(out)) != len(out):
            raise argparse.ArgumentTypeError(f"a value is given twice in {text!r}")
        return out
    parse.__name__ = "integer list"
    return parse


batch_list = int_list(batch_size)
resolution_list = int_list(resolution)
thread_list = int_list(thread_count)


def positive_float(text: str) -> float:
    """A finite number > 0 (nan, inf, 0 and negatives refused)."""
    try:
        v = float(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite positive number, not {text!r}")
    return v


def open_unit_float(text: str) -> float:
    """A finite number in (0, 1)."""
    v = positive_float(text)
    if not v < 1:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, not {text!r}")
    return v


def _share(text: str, example: str) -> float:
    """0.05 or 5%: the number a fraction option was given as."""
    t = str(text).strip()
    try:
        v = float(t.rstrip("%")) / (100.0 if t.endswith("%") else 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {example}, not {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected {example}, not {text!r}")
    return v


def fraction(text: str) -> float:
    """0.05 or 5%: a fraction in [0, 1)."""
    v = _share(text, "a fraction like 0.05 or 5%")
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), not {text!r}")
    return v


def slowdown(text: str) -> float:
    """0.05, 5% or 150%: how much slower counts, from 0 up to 10 (1000%)."""
    v = _share(text, "a slowdown like 0.05, 5% or 150%")
    if not 0 <= v <= 10:
        raise argparse.ArgumentTypeError(f"expected a slowdown between 0 and 1000%, not {text!r}")
    return v


def non_empty(text: str) -> str:
    if not str(text).strip():
        raise argparse.ArgumentTypeError("expected a non-empty value")
    return str(text).strip()


def iterations_or_auto(text: str):
    """'auto' (precision-driven) or a fixed number of iterations."""
    if str(text).strip().lower() == "auto":
        return "auto"
    return iterations(text)


def open_unit_fraction(text: str) -> float:
    """0.01 or 1%: a fraction in (0, 1)."""
    v = fraction(text)
    if v == 0:
        raise argparse.ArgumentTypeError(f"expected a fraction above 0, not {text!r}")
    return v


def examples(*lines: str, after: str = "") -> dict:
    """add_parser keywords for an `examples:` epilog, printed as written by --help;
    each line is a command's arguments, shown after the command as it was called
    (`modbench`, `python -m modbench`, `python bench.py`)."""
    text = "examples:\n" + "\n".join(f"  {command(ln)}" for ln in lines)
    return {"epilog": text + (f"\n\n{after}" if after else ""),
            "formatter_class": argparse.RawDescriptionHelpFormatter}
