"""The latency regression gate: noise-aware verdicts of a current run against a baseline.

stats      Mann-Whitney U and a block bootstrap of the ratio of medians (numpy only)
compare    matching rows of two runs, refusing incomparable ones, one RowVerdict per row
baselines  where baselines live (one folder per machine fingerprint), never replaced silently
report     text, Markdown (pull-request comment) and JUnit XML renderings of a comparison
synthetic  runs drawn from known distributions, to measure false positives and power
interleaved  time a baseline's saved ONNX file and the current code's export alternately
"""
