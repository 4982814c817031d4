"""Subcommands of bench.py, one module each."""
