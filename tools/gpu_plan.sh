#!/usr/bin/env bash
# The GPU measurement plan: paper Table 1, Repeat vs Reshape (interleaved), the
# EfficientMod-s batch sweep (Table 10's batch table) and the resolution sweep
# (Fig. 8), on every GPU runtime that works on this machine.
#
#   bash tools/gpu_plan.sh [PHASE ...]     phases: check table1 repeat-reshape batch
#                                          resolution trt compile   (default: the first five)
#
# Each phase is sized to end well inside a 10-minute command on one modern GPU
# (estimates in docs/gpu.md). Results go to $RESULTS (default results/gpu/), one
# CSV per phase and runtime, with samples. When $OUT is set (the device tool),
# everything written by this invocation is also packed into one tarball there,
# because a lent machine is wiped when it goes back.
#
# Environment: PYTHON (default python3), RUNTIMES (default "ort-cuda torch-cuda"),
# ITERS (default 1000 timed iterations per row), RESULTS, TAG (file name prefix).
set -u -o pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
RUNTIMES=${RUNTIMES:-"ort-cuda torch-cuda"}
ITERS=${ITERS:-1000}
RESULTS=${RESULTS:-results/gpu}
TAG=${TAG:-$(date -u +%Y%m%d-%H%M%S)}
export PYTHONUNBUFFERED=1
# onnxruntime-gpu brought by tools/gpu_wheel.sh, ahead of the image's CPU build
if [ -d .gpu-site ]; then export PYTHONPATH="$PWD/.gpu-site${PYTHONPATH:+:$PYTHONPATH}"; fi
mkdir -p "$RESULTS"
LOG="$RESULTS/$TAG-plan.log"
WRITTEN=("$LOG")
FAILED=0

say() { echo "== $*" | tee -a "$LOG"; }

usable() {  # one line of why not, and a skip, rather than a failure mid-lease
    local why
    if why=$("$PY" bench.py gpu --runtime "$1" 2>&1 >/dev/null); then return 0; fi
    say "skip $1: ${why#bench.py: error: }"
    return 1
}

bench() {  # bench NAME RUNTIME ARGS...: one results CSV, never stops the plan
    local name=$1 rt=$2; shift 2
    local out="$RESULTS/$TAG-$name-$rt.csv"
    say "$name on $rt -> $out"
    if "$PY" bench.py run --runtime "$rt" --out "$out" "$@" 2>&1 | tee -a "$LOG"; then
        :
    else
        FAILED=$((FAILED + 1)); say "FAILED: $name on $rt"
    fi
    [ -e "$out" ] && WRITTEN+=("$out" "${out%.csv}.run.json" "${out%.csv}.samples")
}

phase_check() { "$PY" bench.py gpu 2>&1 | tee -a "$LOG"; nvidia-smi 2>&1 | tee -a "$LOG" >/dev/null; }

phase_table1() {
    for rt in $RUNTIMES; do usable "$rt" && bench table1 "$rt" --suite table1 --iters "$ITERS" --warmup 100; done
}

phase_repeat_reshape() {
    # Both variants of each model in one process, alternating in blocks of 50:
    # the ratio is what a reproduction can trust, not two runs minutes apart.
    for rt in $RUNTIMES; do
        usable "$rt" && bench repeat-reshape "$rt" --suite efficientmod --variant repeat,reshape \
            --iters $((ITERS * 2)) --warmup 100
    done
}

phase_batch() {
    for rt in $RUNTIMES; do
        usable "$rt" && bench batch "$rt" efficientmod_s --batch 1,2,4,8,16,32,64 \
            --iters $((ITERS / 2)) --warmup 50
    done
}

phase_resolution() {
    # Fig. 8's 10-15M-parameter models that exist here (MobileFormer does not);
    # one command per model so a model that cannot take a size loses only its own rows.
    for rt in $RUNTIMES; do
        usable "$rt" || continue
        for m in efficientmod_s efficientmod_s_conv efficientformerv2_s2 mobilevitv2_150; do
            bench "resolution-$m" "$rt" "$m" --resolution 224,256,288,320,352,384,416,448,480,512 \
                --iters $((ITERS / 2)) --warmup 50
        done
    done
}

phase_trt() {
    usable ort-trt || return 0
    for p in fp32 fp16; do
        bench "table1-$p" ort-trt --suite efficientmod --precision "$p" --iters "$ITERS" --warmup 100
    done
}

phase_compile() {
    usable torch-compile-cuda || return 0
    bench table1-compile torch-compile-cuda --suite efficientmod --iters "$ITERS" --warmup 100
    bench table1-fp16 torch-cuda --suite efficientmod --precision fp16 --iters "$ITERS" --warmup 100
}

PHASES=("$@")
[ ${#PHASES[@]} -eq 0 ] && PHASES=(check table1 repeat-reshape batch resolution)
for ph in "${PHASES[@]}"; do
    fn="phase_${ph//-/_}"
    if ! declare -F "$fn" >/dev/null; then echo "unknown phase $ph" >&2; exit 2; fi
    say "phase $ph ($(date -u +%H:%M:%S))"
    "$fn"
done
say "done: $FAILED failed command(s)"

if [ -n "${OUT:-}" ]; then
    if tar czf "$OUT/$TAG-gpu-results.tgz" "${WRITTEN[@]}"; then
        echo "packed ${#WRITTEN[@]} paths into $OUT/$TAG-gpu-results.tgz (unpack from the repository root)"
    else
        echo "packing results into $OUT failed; they are under $RESULTS" >&2; FAILED=$((FAILED + 1))
    fi
fi
[ "$FAILED" -eq 0 ]
