#!/usr/bin/env bash
# Every check that needs a CUDA GPU, in one go, each under its own time limit, logs in one folder.
#
#     bash benchmarks/gpu_checks.sh [LOG_DIR]        (default: gpu-checks/)
#
# Runs, in order: nvidia-smi; the tests marked `gpu` (tvl1-torch on CUDA vs the CPU and OpenCV, I3D under
# bf16/fp16 autocast vs fp32, a GPU-trained head unpickled on the CPU); benchmarks/tvl1.py at 224x224,
# 340x256 and 640x360 (tvl1-torch batched on CUDA vs OpenCV on every core; the CPU tvl1-torch is skipped);
# benchmarks/extract_throughput.py on CUDA with I3D (untrained weights: timing only); benchmarks/tvl1_compile.py
# (which parts of tvl1-torch pay for torch.compile on CUDA; TorchTVL1.compiled_parts is the default).
# Needs the project's requirements (opencv-contrib for OpenCV's TV-L1) and the opencv-doc sample media
# (see tests/media.py; AQA_OPENCV_SAMPLES names a folder holding basketball1.png, basketball2.png and
# vtest.avi on an offline machine). On an offline GPU machine, run `python benchmarks/gpu_prepare.py`
# beforehand where pip works and carry the two folders it fills: the script installs .whl/ (OpenCV
# contrib) into a private folder when the machine's cv2 has no optflow, and uses .samples/ unless
# AQA_OPENCV_SAMPLES is set. Without an installed aqa-pipeline it imports the working tree.
# Each step's exit status is printed; the script's is non-zero when any step failed. The limits add up
# to 9.2 minutes.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
logs=${1:-gpu-checks}
mkdir -p "$logs"
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
cd "$here"

if ! "$py" -c "import aqa.extract" 2>/dev/null; then  # aqa is a namespace package: link the folders
    site=$(mktemp -d)
    mkdir -p "$site/aqa"
    for d in extract heads data pipelines; do ln -s "$here/$d" "$site/aqa/$d"; done
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi

if ls .whl/*.whl >/dev/null 2>&1 && ! "$py" -c "import cv2; cv2.optflow" 2>/dev/null; then
    cvsite=$(mktemp -d)  # the carried OpenCV contrib wheel, ahead of the machine's plain cv2
    "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$cvsite" .whl/*.whl \
        || { echo "== could not install .whl/*.whl"; exit 1; }
    export PYTHONPATH="$cvsite${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ -z "${AQA_OPENCV_SAMPLES:-}" ] && [ -d .samples ]; then
    export AQA_OPENCV_SAMPLES="$here/.samples"
fi

failed=0
step() {  # step NAME SECONDS CMD...: run CMD under a time limit, log to NAME.log, report its status
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" >"$logs/$name.log" 2>&1
    local rc=$?
    [ $rc -ne 0 ] && failed=1
    echo "== $name: rc=$rc in $((SECONDS - t0)) s (log $logs/$name.log)"
    tail -n 25 "$logs/$name.log"
}

step nvidia-smi 20 nvidia-smi
step versions 40 "$py" -c "import torch, torchvision, cv2; print('torch', torch.__version__, 'cuda', torch.version.cuda,
  'device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else None); print('torchvision',
  torchvision.__version__, 'opencv', cv2.__version__, 'optflow', hasattr(cv2, 'optflow'))"
step pytest-gpu 120 "$py" -m pytest -m gpu -q -p no:cacheprovider --timeout 100 tests
step tvl1 170 "$py" benchmarks/tvl1.py --skip-torch-cpu
step extract-throughput 100 "$py" benchmarks/extract_throughput.py --device cuda --backbone i3d --untrained
step tvl1-compile 100 "$py" benchmarks/tvl1_compile.py --device cuda --pairs 128
exit $failed
