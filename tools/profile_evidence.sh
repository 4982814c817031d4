#!/bin/bash
# Issue 31's committed evidence (alone: it times): per-operator profiles on this CPU of the
# four EfficientMods in both variants, EfficientFormerV2-S2 and MobileNetV2, all timed as one
# interleaved group and then profiled round by round, with the Repeat-vs-Reshape difference
# of each EfficientMod per operator type and stage; then the report's stacked bars and tables.
#
#   bash tools/profile_evidence.sh [RESULTS_DIR] [PLOTS_DIR] [PROFILE OPTIONS...]
#
# Defaults: results/profiles and plots/profiles, the models' own resolution (224), 2 threads,
# 1000 timed iterations in blocks of 50, 5 rounds of 20 profiled iterations. It writes
#   RESULTS_DIR/ort-cpu.csv, .json, .compare.csv, .txt (the printed tables)
#   PLOTS_DIR/ort-cpu/ (README.md, tables/*.md|tex|csv, plots/profile_*.png|pdf)
# and refuses to overwrite any of them. Options after the folders go to `modbench profile`
# (later ones win), e.g. a quick try: ... /tmp/r /tmp/p --resolution 64 --iters 60 --profile-iters 5
# PYTHON defaults to .venv/bin/python.
set -euo pipefail
RESULTS=${1:-results/profiles}
PLOTS=${2:-plots/profiles}
shift $(( $# < 2 ? $# : 2 ))
P=${PYTHON:-.venv/bin/python}
MODELS="efficientmod_xxs efficientmod_xs efficientmod_s efficientmod_s_conv efficientformerv2_s2 mobilenetv2_100"
STEM=$RESULTS/ort-cpu
for f in "$STEM.csv" "$STEM.json" "$STEM.compare.csv" "$STEM.txt" "$PLOTS/ort-cpu"; do
  if [ -e "$f" ]; then echo "profile_evidence: $f exists; evidence is never overwritten" >&2; exit 2; fi
done
mkdir -p "$RESULTS" "$PLOTS"
# --variant repeat,reshape: the EfficientMods in both; the others have one form and run once.
# --compare reshape=repeat: each model profiled in both variants, Reshape against Repeat.
$P -m modbench profile $MODELS --runtime ort-cpu --variant repeat,reshape --compare reshape=repeat \
  --threads 2 --iters 1000 --block 50 --warmup 50 --rounds 5 --profile-iters 20 --by category,op_type,stage \
  --top 15 --out "$STEM" "$@" > "$STEM.txt"
$P -m modbench report --profiles "$STEM.csv" --out "$PLOTS/ort-cpu"
echo "written: $STEM.{csv,json,compare.csv,txt} and $PLOTS/ort-cpu/"
