"""A fleet run on a two-node Ray cluster on this machine (127.0.0.1 only), through the CLI.

    python -m tools.fleet_two_node_demo results/fleet-2node-demo.csv

Head node: bench_slot 1 and resource cpu_a; second node: bench_slot 1, resource cpu_b,
label lab=b. Both share this machine's cores and time at the same time, so the numbers
show the mechanics (placement, one results file, the node column), not latencies.
"""
import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # keep the cluster on loopback
from ray.cluster_utils import Cluster  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
LOCAL = dict(num_cpus=1, node_ip_address="127.0.0.1")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="the results file the fleet run writes (must not exist)")
    args = ap.parse_args(argv)
    cluster = Cluster(initialize_head=True, head_node_args=dict(LOCAL, include_dashboard=False,
                                                                resources={"bench_slot": 1, "cpu_a": 1}))
    cluster.add_node(**LOCAL, resources={"bench_slot": 1, "cpu_b": 1}, labels={"lab": "b"})
    try:
        cmd = [sys.executable, "bench.py", "run", "mobilenetv2_100", "efficientmod_xxs", "fasternet_t0",
               "--threads", "1", "--iters", "30", "--warmup", "5", "--block", "10", "--interleave", "1",
               "--cluster", cluster.address, "--on", "cpu_a,lab=b", "--out", str(args.out.resolve())]
        print("$", " ".join(cmd), flush=True)
        t = time.monotonic()
        rc = subprocess.run(cmd, cwd=REPO).returncode
        print(f"rc {rc}, wall {time.monotonic() - t:.1f} s", flush=True)
    finally:
        cluster.shutdown()
    return rc


if __name__ == "__main__":
    sys.exit(main())
