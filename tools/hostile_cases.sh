#!/usr/bin/env bash
# Issue 20's numbered hostile cases, rerun: each prints "case N: rc=... : <its one line>".
# Usage: tools/hostile_cases.sh [PYTHON]   (scratch under $WORK, default /tmp/hostile-cases)
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${1:-python}
WORK=${WORK:-/tmp/hostile-cases}
rm -rf "$WORK" && mkdir -p "$WORK/out" && cd "$WORK" || exit 2
export MODBENCH_CACHE="$WORK/cache" PYTHONPATH="$WORK"
B=("$PY" "$REPO/bench.py")
F=(--iters 60 --warmup 5 --block 20 --threads 1)
last() { grep -v '^\s*$' "$1" | grep -v '^note:' | tail -1; }
say() { echo "case $1: $2"; }

# The inputs, built by the module tests/test_hostile.py builds its own with
T=(env PYTHONPATH="$REPO" "$PY" -m tools.hostile_cases)
"${T[@]}" files "$WORK" || exit 2

# 1: a helper grows; the second row must time the new graph (another artifact)
"${B[@]}" run uses_helper:build --out out/c1a.csv "${F[@]}" > l1a 2>&1; r1=$?
"${T[@]}" helper "$WORK" --width 256
"${B[@]}" run uses_helper:build --out out/c1b.csv "${F[@]}" > l1b 2>&1; r2=$?
say 1 "rc=$r1,$r2: $("$PY" -c "
import pandas as pd
a, b = (pd.read_csv(f).iloc[0] for f in ('out/c1a.csv', 'out/c1b.csv'))
print(f'before: {a.params_m:.4f} M params, {a.median_ms:.3f} ms, artifact {a.artifact_sha256[:10]}; after: '
      f'{b.params_m:.4f} M params, {b.median_ms:.3f} ms, artifact {b.artifact_sha256[:10]}; '
      + ('different graphs' if a.artifact_sha256 != b.artifact_sha256 else 'SAME GRAPH'))")"

# 2: two --resume of one file, one through a symlinked folder
"${B[@]}" run ok.onnx int64.onnx --out out/c2.csv --iters 3000 --warmup 5 --block 20 --threads 1 > l2 2>&1
head -2 out/c2.csv > out/c2.tmp && mv out/c2.tmp out/c2.csv   # the second row "not yet timed"
rm -f out/c2.samples/int64*; ln -s "$WORK/out" link
"${B[@]}" run --resume out/c2.csv > l2a 2>&1 & pa=$!
"${B[@]}" run --resume link/c2.csv > l2b 2>&1 & pb=$!
wait $pa; ra=$?; wait $pb; rb=$?
say 2 "rc=$ra,$rb: $(last l2a) | $(last l2b) | rows: $("$PY" -c "from bench.store import read_results; print(len(read_results('out/c2.csv')))" 2>&1)"

# 3: a complete last row without its newline
"${B[@]}" run ok.onnx --out out/c3.csv "${F[@]}" > /dev/null 2>&1; truncate -s -1 out/c3.csv
"${B[@]}" run --resume out/c3.csv > l3 2>&1; r=$?
say 3 "rc=$r: $(last l3) | rows: $("$PY" -c "from bench.store import read_results; print(len(read_results('out/c3.csv')))" 2>&1)"

# 4: --junit / --markdown onto the judged results file
"${B[@]}" run ok.onnx --out base.csv "${F[@]}" > /dev/null 2>&1
sum=$(md5sum < out/c3.csv)
"${B[@]}" check out/c3.csv --against base.csv --junit out/c3.csv > l4 2>&1; r=$?
"${B[@]}" check out/c3.csv --against base.csv --markdown base.csv > l4b 2>&1; r2=$?
say 4 "rc=$r,$r2: $(last l4) | unchanged: $([ "$sum" = "$(md5sum < out/c3.csv)" ] && echo yes || echo NO)"

# 5: ONNX files
for f in int64 float16 ir14 opset27 custom fails runfails; do
  "${B[@]}" run $f.onnx --out out/c5-$f.csv "${F[@]}" > l5 2>&1; r=$?
  say 5 "$f.onnx rc=$r: $(last l5)"
