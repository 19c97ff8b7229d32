"""TensorRT engines (``model.plan``): named I/O with dynamic shapes, run on the GPU with torch's CUDA tensors as
buffers, served by Triton's ``tensorrt_plan`` platform.

An engine belongs to the TensorRT version and GPU it was built on (recorded in ``meta["tensorrt"]``); its I/O
is written beside it (``io.json``) when it is built, so reading it needs no GPU."""

import json
from pathlib import Path

import numpy as np

from optimizer.artifact import Artifact
from optimizer.config import Device, HardwareConfig
from optimizer.errors import RecipeError
from optimizer.formats import Format, Session
from optimizer.io import IOSpec

_TORCH_DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "UINT8": "uint8",
                 "INT32": "int32", "INT64": "int64", "BOOL": "bool"}  # trt.DataType name -> torch dtype name


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


def _open(art: Artifact, hw: HardwareConfig) -> Session:
    """A session on GPU 0: inputs copied to the device on a private stream, the engine enqueued, the stream
    synchronized and the outputs copied back, so a timed call covers the whole round trip."""
    if hw.device != Device.cuda:
        raise RecipeError(f"a TensorRT engine runs on a GPU; hardware={hw.name} is {hw.device.value}")
    import tensorrt as trt
    import torch

    torch.cuda.init()  # TensorRT and torch share the device's primary context
    log = trt.Logger(trt.Logger.WARNING)
    runtime = trt.Runtime(log)  # must outlive the engine: the session's closure holds it
    engine = _engine(art, runtime, trt)
    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    outputs = [n for n in names if n not in inputs]
    dtypes = {n: getattr(torch, _TORCH_DTYPES[engine.get_tensor_dtype(n).name]) for n in names}
    stream = torch.cuda.Stream()

    def run(feeds):
        missing = [n for n in inputs if n not in feeds]
        if missing:
            raise RecipeError(f"the model needs input(s) {missing}; the data has {sorted(feeds)}")
        with torch.cuda.stream(stream):
            keep = []  # device buffers live until the stream is done with them
            for n in inputs:
                x = torch.from_numpy(np.ascontiguousarray(feeds[n])).to("cuda", dtypes[n])
                if not context.set_input_shape(n, tuple(x.shape)):
                    profile = art.meta.get("tensorrt", {}).get("profile", {}).get(n)
                    raise RecipeError(f"input {n!r} of shape {list(x.shape)} is outside the engine's profile "
                                      f"(min, opt, max: {profile}); rebuild with a wider passes.<step>.max_batch")
                context.set_tensor_address(n, x.data_ptr())
                keep.append(x)
            out = {}
            for n in outputs:
                out[n] = torch.empty(tuple(context.get_tensor_shape(n)), dtype=dtypes[n], device="cuda")
                context.set_tensor_address(n, out[n].data_ptr())
            if not context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            stream.synchronize()
        return {n: (t.float() if t.is_floating_point() and t.dtype != torch.float64 else t).cpu().numpy()
                for n, t in out.items()}

    def close():
        nonlocal context, engine, runtime
        context = engine = runtime = None  # in this order: context, engine, runtime

    return Session(run, "tensorrt", inputs, close)


# TensorRT's version and the GPU enter the cache key through the tensorrt pass's plan-time ``target``, not
# ``libraries`` (which would key every pass, CPU ones included, on whether TensorRT is installed).
FORMAT = Format(name="tensorrt", file_name="model.plan", open=_open, io=_io, triton_platform="tensorrt_plan",
                libraries=())
