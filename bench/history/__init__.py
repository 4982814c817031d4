"""Latency history across commits: the store (`store`), where the figure stepped
(`changes`), and the static dashboard (`site`). docs/history.md describes them."""
