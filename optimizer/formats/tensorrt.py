"""TensorRT engines (``model.plan``): named I/O with dynamic shapes, run on the GPU with torch's CUDA tensors as
buffers, served by Triton's ``tensorrt_plan`` platform.

An engine belongs to the TensorRT version and GPU it was built on (recorded in ``meta["tensorrt"]``); its I/O
is written beside it (``io.json``) when it is built, so reading it needs no GPU."""

import json
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from optimizer.artifact import Artifact
from optimizer.config import HardwareConfig
from optimizer.errors import RecipeError
from optimizer.formats import Format, Session
from optimizer.gpu import is_cuda
from optimizer.io import IOSpec, TensorSpec

_TORCH_DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "UINT8": "uint8",
                 "INT32": "int32", "INT64": "int64", "BOOL": "bool"}  # trt.DataType name -> torch dtype name


Range = Tuple[int, int, int]  # min, opt, max
ORT_TRT_BATCH = (1, 32, 64)  # the TensorRT EP's batch profile: the benchmark's sizes and the Triton sweep's cap


def _axis_range(t: TensorSpec, i: int, d, batch: Range, axes, sample, fallback: Optional[int]) -> Range:
    if isinstance(d, int) and d > 0:
        return d, d, d
    if i == 0 and d == "batch":
        return tuple(batch)
    if str(d) in axes:
        return tuple(int(x) for x in axes[str(d)])
    if t.name in sample and 0 < i <= len(sample[t.name]):
        size = int(sample[t.name][i - 1])
        return size, size, size
    if fallback is not None:
        return fallback, fallback, fallback
    raise RecipeError(f"input {t.name!r} axis {i} ({d!r}) is dynamic and its range is unknown; "
                      f"set passes.<step>.axes.{d}=[min,opt,max]")


def profile_shapes(io: IOSpec, batch: Range, axes: Mapping[str, Sequence[int]] = None,
                   sample: Mapping[str, Sequence[int]] = None, fallback: Optional[int] = None,
                   every_input: bool = False) -> Dict[str, Tuple[Tuple[int, ...], ...]]:
    """``{input: (min shape, opt shape, max shape)}`` for every input with a dynamic axis (``every_input``:
    for every input, as Triton's accelerator settings list them).

    Axis 0 named ``batch`` takes ``batch``; another named axis takes ``axes[name]``, else the size it has in
    ``sample`` (each input's per-sample shape in the data, batch axis excluded) for all three, else
    ``fallback`` (None: a RecipeError asking for ``axes``)."""
    axes, sample, out = axes or {}, sample or {}, {}
    for t in io.inputs:
        if not every_input and all(isinstance(d, int) for d in t.shape):
            continue
        dims = [_axis_range(t, i, d, batch, axes, sample, fallback) for i, d in enumerate(t.shape)]
        out[t.name] = tuple(tuple(r[k] for r in dims) for k in range(3))
    return out


def profile_strings(shapes) -> dict:
    """``{input: (min, opt, max) shapes}`` as the TensorRT EP's ``trt_profile_*_shapes`` strings."""
    return {key: ",".join(f"{name}:{'x'.join(str(d) for d in s[k])}" for name, s in shapes.items())
            for k, key in enumerate(("min", "opt", "max"))} if shapes else {}


def _io(art: Artifact) -> IOSpec:
    if "io" in art.meta:
        return IOSpec.from_dict(art.meta["io"])
    sidecar = Path(art.path).parent / "io.json"
    if not sidecar.exists():
        raise RecipeError(f"TensorRT engine {art.path} has no io.json beside it; rebuild it with the tensorrt pass")
    return IOSpec.from_dict(json.loads(sidecar.read_text()))


def _engine(art: Artifact, runtime, trt):
    engine = runtime.deserialize_cuda_engine(Path(art.path).read_bytes())
    if engine is None:
        built = art.meta.get("tensorrt", {}).get("target", "another TensorRT or GPU")
        raise RecipeError(f"{art.path}: TensorRT {trt.__version__} cannot load this engine (built for {built}); "
                          f"rebuild it on this machine")
    return engine