done
"${B[@]}" run dynh.onnx --resolution 64 --out out/c5-dynh.csv "${F[@]}" > l5 2>&1; r=$?
say 5 "dynh.onnx --resolution 64 rc=$r: $(last l5)"
say 5 "lock or other files left by the refused ones: $(ls -A out | grep -c 'c5-\(ir14\|opset27\|custom\|fails\|runfails\|dynh\)' )"

# 6: outputs and exceptions from user code
for fn in tuple_out dict_out index_error; do
  "${B[@]}" run hostile_nets:$fn --out out/c6-$fn.csv "${F[@]}" > l6 2>&1; r=$?
  say 6 "$fn rc=$r: $(last l6)"
done
"${B[@]}" run hostile_nets:tuple_out --checkpoint bad_ckpt.pt --out out/c6-ck.csv "${F[@]}" > l6 2>&1; r=$?
say 6 "non-tensor checkpoint rc=$r: $(last l6)"
"${B[@]}" run hostile_nets:tuple_out --top1 top1.bin --out out/c6-top1.csv "${F[@]}" > l6 2>&1; r=$?
say 6 "binary --top1 rc=$r: $(last l6)"
"${B[@]}" check out/c3.csv --against base.csv --seed -5 > l6 2>&1; r=$?
say 6 "check --seed -5 rc=$r: $(last l6)"

# 7: sys.exit from user code
for fn in exit1 exit0; do
  "${B[@]}" run hostile_nets:$fn --out out/c7-$fn.csv "${F[@]}" > l7 2>&1; r=$?
  say 7 "$fn rc=$r: $(last l7)"
done

# 8: names that cannot be row ids, refused before timing
s=$(date +%s)
"${B[@]}" run "my model.onnx" --out out/c8a.csv --iters 100000 --threads 1 > l8 2>&1; r=$?
say 8 "rc=$r in $(( $(date +%s) - s )) s: $(last l8)"
"${B[@]}" run ok.onnx int64.onnx "café.onnx" --out out/c8b.csv --iters 100000 --threads 1 > l8 2>&1; r=$?
say 8 "three files rc=$r: $(last l8) | files: $(ls out | grep -c c8)"

# 9: SIGTERM and kill -9 during the first row; SIGTERM during report
for sig in TERM KILL; do
  "${B[@]}" run mobilenetv2_100 --out out/c9-$sig.csv --iters 100000 --warmup 5 --block 20 --threads 1 > l9 2>&1 & p=$!
  for _ in $(seq 100); do grep -q '^protocol:' l9 && break; sleep 0.2; done; sleep 1
  kill -$sig $p; wait $p; r=$?
  left=$(ls -A out | grep "c9-$sig" | grep -v '^\.' | tr '\n' ' ')
  "${B[@]}" run ok.onnx --out out/c9-$sig.csv "${F[@]}" > l9b 2>&1; r2=$?
  say 9 "SIG$sig rc=$r: $(last l9) | left: [${left}] | same --out again rc=$r2"
done
"${B[@]}" report out/c3.csv --out rep > l9 2>&1 & p=$!
sleep 4; kill -TERM $p; wait $p; r=$?
say 9 "report SIGTERM rc=$r: $(last l9) | hidden half folders: $(ls -A | grep -c '^\.rep\.')"
"${B[@]}" report out/c3.csv --out rep2 > l9 2>&1 & p=$!
sleep 4; kill -KILL $p; wait $p 2>/dev/null; r=$?
n1=$(ls -A | grep -c '^\.rep2\.')
"${B[@]}" report out/c3.csv --out rep3 --no-plots > l9 2>&1; r2=$?
say 9 "report kill -9 rc=$r: half folders left: $n1; the next report (rc=$r2) swept them: $(ls -A | grep -c '^\.rep2\.') left"

# 10: two baseline saves of one name at once, 6 tries
wins=""
for i in 1 2 3 4 5 6; do
  "${B[@]}" baseline save out/c3.csv --name X --dir bl$i > l10a 2>&1 & pa=$!
  "${B[@]}" baseline save base.csv --name X --dir bl$i > l10b 2>&1 & pb=$!
  wait $pa; ra=$?; wait $pb; rb=$?
  wins="$wins $ra/$rb($(ls -A bl$i/* | grep -vc '^\.'))"
done
say 10 "rc pairs (baselines kept):$wins | $(grep -h error l10a l10b | head -1)"

# 11: absurd thread counts
"${B[@]}" run ok.onnx --threads 1000 --out out/c11.csv > l11 2>&1; r=$?
say 11 "rc=$r: $(last l11)"
