"""The one error type of modbench: bad input, a damaged file, an impossible request.

Every layer raises a subclass of ModbenchError for what the user can fix; the command
line (bench/cli.py) turns any of them into one line and exit code 2. Anything else is
a bug and keeps its traceback.
"""
from __future__ import annotations

EXIT_OK = 0
EXIT_REGRESSION = 1  # the latency gate found a regression, and nothing else
EXIT_USAGE = 2       # bad input, a damaged file, an impossible request


class ModbenchError(ValueError):
    """Something the user can fix: printed as one line, exit code 2."""


class UsageError(ModbenchError):
    """Bad command-line input."""


def first_line(exc: BaseException, limit: int = 300, *, with_type: bool = False) -> str:
    """What an exception says, as one line of at most `limit` characters: its first
    line (libraries raise pages: a traceback of the graph, a C++ stack); the
    exception's type where it says nothing, or in front of it with `with_type`."""
    text = str(exc).strip()
    line = text.splitlines()[0][:limit] if text else ""
    if not line:
        return type(exc).__name__
    return f"{type(exc).__name__}: {line}" if with_type else line
