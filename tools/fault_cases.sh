#!/bin/bash
# Needs root for the full-disk case (a small tmpfs). Output committed as results/issue10-cases.txt.
# Issue 10's cases rerun on the merged code: each prints its exit code and stderr's last line.
cd "$(dirname "$0")/.."
P=.venv/bin/python
W=$(mktemp -d /tmp/cases.XXXX)
export MODBENCH_CACHE=$W/cache
F="--iters 40 --warmup 2 --block 10 --threads 1 --resolution 64"
show() { echo "$1: exit $2: $(tail -n1 $W/err)"; }
$P bench.py run mobilenetv2_100 fasternet_t0 $F --out $W/base.csv > /dev/null 2>$W/err; show "a base run" $?

# 1. two writers
$P bench.py run mobilenetv2_100 efficientmod_xxs --iters 1500 --warmup 2 --threads 1 --interleave 1 --out $W/r.csv > /dev/null 2>&1 &
A=$!
while [ ! -f $W/r.csv ]; do sleep 0.2; done
$P bench.py run --resume $W/r.csv > /dev/null 2>$W/err; show "1. --resume while the run is alive" $?
$P bench.py run mobilenetv2_100 $F --out $W/r.csv > /dev/null 2>$W/err; show "1. a second run to the same --out" $?
wait $A; echo "1. the first run: exit $?; rows: $($P -c "from bench.store import read_results; d=read_results('$W/r.csv'); print(len(d), 'unique' if d.row_id.is_unique else 'DUPLICATED')")"

# 2. disk full, kill -9
mkdir -p $W/disk && mount -t tmpfs -o size=512k tmpfs $W/disk
$P bench.py run mobilenetv2_100 $F --out $W/disk/warm.csv > /dev/null 2>&1; rm -rf $W/disk/warm*
AVAIL=$(df --output=avail -B1 $W/disk | tail -1); head -c $((AVAIL - 16000)) /dev/zero > $W/disk/filler
$P bench.py run mobilenetv2_100 fasternet_t0 efficientmod_xxs --iters 400 --warmup 2 --block 10 --threads 1 --resolution 64 --interleave 1 --out $W/disk/full.csv > /dev/null 2>$W/err; show "2. disk full mid-run" $?
echo "2. complete rows kept: $($P -c "from bench.store import read_results; print(len(read_results('$W/disk/full.csv')))" 2>&1 | tail -1)"
rm $W/disk/filler
$P bench.py run --resume $W/disk/full.csv > /dev/null 2>$W/err; show "2. --resume after freeing space" $?
echo "2. rows now: $($P -c "from bench.store import read_results; d=read_results('$W/disk/full.csv'); print(len(d), 'unique' if d.row_id.is_unique else 'DUPLICATED')")"
umount -l $W/disk
echo '{}' > $W/k.run.json; mkdir $W/k.samples   # what kill -9 before the first row leaves
$P bench.py run mobilenetv2_100 $F --out $W/k.csv > /dev/null 2>$W/err; show "2. a run after a kill -9 before its first row" $?

# 3. one NaN sample
cp -r $W/base.csv $W/base.run.json $W/base.samples $W/ 2>/dev/null
mkdir -p $W/nan && cp -r $W/base.csv $W/base.run.json $W/base.samples $W/nan/
S=$(ls $W/nan/base.samples/*.npz | head -1)
$P -c "import numpy as np; x=np.load('$S')['samples_ms']; x[3]=np.nan; np.savez('$S', samples_ms=x)"
$P bench.py check $W/nan/base.csv --against $W/base.csv > $W/out 2>$W/err; echo "3. check with a NaN sample: exit $?: $(grep 'latency gate' $W/out)"
$P bench.py check $W/nan/base.csv --against $W/base.csv --strict > /dev/null 2>$W/err; show "3. check --strict with a NaN sample" $?
$P bench.py report $W/nan/base.csv --out $W/rep > /dev/null 2>$W/err; show "3. report with a NaN sample" $?

# 8. a samples_file outside its folder
mkdir -p $W/out8 && cp -r $W/base.csv $W/base.run.json $W/base.samples $W/out8/
sed -i '2s#base.samples/#../#' $W/out8/base.csv
$P bench.py report $W/out8/base.csv --out $W/rep8 > /dev/null 2>$W/err; show "8. samples_file pointing outside its folder" $?
$P bench.py run --resume $W/out8/base.csv > /dev/null 2>$W/err; show "8. --resume of that file" $?
echo '{not json' > $W/base.run.json
$P bench.py run --resume $W/base.csv > /dev/null 2>$W/err; show "7. --resume with a malformed run.json" $?
rm -rf $W
