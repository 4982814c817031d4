#!/usr/bin/env bash
# The latency gate of action.yml, as a script: time the pull request's base and head
# models alternately (`modbench check --interleaved`) and judge them.
#
# Every input is an environment variable, so the same script runs in the composite
# action, under `act`, in another CI, or by hand (tests/test_action_gate.py runs it):
#   MODBENCH_MODELS        comma list of model specs (mypkg.net:build, src/net.py:build, timm:NAME, ...)
#   MODBENCH_BASE_DIR      checkout of the base commit (its own code builds the baseline)
#   MODBENCH_HEAD_DIR      checkout of the head commit (default: the current directory)
#   MODBENCH_WORK          scratch folder (export cache, results, baseline, summary)
#   MODBENCH_SOURCE_DIR    folder of each checkout that holds the importable code (default .)
#   MODBENCH_ITERS, MODBENCH_WARMUP, MODBENCH_BLOCK, MODBENCH_THRESHOLD, MODBENCH_THREADS,
#   MODBENCH_RESOLUTION, MODBENCH_MODEL_ARGS (space-separated KEY=VALUE)
#   MODBENCH_FAIL_ON_NOT_COMPARABLE  true (default): a gate that could not judge fails the job
#   MODBENCH_CMD           how to call modbench (default: modbench)
# Exit: 0 pass, 1 a regression (or not comparable when that fails), 2 bad input.
set -u -o pipefail

die() { echo "modbench gate: $*" >&2; exit 2; }
[ -n "${MODBENCH_MODELS:-}" ] || die "no models: set the 'models' input (e.g. mypkg.net:build)"
[ -n "${MODBENCH_BASE_DIR:-}" ] && [ -d "$MODBENCH_BASE_DIR" ] || die "MODBENCH_BASE_DIR is not a folder"
head_dir=$(cd "${MODBENCH_HEAD_DIR:-.}" && pwd) || die "MODBENCH_HEAD_DIR is not a folder"
base_dir=$(cd "$MODBENCH_BASE_DIR" && pwd)
work=${MODBENCH_WORK:-${RUNNER_TEMP:-/tmp}/modbench-gate}
mkdir -p "$work" && work=$(cd "$work" && pwd) || die "cannot create $work"
read -r -a cmd <<< "${MODBENCH_CMD:-modbench}"
src=${MODBENCH_SOURCE_DIR:-.}
iters=${MODBENCH_ITERS:-300}; warmup=${MODBENCH_WARMUP:-20}; block=${MODBENCH_BLOCK:-25}
IFS=', ' read -r -a models <<< "$MODBENCH_MODELS"

common=()
for kv in ${MODBENCH_MODEL_ARGS:-}; do common+=(--model-arg "$kv"); done
run_opts=(--iters "$block" --warmup 2 --block "$block")   # the base run's export is what counts
[ -n "${MODBENCH_THREADS:-}" ] && run_opts+=(--threads "$MODBENCH_THREADS")
[ -n "${MODBENCH_RESOLUTION:-}" ] && run_opts+=(--resolution "$MODBENCH_RESOLUTION")
check_opts=(--iters "$iters" --warmup "$warmup" --block "$block" --threshold "${MODBENCH_THRESHOLD:-0.05}")
case "${MODBENCH_FAIL_ON_NOT_COMPARABLE:-true}" in
  true|True|TRUE|1|yes) check_opts+=(--strict) ;;
  false|False|FALSE|0|no) ;;
  *) die "fail-on-not-comparable must be true or false, not '${MODBENCH_FAIL_ON_NOT_COMPARABLE}'" ;;
esac

# One export cache for both sides: `baseline save` keeps the base's ONNX files from it.
export MODBENCH_CACHE="$work/cache"
stamp=$(date +%Y%m%d-%H%M%S)-$$
base_csv="$work/base-$stamp.csv"; ab_csv="$work/ab-$stamp.csv"; summary="$work/summary-$stamp.md"

# Each side imports the user's models from its own checkout: MODBENCH_PYTHONPATH puts
# it before an installed copy of the user's package (and, unlike PYTHONPATH, never
# before modbench's own `models`/`bench` packages); each step runs inside its checkout.
echo "::group::base ($base_dir): export and a short run" >&2
(cd "$base_dir" && MODBENCH_PYTHONPATH="$base_dir/$src" \
  "${cmd[@]}" run "${models[@]}" "${run_opts[@]}" ${common[@]+"${common[@]}"} --out "$base_csv") || die "the base's models did not run (above)"
"${cmd[@]}" baseline save "$base_csv" --name pr-base --dir "$work/baselines" --replace >&2 \
  || die "the base run could not be saved as a baseline (above)"
echo "::endgroup::" >&2

echo "::group::head ($head_dir) against base, interleaved" >&2
(cd "$head_dir" && MODBENCH_PYTHONPATH="$head_dir/$src" \
  "${cmd[@]}" check --interleaved --baseline pr-base --baseline-dir "$work/baselines" \
  --models "$MODBENCH_MODELS" ${common[@]+"${common[@]}"} "${check_opts[@]}" --out "$ab_csv" --markdown "$summary")
rc=$?
echo "::endgroup::" >&2
if [ -f "$summary" ]; then
  [ -n "${GITHUB_STEP_SUMMARY:-}" ] && cat "$summary" >> "$GITHUB_STEP_SUMMARY"
  cp "$summary" "$work/summary.md"
fi
[ -n "${GITHUB_OUTPUT:-}" ] && { echo "results=$ab_csv"; echo "summary=$work/summary.md"; echo "exit-code=$rc"; } >> "$GITHUB_OUTPUT"
exit $rc
