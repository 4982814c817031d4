"""`python -m modbench`: the same command line as the `modbench` script and bench.py."""
import sys

from modbench.cli import main
from modbench.common.invocation import MODULE

sys.exit(main(invocation=MODULE))
