"""`python -m bench`: the same command line as bench.py and the `modbench` script."""
import os
import sys

# `python -m` puts the current folder first on sys.path; in a user's repository with
# a `models` package of its own, that package would replace this suite's. Drop it
# unless it is this suite's own checkout (module:function specs still import from
# the current folder: models/byo.py adds it after the installed packages).
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if sys.path and sys.path[0] in ("", os.getcwd()) and os.path.abspath(os.getcwd()) != _ROOT:
    del sys.path[0]

from bench.cli import main  # noqa: E402

sys.exit(main(prog="modbench"))
