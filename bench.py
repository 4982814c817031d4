#!/usr/bin/env python3
"""modbench command line in a checkout; see README.md or `python bench.py --help`."""
import sys

try:
    from modbench.cli import main
    from modbench.common.invocation import CHECKOUT
except ModuleNotFoundError as exc:
    if exc.name != "modbench":
        raise
    print("bench.py: error: modbench is not installed in this Python; run the README's set-up "
          "(pip install -c constraints.txt -e \".[cpu,test]\")", file=sys.stderr)
    sys.exit(2)

if __name__ == "__main__":
    sys.exit(main(invocation=CHECKOUT))
