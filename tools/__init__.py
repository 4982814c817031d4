"""Self-benchmarks, demos and scripts that measure or exercise modbench from above: not part of the
installed product (bench/, models/ and exporters/ never import them). See tools/README.md."""
