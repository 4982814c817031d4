"""How the command line was called, so that every hint names a command the user has:
`modbench` (the installed script), `python -m modbench`, or `python bench.py` in a
checkout. The command line sets it once as it starts; everything that prints a next
command reads it through `command()`."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Invocation:
    name: str      # what an error line starts with: "NAME: error: ..."
    command: str   # what a hint tells the user to type


SCRIPT = Invocation("modbench", "modbench")
MODULE = Invocation("modbench", "python -m modbench")
CHECKOUT = Invocation("bench.py", "python bench.py")

_current = SCRIPT


def called_as(invocation: Invocation) -> Invocation:
    """Make `invocation` the one hints name; returns the one it replaces."""
    global _current
    previous, _current = _current, invocation
    return previous


def current() -> Invocation:
    return _current


def command(args: str = "") -> str:
    """The command line a user types for `args`, e.g. command("report x.csv")."""
    return f"{_current.command} {args}".strip()
