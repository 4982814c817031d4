#!/usr/bin/env bash
# Bring onnxruntime-gpu to a lent GPU machine that has no network and only the
# CPU onnxruntime. The wheel (256 MB) is over the 64 MiB one device call carries,
# so it travels in parts, one per call, and is put together there.
#
#   bash tools/gpu_wheel.sh prepare    here: download, check, split into $DIR/part-*
#   bash tools/gpu_wheel.sh install    there: join the parts, check, install into $SITE,
#                                      say whether ORT CUDA can run and if not why
# tools/gpu_plan.sh puts $SITE (.gpu-site) first on PYTHONPATH when it exists; for
# anything else: PYTHONPATH=.gpu-site python3 -m pytest -m gpu ...
#
# Sequence with the device tool (calls back to back: an idle machine is given
# back after 30 s, and with it the parts already sent):
#   run "ls -l .gpu-wheel"  carry [.gpu-wheel/part-aa]       (starts the machine)
#   run "ls -l .gpu-wheel"  carry [.gpu-wheel/part-ab]       ... one call per part
#   run "bash tools/gpu_wheel.sh install && bash tools/gpu_plan.sh check table1"
#
# $DIR is kept out of git by .git/info/exclude (this clone only), so it never
# travels uncalled-for with the working tree.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=1.31.1
WHEEL=onnxruntime_gpu-$VERSION-cp312-cp312-manylinux_2_28_x86_64.whl
# The exact file measured with (what ORT build runs is part of the protocol).
SHA256=05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7
DIR=${DIR:-.gpu-wheel}
SITE=${SITE:-.gpu-site}
PY=${PYTHON:-python3}

die() { echo "gpu_wheel.sh: $*" >&2; exit 2; }

case "${1:-}" in
prepare)
    mkdir -p "$DIR"
    exclude=$(git rev-parse --git-path info/exclude)
    mkdir -p "$(dirname "$exclude")"
    for p in "/$DIR/" "/$SITE/"; do
        grep -qxF "$p" "$exclude" 2>/dev/null || echo "$p" >>"$exclude"
    done
    if [ ! -f "$DIR/$WHEEL" ]; then
        "$PY" -m pip download "onnxruntime-gpu==$VERSION" --python-version 3.12 \
            --platform manylinux_2_28_x86_64 --only-binary=:all: --no-deps -q -d "$DIR" \
            || die "cannot download onnxruntime-gpu $VERSION for cp312"
    fi
    echo "$SHA256  $DIR/$WHEEL" | sha256sum -c --quiet - || die "$WHEEL is not the pinned file"
    rm -f "$DIR"/part-*
    split -b 55M "$DIR/$WHEEL" "$DIR/part-"
    ls -l "$DIR"/part-*
    echo "send each part in its own call, e.g. carry [$DIR/$(cd "$DIR" && ls part-* | head -1)]"
    ;;
install)
    ls "$DIR"/part-* >/dev/null 2>&1 || die "no parts in $DIR: send them first (one per call)"
    cat "$DIR"/part-* >"$DIR/$WHEEL.joined"
    echo "$SHA256  $DIR/$WHEEL.joined" | sha256sum -c --quiet - \
        || die "the joined parts are not the pinned wheel (a part missing? $(ls "$DIR" | tr '\n' ' '))"
    mv "$DIR/$WHEEL.joined" "$DIR/$WHEEL"
    # --no-deps: its dependencies (numpy, protobuf, flatbuffers, ...) come with the
    # image's CPU onnxruntime; there is no network to fetch anything else. A wheel
    # is a zip: without pip, unpacking it is the same install.
    rm -rf "$SITE"
    if "$PY" -m pip --version >/dev/null 2>&1; then
        "$PY" -m pip install -q --no-deps --target "$SITE" "$DIR/$WHEEL"
    else
        "$PY" -m zipfile -e "$DIR/$WHEEL" "$SITE"
    fi
    # What ORT CUDA needs and what the machine has: the provider links CUDA 13
    # (libcudart.so.13, libcublas.so.13) and cuDNN 9, found through torch's.
    PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" "$PY" - <<'EOF'
import ctypes
try:
    import torch
    print(f"torch {torch.__version__}, built for CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
except Exception as exc:
    print(f"torch cannot be imported: {exc}")
for lib in ("libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcudnn.so.9"):
    try:
        ctypes.CDLL(lib)
        print(f"{lib}: loadable")
    except OSError as exc:
        print(f"{lib}: NOT loadable ({exc})")
import onnxruntime as ort
print(f"onnxruntime {ort.__version__} from {ort.__file__}; providers {ort.get_available_providers()}")
EOF
    PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" "$PY" bench.py gpu --runtime ort-cuda \
        || echo "ort-cuda cannot run here: the line above says why"
    ;;
*)
    die "usage: bash tools/gpu_wheel.sh prepare|install"
    ;;
esac
