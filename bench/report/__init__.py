"""Reports from measured results: the paper's tables and figures, paired Repeat/Reshape
statistics and a checker of the paper's latency claims. Reads results files only."""
