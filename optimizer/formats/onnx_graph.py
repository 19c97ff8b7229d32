"""Small helpers over ONNX graphs shared by passes and the emitter."""

from collections import Counter
from pathlib import Path
from typing import Dict

from optimizer.errors import RecipeError


def check_onnx(path: Path, what: str) -> None:
    """Raise RecipeError naming ``what`` when ``path`` is not a loadable, valid ONNX model."""
    import onnx

    try:
        onnx.checker.check_model(str(path))
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RecipeError(f"{what} is not a valid ONNX model: {first[:200]}") from e


def op_counts(path: Path) -> Dict[str, int]:
    """Node count per op type of the main graph, sorted by op name."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return dict(sorted(Counter(n.op_type for n in model.graph.node).items()))


def opset(path: Path) -> int:
    """The model's opset of the default ONNX domain."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)


def upgrade_opset(src: Path, dst: Path, version: int) -> None:
    """Write ``src`` converted to opset ``version`` (``onnx.version_converter``) to ``dst``, checked."""
    import onnx
    from onnx import version_converter

    model = version_converter.convert_version(onnx.load(str(src)), version)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


INTEGER_OPS = {"MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul", "DynamicQuantizeLSTM", "QAttention",
               "QGemm", "QEmbedLayerNormalization", "QOrderedMatMul"}


def quantized_nodes(path: Path) -> Dict[str, int]:
    """Nodes that run on quantized weights, per op type: integer ops (``MatMulInteger``, ``QLinearConv``, ...)
    and, in a QDQ graph, the nodes fed a weight that is stored quantized (an initializer through a
    ``DequantizeLinear``). Empty when the quantizer found nothing to quantize."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    stored = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    weights = {o for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in stored for o in n.output}
    out: Counter = Counter()
    for n in graph.node:
        if n.op_type in INTEGER_OPS or n.op_type.startswith("QLinear") or (
                n.op_type not in ("QuantizeLinear", "DequantizeLinear") and set(n.input[:2]) & weights):
            out[n.op_type] += 1
    return dict(sorted(out.items()))


def check_runs(path: Path) -> None:
    """``path`` passes ``onnx.checker`` and loads in ONNX Runtime (CPU); the error of the first that fails."""
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(str(path))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def fold_inputs(src: Path, dst: Path, values: Dict[str, object], what: str) -> Dict[str, list]:
    """Write ``src`` to ``dst`` with the inputs named in ``values`` turned into initializers holding those values
    (a sample rate, a fixed flag: inputs fed unchanged every call), each cast to the input's type and checked
    against its declared shape; RecipeError naming ``what.<input>`` otherwise. Returns the folded values."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    inputs = {i.name: i for i in graph.input if i.name not in {t.name for t in graph.initializer}}
    folded = {}
    for name, value in values.items():
        if name not in inputs:
            raise RecipeError(f"{what}.{name}: the model has no input {name!r}; its inputs are {sorted(inputs)}")
        spec = inputs[name].type.tensor_type
        dtype = helper.tensor_dtype_to_np_dtype(spec.elem_type)
        try:
            array = np.asarray(value, dtype=dtype)
        except (TypeError, ValueError) as e:
            raise RecipeError(f"{what}.{name}: {value!r} is not a {dtype.name} value ({e})") from None
        dims = [d.dim_value if d.HasField("dim_value") else None for d in spec.shape.dim]
        if spec.HasField("shape") and (len(dims) != array.ndim or any(d not in (None, s) for d, s in zip(dims, array.shape))):
            shape = [d if d is not None else "?" for d in dims]
            raise RecipeError(f"{what}.{name}: the input has shape {shape}; the value given has {list(array.shape)}")
        graph.initializer.append(numpy_helper.from_array(array, name))
        graph.input.remove(inputs[name])
        folded[name] = array.tolist()
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return folded
