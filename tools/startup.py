"""How long the command line takes to start: `modbench --help`, `modbench --version`,
`modbench list` and a bare `import modbench`, each a fresh process, several times,
interleaved (so a slow moment of a shared host hits every command alike). Run alone.

    python -m tools.startup [--repeats 7]

Prints each command's median, lowest and highest wall time, and whether torch and ONNX
Runtime were imported by it (`-X importtime`)."""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "import modbench": [sys.executable, "-c", "import modbench"],
    "modbench --version": ["modbench", "--version"],
    "modbench --help": ["modbench", "--help"],
    "modbench run --help": ["modbench", "run", "--help"],
    "modbench list": ["modbench", "list", "--no-count"],
}


def heavy_imports(cmd: list[str]) -> list[str]:
    """Which of torch / onnxruntime the command imports."""
    py = [sys.executable, "-X", "importtime", "-m", "modbench", *cmd[1:]] if cmd[0] == "modbench" else \
        [cmd[0], "-X", "importtime", *cmd[1:]]
    err = subprocess.run(py, capture_output=True, text=True).stderr
    # -X importtime lines end "|   <indent>module"; a top-level import of the library is its own line.
    names = {line.rsplit("|", 1)[-1].strip() for line in err.splitlines() if line.startswith("import time:")}
    return [lib for lib in ("torch", "onnxruntime") if lib in names]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    if shutil.which("modbench") is None:
        sys.exit("tools.startup: `modbench` is not on PATH (activate the environment)")
    times: dict[str, list[float]] = {k: [] for k in COMMANDS}
    for _ in range(args.repeats):
        for name, cmd in COMMANDS.items():  # interleaved: one of each, then again
            t0 = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - t0)
    print(f"{'command':<22} {'median s':>9} {'min s':>7} {'max s':>7}  imports")
    for name, ts in times.items():
        libs = ", ".join(heavy_imports(COMMANDS[name])) or "neither torch nor onnxruntime"
        print(f"{name:<22} {statistics.median(ts):9.3f} {min(ts):7.3f} {max(ts):7.3f}  {libs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