class _Runner:
    """An engine with one execution context on GPU 0: inputs copied to the device on a private stream, the
    engine enqueued, the stream synchronized and the outputs copied back, so a timed call covers the whole
    round trip."""

    def __init__(self, art: Artifact):
        import tensorrt as trt
        import torch

        torch.cuda.init()  # TensorRT and torch share the device's primary context
        self.art, self.torch = art, torch
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))  # must outlive the engine
        self.engine = _engine(art, self.runtime, trt)
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.dtypes = {n: getattr(torch, _TORCH_DTYPES[self.engine.get_tensor_dtype(n).name]) for n in names}
        self.stream = torch.cuda.Stream()

    def __call__(self, feeds):
        torch, context = self.torch, self.context
        missing = [n for n in self.inputs if n not in feeds]
        if missing:
            raise RecipeError(f"the model needs input(s) {missing}; the data has {sorted(feeds)}")
        with torch.cuda.stream(self.stream):
            keep = []  # device buffers live until the stream is done with them
            for n in self.inputs:
                x = torch.from_numpy(np.ascontiguousarray(feeds[n])).to("cuda", self.dtypes[n])
                if not context.set_input_shape(n, tuple(x.shape)):
                    profile = self.art.meta.get("tensorrt", {}).get("profile", {}).get(n)
                    raise RecipeError(f"input {n!r} of shape {list(x.shape)} is outside the engine's profile "
                                      f"(min, opt, max: {profile}); rebuild with a wider passes.<step>.max_batch")
                context.set_tensor_address(n, x.data_ptr())
                keep.append(x)
            out = {}
            for n in self.outputs:
                out[n] = torch.empty(tuple(context.get_tensor_shape(n)), dtype=self.dtypes[n], device="cuda")
                context.set_tensor_address(n, out[n].data_ptr())
            if not context.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            self.stream.synchronize()
        return {n: (t.float() if t.is_floating_point() and t.dtype != torch.float64 else t).cpu().numpy()
                for n, t in out.items()}

    def close(self) -> None:
        self.context = self.engine = self.runtime = None  # in this order: context, engine, runtime


def _check_device(hw: HardwareConfig) -> None:
    if not is_cuda(hw):
        raise RecipeError(f"a TensorRT engine runs on a GPU; hardware={hw.name} is {hw.device.value}")


def _open(art: Artifact, hw: HardwareConfig) -> Session:
    _check_device(hw)
    runner = _Runner(art)
    return Session(runner, "tensorrt", runner.inputs, runner.close)


def layer_times(art: Artifact, hw: HardwareConfig, feeds, runs: int = 20) -> Dict[str, float]:
    """Mean milliseconds per layer over ``runs`` calls on ``feeds``, from TensorRT's IProfiler (layer names
    as the engine inspector lists them, in layers.json), slowest first."""
    import tensorrt as trt

    _check_device(hw)

    class Profiler(trt.IProfiler):
        def __init__(self):
            trt.IProfiler.__init__(self)
            self.ms: Dict[str, List[float]] = {}

        def report_layer_time(self, layer_name, ms):
            self.ms.setdefault(layer_name, []).append(ms)

    runner = _Runner(art)
    try:
        runner(feeds)  # warm-up, unprofiled
        profiler = Profiler()
        runner.context.profiler = profiler
        for _ in range(runs):
            runner(feeds)
    finally:
        runner.close()
    means = {name: sum(v) / len(v) for name, v in profiler.ms.items()}
    return dict(sorted(means.items(), key=lambda kv: -kv[1]))


# TensorRT's version and the GPU enter the cache key through the tensorrt pass's plan-time ``target``, not
# ``libraries`` (which would key every pass, CPU ones included, on whether TensorRT is installed).
FORMAT = Format(name="tensorrt", file_name="model.plan", open=_open, io=_io, triton_platform="tensorrt_plan",
                libraries=())
