#!/usr/bin/env bash
# The GPU path on a GPU machine, in one command (about 10 minutes, most of it the benchmark):
#
#   bash experiments/gpu_check.sh            # install what is missing, run the GPU tests, run the benchmark
#   NO_INSTALL=1 bash experiments/gpu_check.sh   # the environment is ready: test and benchmark only
#
# 1. Installs, only when missing: a CUDA build of torch (PyPI's Linux wheel of the installed version),
#    onnxruntime-gpu in place of onnxruntime (with its CUDA/cuDNN wheels), TensorRT (the `tensorrt` extra),
#    and, in a separate directory, the TensorRT 10 libraries that onnxruntime-gpu's TensorRT provider links
#    against (TensorRT 11 is a different soname; the provider is the only user of that directory).
# 2. Runs the @pytest.mark.gpu tests (tests/test_gpu.py) and the CPU-side GPU-path tests.
# 3. Runs experiments/bench_gpu.py, writing experiments/results/gpu.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}
TRT10_DIR=${TRT10_DIR:-$HOME/.cache/optimizer/trt10}
LOG=experiments/results/gpu_check.log
mkdir -p experiments/results
: > "$LOG"
say() { echo "== $*" | tee -a "$LOG"; }
deadline=$((SECONDS + 600))

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$LOG" \
  || { echo "gpu_check: nvidia-smi found no GPU; this script needs one" >&2; exit 2; }

if [ -z "${NO_INSTALL:-}" ]; then
  if ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    v=$($PY -c "import torch; print(torch.__version__.split('+')[0])" 2>/dev/null || echo "")
    say "installing a CUDA build of torch ${v:-(latest)}"
    $PY -m pip uninstall -y torch >>"$LOG" 2>&1 || true
    $PY -m pip install "torch${v:+==$v}" >>"$LOG" 2>&1   # PyPI's Linux x86_64 wheels are the CUDA builds
  fi
  if ! $PY -c "import onnxruntime as o, sys; sys.exit(0 if 'CUDAExecutionProvider' in o.get_available_providers() else 1)" 2>/dev/null; then
    say "installing onnxruntime-gpu in place of onnxruntime"
    $PY -m pip uninstall -y onnxruntime >>"$LOG" 2>&1 || true
    $PY -m pip install "onnxruntime-gpu[cuda,cudnn]" >>"$LOG" 2>&1
  fi
  if ! $PY -c "import tensorrt" 2>/dev/null; then
    say "installing TensorRT (pip install '.[tensorrt]')"
    $PY -m pip install ".[tensorrt]" >>"$LOG" 2>&1
  fi
  if [ ! -d "$TRT10_DIR/tensorrt_libs" ]; then
    say "installing the TensorRT 10 libraries for onnxruntime-gpu's TensorRT provider into $TRT10_DIR"
    $PY -m pip install --no-deps --target "$TRT10_DIR" "tensorrt-cu12-libs>=10.9,<11" >>"$LOG" 2>&1 \
      || say "no TensorRT 10 libraries: the ONNX Runtime + TensorRT provider rows will say why they are missing"
  fi
fi
if [ -d "$TRT10_DIR/tensorrt_libs" ]; then
  export LD_LIBRARY_PATH="$TRT10_DIR/tensorrt_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

$PY - <<'PY' | tee -a "$LOG"
import onnxruntime, torch
from optimizer import gpu
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), "| onnxruntime", onnxruntime.__version__,
      onnxruntime.get_available_providers(), "| tensorrt", gpu.tensorrt_version(), "|", gpu.gpus())
PY

say "GPU tests"
status=0
timeout $((deadline - SECONDS - 300)) $PY -m pytest -q -m gpu tests/test_gpu.py 2>&1 | tee -a "$LOG" || status=1
timeout 120 $PY -m pytest -q tests/test_tensorrt.py tests/test_triton_gpu.py 2>&1 | tee -a "$LOG" || status=1

say "GPU benchmark"
left=$((deadline - SECONDS))
timeout $((left > 60 ? left : 60)) $PY experiments/bench_gpu.py --out experiments/results/gpu.txt 2>&1 | tee -a "$LOG" \
  || status=1
say "done in ${SECONDS} s (exit ${status}); results: experiments/results/gpu.txt, log: $LOG"
exit $status
