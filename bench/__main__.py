"""`python -m bench`: the same command line as bench.py and the `modbench` script."""
import sys

from .cli import main

sys.exit(main(prog="modbench"))
