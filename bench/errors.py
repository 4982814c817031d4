"""Errors the command line prints as one line with exit code 2.

Everything the user can fix raises a subclass of ModbenchError (defined in the lowest
layer, models/errors.py, so models and exporters share it). `bench.cli.main` catches
that one type; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

from models.errors import ModbenchError

EXIT_OK = 0
EXIT_REGRESSION = 1  # the latency gate found a regression, and nothing else
EXIT_USAGE = 2       # bad input, a damaged file, an impossible request


class UsageError(ModbenchError):
    """Bad command-line input."""


__all__ = ["ModbenchError", "UsageError", "EXIT_OK", "EXIT_REGRESSION", "EXIT_USAGE"]
