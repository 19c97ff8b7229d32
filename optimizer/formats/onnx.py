"""ONNX models: ONNX Runtime sessions, I/O read from the graph, served by Triton's onnxruntime backend."""

import numpy as np

from optimizer.artifact import Artifact
from optimizer.config import Device, HardwareConfig
from optimizer.errors import RecipeError
from optimizer.formats import Format, Session, threads
from optimizer.io import IOSpec, TensorSpec


def ort_session(path, hw: HardwareConfig):
    """An ONNX Runtime InferenceSession configured from the hardware entry."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads(hw)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = ["CPUExecutionProvider"]
    if hw.device == Device.cuda:
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)


def _open(art: Artifact, hw: HardwareConfig) -> Session:
    sess = ort_session(art.path, hw)
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
