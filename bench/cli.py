"""The command line (`modbench`, `python -m modbench`, `python bench.py`). Each
subcommand lives in bench/commands/<name>.py
and provides `add_parser(subparsers)`; this module only wires them and turns
expected failures into one line and exit code 2."""
from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
import traceback

from modbench.common.errors import EXIT_USAGE, ModbenchError, UsageError
from modbench.common.fsio import describe_os_error
from modbench.common.invocation import MODULE, SCRIPT, Invocation, called_as

from . import __version__
from .commands import COMMANDS, module_name


# Libraries an install may lack on purpose (an extra not chosen): one line saying how
# to add them, not a traceback.
OPTIONAL = {"onnxruntime": "ONNX Runtime is not installed: pip install \"modbench[cpu]\" "
                           "(or \"modbench[gpu]\" for onnxruntime-gpu)"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        raise UsageError(f"{self.prog}: {message}")


def build_parser(prog: str = "modbench", only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `only`, that command's own parser in full and the
    others as their one-line help (argv names one command: the rest need not load)."""
    parser = _Parser(prog=prog, description="modbench: latency benchmarks for efficient vision networks")
    parser.add_argument("--version", action="version", version=f"modbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")
    for name, summary in COMMANDS.items():
        if only is None or name == only:
            importlib.import_module(module_name(name)).add_parser(sub)
        else:
            sub.add_parser(name, help=summary, add_help=False)
    return parser


def _command_in(argv: list[str]) -> str:
    """The command argv names (its first word that is not an option), or "" for none:
    `modbench --help` needs no command's module."""
    word = next((a for a in argv if not a.startswith("-")), "")
    return word if word in COMMANDS else ""


def _terminate(signum, frame):
    raise KeyboardInterrupt  # SIGTERM (kill, a CI timeout) cleans up exactly as Ctrl-C does


def handle_signals() -> None:
    """The one place signals are handled: SIGTERM becomes Ctrl-C (KeyboardInterrupt),
    so every `finally` and cleanup that Ctrl-C runs runs for it too."""

    if threading.current_thread() is threading.main_thread():
        return signal.signal(signal.SIGTERM, _terminate)
    return None


def main(argv: list[str] | None = None, invocation: Invocation = SCRIPT) -> int:
    previous = handle_signals()
    called_before = called_as(invocation)
    try:
        return _main(argv, invocation.name)
    finally:
        called_as(called_before)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main(argv: list[str] | None, prog: str) -> int:
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = build_parser(prog, only=_command_in(argv)).parse_args(argv)
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
    except ModuleNotFoundError as exc:
        if exc.name not in OPTIONAL:
            raise
        print(f"{prog}: error: {OPTIONAL[exc.name]}", file=sys.stderr)
        return EXIT_USAGE
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
    return main(invocation=SCRIPT)


if __name__ == "__main__":  # python -m modbench.cli
    sys.exit(main(invocation=MODULE))
