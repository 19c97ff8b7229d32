"""What the accuracy-aware INT8 search measures: a model's outputs over a split with ONNX Runtime (with inner
tensors exposed), the mean cosine of outputs to a reference's, and a tensor's per-channel relative error."""

from typing import Dict, Mapping

import numpy as np

from optimizer.errors import PassError

COSINE_MIN_ELEMENTS = 8  # outputs with fewer values per sample are left out of the cosine (as in optimizer.evaluate)


def split_feeds(split: Mapping[str, np.ndarray], path: str, samples: int, step: str, name: str) -> Dict:
    """The first ``samples`` samples (0: all) of ``split`` for every input of the model at ``path``."""
    import onnxruntime as ort

    names = [i.name for i in ort.InferenceSession(path, providers=["CPUExecutionProvider"]).get_inputs()]
    missing = [n for n in names if n not in split]
    if missing:
        raise PassError(step, f"accuracy_aware: the {name} split has no array for model input(s) {missing}")
    return {n: np.ascontiguousarray(split[n][:samples or None]) for n in names}


def run(path: str, feeds: Mapping[str, np.ndarray], extra=(), batch: int = 16, optimize: bool = True) -> Dict:
    """Every output of the model at ``path`` over ``feeds`` (``batch`` samples at a time), and the tensors named in
    ``extra`` exposed as outputs of a copy of the graph."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if not optimize:  # fake-quantized arithmetic as written, no QDQ fusion
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    model: object = path
    if extra:
        proto = onnx.load(path)
        have = {o.name for o in proto.graph.output}
        proto.graph.output.extend([onnx.ValueInfoProto(name=t) for t in extra if t not in have])
        model = proto.SerializeToString()
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    n = len(next(iter(feeds.values())))
    parts = [session.run(None, {k: v[i:i + batch] for k, v in feeds.items()}) for i in range(0, n, batch)]
    return {name: np.concatenate([p[j] for p in parts]) for j, name in enumerate(names)}


def mean_cosine(outputs: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> float:
    """The lowest over the model's outputs of the mean per-sample cosine to the reference's (outputs with fewer
    than 8 values per sample are left out unless all are)."""
    rows = {k: (np.asarray(outputs[k], np.float64).reshape(len(v), -1), np.asarray(v, np.float64).reshape(len(v), -1))
            for k, v in reference.items()}
    wide = {k: ab for k, ab in rows.items() if ab[1].shape[1] >= COSINE_MIN_ELEMENTS} or rows
    means = []
    for a, b in wide.values():
        norms = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
        means.append(float(np.mean(np.sum(a * b, axis=1) / norms)))
    return min(means)


def channel_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over the last axis's channels of each channel's relative L2 error of ``a`` against ``b`` (floored at
    0.01 % of the mean channel's size): a few huge channels do not hide the rest rounded to nothing."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    width = b.shape[-1] if b.ndim else 1
    err, ref = (a - b).reshape(-1, width), b.reshape(-1, width)
    norms = np.linalg.norm(ref, axis=0)
    return float(np.mean(np.linalg.norm(err, axis=0) / np.maximum(norms, max(1e-4 * float(norms.mean()), 1e-12))))
