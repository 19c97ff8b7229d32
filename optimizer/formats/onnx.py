"""ONNX models: ONNX Runtime sessions, I/O read from the graph, served by Triton's onnxruntime backend."""

from pathlib import Path

import numpy as np

from optimizer.artifact import Artifact
from optimizer.config import HardwareConfig
from optimizer.errors import RecipeError
from optimizer.formats import Format, Session, threads
from optimizer.formats.tensorrt import ORT_TRT_BATCH, profile_shapes, profile_strings
from optimizer.gpu import is_cuda
from optimizer.io import IOSpec, TensorSpec


def gpu_providers(hw: HardwareConfig, available, precision: str = "fp32", cache_dir=None, profiles=None):
    """ONNX Runtime's providers for a GPU entry: ``hardware.onnx_provider`` tensorrt puts the TensorRT EP first
    (FP16/INT8 as the model is, engines and timing cache under ``cache_dir``, optional shape profiles as
    ``{"min": "x:1x3,...", "opt": ..., "max": ...}``), then CUDA, then CPU for what neither takes."""
    if "CUDAExecutionProvider" not in available:
        raise RecipeError(f"hardware={hw.name} runs ONNX models on the GPU, which needs onnxruntime-gpu "
                          f"(pip uninstall -y onnxruntime && pip install onnxruntime-gpu); this one has {list(available)}")
    providers = [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    if hw.onnx_provider != "tensorrt":
        return providers
    if "TensorrtExecutionProvider" not in available:
        raise RecipeError("hardware.onnx_provider=tensorrt: this onnxruntime-gpu has no TensorRT execution provider "
                          "(it needs the TensorRT libraries it was built against on the library path)")
    options = {"device_id": 0, "trt_fp16_enable": precision in ("fp16", "int8"), "trt_int8_enable": precision == "int8",
               "trt_builder_optimization_level": 3}
    if cache_dir is not None:
        options.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache_dir),
                       trt_timing_cache_enable=True, trt_timing_cache_path=str(cache_dir))
    for key in ("min", "opt", "max"):
        if profiles and profiles.get(key):
            options[f"trt_profile_{key}_shapes"] = profiles[key]
    return [("TensorrtExecutionProvider", options), *providers]


def _trt_profiles(art: Artifact):
    """Shape profiles for the TensorRT EP from the model's I/O (none when an axis other than batch is dynamic)."""
    try:
        return profile_strings(profile_shapes(IOSpec.from_dict(art.meta["io"]), ORT_TRT_BATCH, {}, {}))
    except (KeyError, RecipeError):
        return {}


GRAPH_LEVELS = {"disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
                "all": "ORT_ENABLE_ALL"}


def ort_session(path, hw: HardwareConfig, art: Artifact = None, profile_prefix: str = ""):
    """An ONNX Runtime InferenceSession configured from the hardware entry (GPU providers on a cuda entry);
    ``profile_prefix``: ONNX Runtime's profiler on, its trace file named from it."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads(hw)
    parallel = hw.execution_mode.value == "parallel"
    opts.inter_op_num_threads = hw.inter_op_threads if parallel else 1
    opts.execution_mode = ort.ExecutionMode.ORT_PARALLEL if parallel else ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_LEVELS[hw.graph_optimization_level.value])
    if profile_prefix:
        opts.enable_profiling, opts.profile_file_prefix = True, profile_prefix
    providers = ["CPUExecutionProvider"]
    if is_cuda(hw):
        if hasattr(ort, "preload_dlls"):  # CUDA and cuDNN from the nvidia-* wheels, when they are installed
            ort.preload_dlls()
        meta = art.meta if art is not None else {}
        cache = Path(path).parent / "ort_tensorrt" if art is not None and art.id else None  # beside a cache entry
        providers = gpu_providers(hw, ort.get_available_providers(), str(meta.get("precision", "fp32")), cache,
                                  _trt_profiles(art) if art is not None and hw.onnx_provider == "tensorrt" else None)
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)


def _open(art: Artifact, hw: HardwareConfig) -> Session:
    sess = ort_session(art.path, hw, art)
    inputs = [i.name for i in sess.get_inputs()]
    outputs = [o.name for o in sess.get_outputs()]

    def run(feeds):
        missing = [n for n in inputs if n not in feeds]
        if missing:
            raise RecipeError(f"the model needs input(s) {missing}; the data has {sorted(feeds)}")
        return dict(zip(outputs, sess.run(outputs, {n: feeds[n] for n in inputs})))

    return Session(run, "onnxruntime", inputs)


def read_io(path) -> IOSpec:
    """Inputs (initializers excluded) and outputs of an ONNX graph; symbolic dims keep their names."""
    import onnx
    from onnx.helper import tensor_dtype_to_np_dtype

    model = onnx.load(str(path), load_external_data=False)
    try:  # outputs written without a shape get one
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - a model shape inference cannot follow keeps its declared shapes
        pass
    inits = {i.name for i in model.graph.initializer}

    def spec(v, axis0: str) -> TensorSpec:
        t = v.type.tensor_type
        dims = []
        for i, d in enumerate(t.shape.dim if t.HasField("shape") else []):
            if d.HasField("dim_value"):
                dims.append(d.dim_value)
            else:
                dims.append(d.dim_param or (axis0 if i == 0 else f"dim{i}"))
        dtype = np.dtype(tensor_dtype_to_np_dtype(t.elem_type)).name if t.elem_type else "float32"
        return TensorSpec(v.name, dtype, tuple(dims))

    return IOSpec(tuple(spec(v, "batch") for v in model.graph.input if v.name not in inits),
                  tuple(spec(v, "batch") for v in model.graph.output))


FORMAT = Format(name="onnx", file_name="model.onnx", open=_open, io=lambda art: read_io(art.path),
                triton_platform="onnxruntime_onnx", libraries=("onnx", "onnxruntime", "onnxslim"))
