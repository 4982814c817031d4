"""Timing core, runners, results and reports of modbench."""
