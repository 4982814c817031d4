#!/bin/bash
# Wall-time overhead of `bench.py run --cluster` against the same run without it:
# three small models, timed alternately with and without a single-node Ray cluster on
# this machine (127.0.0.1 only), three times each; prints both medians, the overhead,
# and each side's per-model median latency (they should agree: the timing loop is the same).
# Run from the checkout on a quiet machine (load < 0.5):
#   tools/fleet_overhead.sh [ITERS]     (default 2000; PYTHON defaults to .venv/bin/python)
# The overhead is a fixed few seconds per run (Ray connect, the node's worker importing
# torch and ONNX Runtime); its share shrinks as the run grows.
set -u
ITERS=${1:-2000}
P=${PYTHON:-.venv/bin/python}
RAY="$(dirname "$P")/ray"
M="mobilenetv2_100 efficientmod_xxs fasternet_t0"
O=${OUT:-/tmp/fleet-overhead}
export MODBENCH_CACHE=$O/cache
rm -rf "$O"; mkdir -p "$O"
$P bench.py run $M --threads 1 --iters 10 --warmup 2 --out $O/warm.csv > /dev/null 2>&1  # exports cached for both sides
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 $RAY start --head --node-ip-address 127.0.0.1 --port 6399 --num-cpus 2 \
  --resources '{"bench_slot": 1}' --include-dashboard false --disable-usage-stats > $O/ray.log 2>&1
trap '$RAY stop > /dev/null 2>&1' EXIT
for i in 1 2 3; do
  /usr/bin/time -f "local $i %e s" -a -o $O/wall.txt $P bench.py run $M --threads 1 --iters $ITERS --out $O/local$i.csv > /dev/null 2>&1
  /usr/bin/time -f "fleet $i %e s" -a -o $O/wall.txt $P bench.py run $M --threads 1 --iters $ITERS --out $O/fleet$i.csv --cluster 127.0.0.1:6399 > /dev/null 2>&1
done
cat $O/wall.txt
O=$O $P - <<'PY'
import glob, os, re, statistics as st
import pandas as pd
o = os.environ["O"]
walls = {"local": [], "fleet": []}
for line in open(f"{o}/wall.txt"):
    m = re.match(r"(local|fleet) \d+ ([\d.]+) s", line)
    if m:
        walls[m[1]].append(float(m[2]))
l, f = st.median(walls["local"]), st.median(walls["fleet"])
print(f"median wall: local {l:.1f} s, --cluster {f:.1f} s, overhead {100 * (f / l - 1):+.1f}% ({f - l:+.1f} s)")
for side in ("local", "fleet"):
    d = pd.concat(pd.read_csv(p) for p in sorted(glob.glob(f"{o}/{side}[0-9].csv")))
    print(side, "median_ms by model:", d.groupby("model").median_ms.median().round(3).to_dict())
PY
