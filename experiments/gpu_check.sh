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
# 2. Runs the @pytest.mark.gpu tests (tests/test_gpu.py, tests/e2e/test_gpu_recipe.py) and the CPU-side GPU-path tests.
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

# The newest CUDA the driver supports picks the TensorRT wheel (tensorrt-cu12 or -cu13) and torch's fallback index.
CUDA_MAJOR=$(nvidia-smi | grep -o 'CUDA Version: [0-9]*' | grep -o '[0-9]*$' || echo 12)
torch_cuda() { $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; }
if [ -z "${NO_INSTALL:-}" ]; then
  if ! torch_cuda; then
    v=$($PY -c "import torch; print(torch.__version__.split('+')[0])" 2>/dev/null || echo "")
    say "installing a CUDA build of torch ${v:-(latest)} (driver supports CUDA ${CUDA_MAJOR})"
    $PY -m pip uninstall -y torch >>"$LOG" 2>&1 || true
    $PY -m pip install "torch${v:+==$v}" >>"$LOG" 2>&1 || true  # PyPI's Linux x86_64 wheels are CUDA builds
    if ! torch_cuda && [ "$CUDA_MAJOR" -lt 13 ]; then  # PyPI's build needs a newer driver: PyTorch's CUDA 12 index
      for cu in cu129 cu128 cu126; do
        $PY -m pip install --force-reinstall --no-deps --index-url "https://download.pytorch.org/whl/$cu" \
          "torch${v:+==$v}" >>"$LOG" 2>&1 && torch_cuda && break
      done
    fi
  fi
  if ! $PY -c "import onnxruntime as o, sys; sys.exit(0 if 'CUDAExecutionProvider' in o.get_available_providers() else 1)" 2>/dev/null; then
    say "installing onnxruntime-gpu in place of onnxruntime"
    $PY -m pip uninstall -y onnxruntime >>"$LOG" 2>&1 || true
    $PY -m pip install "onnxruntime-gpu[cuda,cudnn]" >>"$LOG" 2>&1
  fi
  if ! $PY -c "import tensorrt" 2>/dev/null; then
    trt="tensorrt-cu$([ "$CUDA_MAJOR" -ge 13 ] && echo 13 || echo 12)"
    say "installing TensorRT ($trt; what pip install 'optimizer[tensorrt]' installs, matched to the driver)"
    $PY -m pip install "$trt>=10" >>"$LOG" 2>&1
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
left=$((deadline - SECONDS - 360))  # leave the benchmark about 6 minutes
timeout $((left > 120 ? left : 120)) $PY -m pytest -q -m gpu tests/test_gpu.py tests/e2e/test_gpu_recipe.py 2>&1 | tee -a "$LOG" || status=1
timeout 120 $PY -m pytest -q tests/formats/test_tensorrt.py tests/triton/test_triton_gpu.py 2>&1 | tee -a "$LOG" || status=1

say "GPU benchmark"
left=$((deadline - SECONDS))
timeout $((left > 60 ? left : 60)) $PY experiments/bench_gpu.py --out experiments/results/gpu.txt 2>&1 | tee -a "$LOG" \
  || status=1
say "done in ${SECONDS} s (exit ${status}); results: experiments/results/gpu.txt, log: $LOG"
exit $status
