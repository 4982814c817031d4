#!/usr/bin/env bash
# Item 6 of issue 33: the paper's CPU tables again, with the reference on by default.
set -u
cd /work/main
PY=.venv/bin/python
E=results/evidence-2026-12-02h
mkdir -p $E
log() { echo "$@" | tee -a $E/reruns.txt; }
probe() { $PY -m tools.selfbench machine --seconds 10 | tee -a $E/reruns.txt; }
step() {
  log ""; log "\$ bench.py $*"; probe
  t0=$(date +%s)
  $PY bench.py "$@" > $E/$(echo "$*" | md5sum | cut -c1-8).out 2>&1; rc=$?
  log "exit $rc, $(( $(date +%s) - t0 )) s"; probe
}
step run --suite table4 --time-budget 150 --out results/2026-12-02-table4-ort-cpu.csv
step run efficientmod_s_conv_sepmlp --suite table6 --block 20 --time-budget 180 --out results/2026-12-02-table6-ort-cpu.csv
step run efficientmod_xxs efficientmod_xs efficientmod_s efficientmod_s_conv --variant repeat,reshape --time-budget 240 --out results/2026-12-02-fig2-repeat-reshape-ort-cpu.csv
step run --suite fig9 --block 20 --time-budget 180 --out results/2026-12-02-fig9-ort-cpu.csv
log "tables done"
# Lever: the thread count, 1 then 2, blocks of 10 (set e's), one after the other.
$PY -m tools.selfbench relative --runs 5 --time-budget 60 --block 10 --threads 1 --out results/evidence-2026-12-02i > /dev/null 2>&1
echo "threads 1 exit $?" >> $E/reruns.txt
$PY -m tools.selfbench relative --runs 5 --time-budget 60 --block 10 --threads 2 --out results/evidence-2026-12-02j > /dev/null 2>&1
echo "threads 2 exit $?" >> $E/reruns.txt
echo "all done" >> $E/reruns.txt
