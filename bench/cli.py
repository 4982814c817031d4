"""bench.py: the command line. Each subcommand lives in bench/commands/<name>.py
and provides `add_parser(subparsers)`; this module only wires them and turns
expected failures into one line and exit code 2."""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys
import threading
import traceback

from common.errors import EXIT_USAGE, ModbenchError, UsageError
from common.fsio import describe_os_error

from . import commands


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise UsageError(f"{self.prog}: {message}")


def build_parser(prog: str = "bench.py") -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description="modbench: latency benchmarks for efficient vision networks")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for mod in sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")):
        importlib.import_module(f"{commands.__name__}.{mod}").add_parser(sub)
    return parser


def _terminate(signum, frame):
    raise KeyboardInterrupt  # SIGTERM (kill, a CI timeout) cleans up exactly as Ctrl-C does


def handle_signals() -> None:
    """The one place signals are handled: SIGTERM becomes Ctrl-C (KeyboardInterrupt),
    so every `finally` and cleanup that Ctrl-C runs runs for it too."""

    if threading.current_thread() is threading.main_thread():
        return signal.signal(signal.SIGTERM, _terminate)
    return None


def main(argv: list[str] | None = None, prog: str = "bench.py") -> int:
    previous = handle_signals()
    try:
        return _main(argv, prog)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None, prog: str) -> int:
    try:
        args = build_parser(prog).parse_args(argv)
        return int(args.func(args) or 0)
    except ModbenchError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except MemoryError:
        print(f"{prog}: error: out of memory (a smaller --batch or --resolution?)", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # the environment, not a bug: a full disk, a permission, a missing file
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{prog}: error: {where}{describe_os_error(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception:
        # A bug: keep its traceback, but never exit 1, which CI reads as "a regression".
        traceback.print_exc()
        print(f"{prog}: internal error (a bug in modbench; the traceback is above)", file=sys.stderr)
        return EXIT_USAGE


def console() -> int:
    """The `modbench` console script (pyproject [project.scripts])."""
    return main(prog="modbench")


if __name__ == "__main__":  # python -m bench.cli
    sys.exit(main(prog="modbench"))
