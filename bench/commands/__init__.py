"""The subcommands, one module each (bench/commands/<name>.py with `add_parser`).

COMMANDS is the one list of them with their one-line help: the command line reads
it to show `--help` and to import only the module of the command it runs, so that
`modbench --help` never waits for torch or ONNX Runtime."""

COMMANDS = {
    "baseline": "save or show latency baselines (per machine fingerprint)",
    "check": "latency regression gate: compare a run with a baseline",
    "claims": "check the paper's latency claims against results CSVs",
    "coreml-diagnose": "op histogram of Core ML conversions, compared across models",
    "constraints": "print the exact library versions this modbench was tested with (pip -c)",
    "export": "export models to a deployment format",
    "gate": "a pull request's latency gate: base and head timed alternately here, then judged",
    "gpu": "show the GPU environment and which GPU runtimes work here",
    "history": "latency across commits: record runs, find the commit that made a model slower, a dashboard",
    "ingest-modelbench": "read iPhone latencies copied from ModelBench into a results CSV",
    "list": "list registered models",
    "profile": "where the time goes: per-operator profiles on a runtime, and the difference of two",
    "report": "tables (Markdown, LaTeX, CSV), plots and claims from results CSVs",
    "run": "benchmark models",
}


def module_name(command: str) -> str:
    """The module of a command: `coreml-diagnose` -> modbench.commands.coreml_diagnose."""
    return f"{__name__}.{command.replace('-', '_')}"
