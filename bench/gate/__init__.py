"""The latency regression gate: noise-aware verdicts of a current run against a baseline.

verdicts     matching rows of two runs, refusing incomparable ones, one RowVerdict per row
             (the tests themselves, Mann-Whitney U and the block bootstrap, are in bench/stats.py)
baselines    where baselines live (one folder per machine fingerprint), never replaced silently
render       text, Markdown (pull-request comment), JSON and JUnit XML renderings of a comparison
interleaved  time a baseline's saved ONNX file and the current code's export alternately

Its false positives and power on runs drawn from known distributions: tools/gate_error_rates.py.
"""
