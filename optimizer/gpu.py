"""What this machine offers a GPU path, found without importing torch, tensorrt or any CUDA Python package.

The CUDA driver (``libcuda.so.1``) is asked through ``ctypes`` for its devices, name and compute capability;
TensorRT's presence and version come from package metadata. Both are cheap, so the plan can refuse a recipe
with a tensorrt step before any work, and CPU recipes never load a CUDA library."""

import ctypes
import importlib.util
import subprocess
from dataclasses import dataclass
from importlib import metadata
from typing import List, Optional

INSTALL_HINT = "pip install 'optimizer[tensorrt]'"
TENSORRT_DISTRIBUTIONS = ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11")
_CC_MAJOR, _CC_MINOR = 75, 76  # CUdevice_attribute: COMPUTE_CAPABILITY_MAJOR / _MINOR


@dataclass(frozen=True)
class Gpu:
    index: int
    name: str  # e.g. "NVIDIA A10G"
    compute_capability: str  # e.g. "8.6"


def _driver():
    """The CUDA driver library, initialised; None where there is none (or no device it can use)."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return None
    return lib if lib.cuInit(0) == 0 else None


def gpus() -> List[Gpu]:
    """The CUDA devices the driver sees (empty without a driver or a device)."""
    lib = _driver()
    if lib is None:
        return []
    count = ctypes.c_int(0)
    if lib.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return []
    found = []
    for i in range(count.value):
        dev, name = ctypes.c_int(0), ctypes.create_string_buffer(256)
        major, minor = ctypes.c_int(0), ctypes.c_int(0)
        if lib.cuDeviceGet(ctypes.byref(dev), i) != 0:
            continue
        lib.cuDeviceGetName(name, 256, dev)
        lib.cuDeviceGetAttribute(ctypes.byref(major), _CC_MAJOR, dev)
        lib.cuDeviceGetAttribute(ctypes.byref(minor), _CC_MINOR, dev)
        found.append(Gpu(i, name.value.decode(errors="replace"), f"{major.value}.{minor.value}"))
    return found


def tensorrt_version() -> Optional[str]:
    """The installed TensorRT's version (from package metadata, without importing it), or None."""
    if importlib.util.find_spec("tensorrt") is None:
        return None
    for dist in TENSORRT_DISTRIBUTIONS:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def missing_for_tensorrt(device: str, trt_version: Optional[str], devices: List[Gpu]) -> List[str]:
    """What a TensorRT engine build lacks here, each as a phrase saying how to get it; empty when nothing."""
    missing = []
    if device != "cuda":
        missing.append(f"a GPU hardware entry (hardware.device is {device}; e.g. hardware=aws_g5_xlarge)")
    if trt_version is None:
        missing.append(f"TensorRT (not installed: {INSTALL_HINT})")
    if not devices:
        missing.append("an NVIDIA GPU (the CUDA driver, libcuda.so.1, sees none on this machine)")
    return missing


def parse_smi_apps(text: str, pid: int) -> Optional[float]:
    """MiB of GPU memory ``pid`` holds, from ``nvidia-smi --query-compute-apps=pid,used_memory
    --format=csv,noheader,nounits`` output (summed over devices); None when the process holds none."""
    total, seen = 0.0, False
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit() and int(parts[0]) == pid:
            try:
                total += float(parts[1])
                seen = True
            except ValueError:
                continue
    return total if seen else None


def process_memory_mb(pid: int) -> Optional[float]:
    """GPU memory held by ``pid`` as nvidia-smi reports it (what every runtime allocated: torch's caching
    allocator, ONNX Runtime's arena, TensorRT's engine and activations); None without nvidia-smi."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_smi_apps(out.stdout, pid) if out.returncode == 0 else None


def is_cuda(hardware) -> bool:
    """Whether a hardware entry runs models on a GPU (``hardware.device=cuda``): the one GPU check."""
    return getattr(hardware.device, "value", hardware.device) == "cuda"
