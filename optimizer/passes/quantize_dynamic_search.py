"""The sensitivity proxy of accuracy-aware dynamic INT8 (``mode: dynamic`` with ``accuracy_aware``).

Dynamic INT8 stores weights in int8 and quantizes each call's input to uint8 over its own range (ONNX Runtime's
MatMulInteger, QAttention, DynamicQuantizeLinear). A node's score is the error that quantizing it alone adds to its
own output, simulated in NumPy on the float activations of one run of the float model on a few calibration samples:
``Q(x) @ Q(W)`` against ``x @ W``, ``x`` quantized per sample (uint8, asymmetric, its range stretched to hold 0) and
``W`` as the pass stores it (int8 symmetric, per output channel with ``per_channel``, 7 bits with ``reduce_range``),
the error measured as ``quantize_measure.channel_error`` (mean over output channels of each channel's relative
error). An embedding table (Gather, EmbedLayerNormalization) scores its own rounding error. One run, no
re-quantization: the whole ranking costs about one evaluation."""

from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

SENSITIVITY_SAMPLES = 16  # calibration samples the proxy runs on (every candidate's input is kept in memory)
# op type -> (activation input, weight input); the weight of a Gemm may be transposed (transB)
PROJECTIONS = {"MatMul": (0, 1), "Gemm": (0, 1), "Attention": (0, 1)}
TABLES = {"Gather": 0, "EmbedLayerNormalization": 2}  # op type -> the embedding table's input


def candidates(src: str, quantized: str) -> List[str]:
    """Nodes of the float model at ``src`` that the quantized model at ``quantized`` no longer has by name (ONNX
    Runtime's dynamic quantizer replaced them, and copies every other node as it is), in graph order: what
    ``nodes_to_exclude`` can keep in float."""
    import onnx

    kept = {n.name for n in onnx.load(quantized, load_external_data=False).graph.node}
    graph = onnx.load(src, load_external_data=False).graph
    return [n.name for n in graph.node if n.name and n.name not in kept]


def fake_weight(w: np.ndarray, per_channel: bool, reduce_range: bool) -> np.ndarray:
    """``w`` [in, out] rounded to int8 symmetric (7 bits with ``reduce_range``), one scale per output column with
    ``per_channel``, and back to float."""
    levels = 63.0 if reduce_range else 127.0
    peak = np.abs(w).max(axis=0, keepdims=True) if per_channel else np.abs(w).max(keepdims=True)
    scale = np.maximum(peak, 1e-12) / levels
    return np.clip(np.round(w / scale), -levels, levels) * scale


def fake_activation(x: np.ndarray) -> np.ndarray:
    """``x`` [samples, ..., in] rounded to uint8 over each sample's own range (stretched to hold 0), and back."""
    flat = x.reshape(len(x), -1)
    lo, hi = np.minimum(flat.min(1), 0.0), np.maximum(flat.max(1), 0.0)
    scale = np.maximum(hi - lo, 1e-12) / 255.0
    zero = np.round(-lo / scale)
    shape = (len(x),) + (1,) * (x.ndim - 1)
    scale, zero = scale.reshape(shape), zero.reshape(shape)
    return (np.clip(np.round(x / scale) + zero, 0, 255) - zero) * scale


def _weight(node, inits: Mapping[str, np.ndarray]) -> Optional[np.ndarray]:
    """The node's weight as [in, out], or None when it is no stored 2-D weight."""
    index = PROJECTIONS[node.op_type][1]
    w = inits.get(node.input[index]) if len(node.input) > index else None
    if w is None or w.ndim != 2:
        return None
    transposed = node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute)
    return w.T if transposed else w


def node_error(node, inits: Mapping[str, np.ndarray], tensors: Mapping[str, np.ndarray], per_channel: bool,
               reduce_range: bool) -> float:
    """The error quantizing ``node`` alone adds to its output (see the module's docstring); 0 for op types the
    proxy does not model (LSTM, GRU)."""
    from optimizer.passes.quantize_measure import channel_error

    if node.op_type in TABLES:
        table = inits.get(node.input[TABLES[node.op_type]])
        if table is None:
            return 0.0
        return channel_error(fake_weight(table.reshape(-1, table.shape[-1]).T, per_channel, reduce_range).T,
                             table.reshape(-1, table.shape[-1]))
    if node.op_type not in PROJECTIONS:
        return 0.0
    w = _weight(node, inits)
    x = tensors.get(node.input[PROJECTIONS[node.op_type][0]])
    if w is None or x is None or x.shape[-1] != w.shape[0]:
        return 0.0
    x = np.asarray(x, np.float32)
    exact = x @ w
    return channel_error(fake_activation(x) @ fake_weight(w, per_channel, reduce_range).astype(np.float32), exact)


def rank(src: str, names: List[str], feeds: Mapping[str, np.ndarray], per_channel: bool,
         reduce_range: bool) -> List[Tuple[str, float]]:
    """The candidates ``names`` of the float model at ``src``, most sensitive first, with their score (one run of
    the float model on ``feeds``, every candidate's activation input exposed)."""
    import onnx
    from onnx import numpy_helper

    from optimizer.passes.quantize_measure import run

    graph = onnx.load(src).graph
    inits: Dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    nodes = {n.name: n for n in graph.node if n.name in set(names)}
    inputs = sorted({n.input[PROJECTIONS[n.op_type][0]] for n in nodes.values()
                     if n.op_type in PROJECTIONS and n.input[PROJECTIONS[n.op_type][0]] not in inits})
    tensors = run(src, feeds, inputs, batch=4)
    score = {name: node_error(nodes[name], inits, tensors, per_channel, reduce_range) for name in names}
    return sorted(score.items(), key=lambda s: -s[1])
