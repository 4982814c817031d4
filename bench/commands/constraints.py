"""modbench constraints: the pinned versions modbench was tested with, from the
installed package itself, for `pip install -c` where no checkout is at hand."""
from __future__ import annotations

import sys
from importlib.resources import files

from . import COMMANDS
from . import _args as A


def add_parser(sub) -> None:
    p = sub.add_parser("constraints", help=COMMANDS["constraints"],
                       **A.examples("constraints > constraints.txt && pip install -c constraints.txt \"modbench[cpu]\""))
    p.set_defaults(func=run)


def text() -> str:
    return files("modbench").joinpath("constraints.txt").read_text(encoding="utf-8")


def run(args) -> int:
    sys.stdout.write(text())
    return 0
