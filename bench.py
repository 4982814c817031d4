#!/usr/bin/env python3
"""modbench command line; see README.md or `python bench.py --help`."""
import sys

from bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
