"""Accuracy-aware static INT8 (``passes.<step>.accuracy_aware``): when the quantized model's mean cosine to the float
model misses ``target_cosine``, the quantized nodes are ranked by a sensitivity proxy and the smallest k such that
keeping the k most sensitive in float meets the bound is found by bisection over that ranking.

The proxy costs one run of each model on a few calibration samples, every quantized node's input and output
exposed as graph outputs: a node's score is the relative error its output has against the float model's minus the
error its input already carried, i.e. what quantizing that node added (a node downstream of a fragile one inherits
its error but adds little). The bound is measured with ONNX Runtime on the evaluation split against the pass's
input model, so no timing is involved; one evaluation is one quantization plus one run. The bisection assumes that
keeping more of the ranking in float never hurts: with ``n`` quantized nodes it takes at most
``2 + floor(log2(n))`` evaluations, the plain quantization included."""

import os
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Tuple

import numpy as np

from optimizer.errors import PassError

DEFAULT_TARGET = 0.99  # target_cosine when neither the step nor the recipe's constraints.min_cosine sets one
SENSITIVITY_SAMPLES = 32  # calibration samples the proxy runs on
COSINE_MIN_ELEMENTS = 8  # outputs with fewer values per sample are left out of the cosine (as in measure.evaluate)
QDQ = ("QuantizeLinear", "DequantizeLinear")


def split_feeds(split: Mapping[str, np.ndarray], path: str, samples: int, step: str, name: str) -> Dict:
    """The first ``samples`` samples of ``split`` for every input of the model at ``path``."""
    import onnxruntime as ort

    names = [i.name for i in ort.InferenceSession(path, providers=["CPUExecutionProvider"]).get_inputs()]
    missing = [n for n in names if n not in split]
    if missing:
        raise PassError(step, f"accuracy_aware: the {name} split has no array for model input(s) {missing}")
    return {n: np.ascontiguousarray(split[n][:samples]) for n in names}


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


def _tensors(graph) -> set:
    return {*(i.name for i in graph.input), *(o for n in graph.node for o in n.output)}


def candidates(qdq: Path, float_model: str) -> List[Tuple[str, List[str], str]]:
    """``(node name, activation inputs, output)`` of every quantized node of the QDQ model (a node fed by a
    ``DequantizeLinear``) that the float model has by name: the names ``nodes_to_exclude`` takes. Activation inputs
    are the float tensors behind its quantize-dequantize pairs (weights stored quantized have none); an output the
    quantizer renamed (a graph output with its own pair) is read after its pair, under the float model's name."""
    import onnx

    graph = onnx.load(str(qdq), load_external_data=False).graph
    reference = onnx.load(float_model, load_external_data=False).graph
    known, tensors = {n.name for n in reference.node}, _tensors(reference)
    producer = {o: n for n in graph.node for o in n.output}
    readers: Dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    out = []
    for node in graph.node:
        dq = [producer[i] for i in node.input if i in producer and producer[i].op_type == "DequantizeLinear"]
        if node.op_type in QDQ or node.name not in known or not dq:
            continue
        q = [producer[d.input[0]] for d in dq if d.input[0] in producer]
        acts = [n.input[0] for n in q if n.op_type == "QuantizeLinear"]
        result = node.output[0]
        if result not in tensors:  # its pair's dequantized output carries the float model's name
            after = [d.output[0] for r in readers.get(result, []) if r.op_type == "QuantizeLinear"
                     for d in readers.get(r.output[0], []) if d.op_type == "DequantizeLinear"]
            result = next((t for t in after if t in tensors), result)
        out.append((node.name, acts, result))
    return out


def keep_float(path: Path, keep) -> None:
    """Rewrite the QDQ model at ``path`` so that the nodes named in ``keep`` read the float tensors behind their
    quantize-dequantize pairs. ONNX Runtime's quantizer leaves the pair on a kept node's input when the producer's
    output is quantized, and that pair alone destroys an outlier-ranged tensor; pairs no node reads any more, and
    their scales, are removed."""
    import onnx

    model = onnx.load(str(path))
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    for node in graph.node:
        for i, t in enumerate(node.input if node.name in keep else []):
            dq = producer.get(t)
            q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if q is not None and q.op_type == "QuantizeLinear":
                node.input[i] = q.input[0]
    while True:
        read = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
        unread = [n for n in graph.node if n.op_type in QDQ and not set(n.output) & read]
        if not unread:
            break
        for n in unread:
            graph.node.remove(n)
    read = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    for init in [i for i in graph.initializer if i.name not in read]:
        graph.initializer.remove(init)
    onnx.save(model, str(path))


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))


def rank(qdq: Path, float_model: str, feeds: Mapping[str, np.ndarray]) -> List[Tuple[str, float]]:
    """The quantized nodes, most sensitive first, with their score: the relative error of the node's output
    against the float model's minus the largest relative error among its activation inputs (one run of each
    model, on fake-quantized arithmetic)."""
    import onnx

    nodes = candidates(qdq, float_model)
    shared = set.intersection(*(_tensors(onnx.load(str(p), load_external_data=False).graph) for p in (qdq, float_model)))
    tensors = sorted({t for _, acts, out in nodes for t in (*acts, out)} & shared)
    quantized = run(str(qdq), feeds, tensors, optimize=False)
    reference = run(float_model, feeds, tensors, optimize=False)

    def error(t):
        return _relative(quantized[t], reference[t]) if t in quantized and t in reference else 0.0

    scores = [(name, error(out) - max([error(t) for t in acts], default=0.0)) for name, acts, out in nodes]
    return sorted(scores, key=lambda s: -s[1])


class Search:
    """One accuracy-aware search: ``evaluate`` quantizes with the top ``k`` of the ranking kept in float and
    measures the bound; every tried model is kept until ``finish`` moves the chosen one into place."""

    def __init__(self, requantize: Callable[[List[str], Path], dict], evaluation: Dict, reference: Dict,
                 out_dir: Path):
        self.requantize, self.evaluation, self.reference, self.out_dir = requantize, evaluation, reference, out_dir
        self.ranking: List[str] = []
        self.tried: Dict[int, Tuple[float, Path, dict]] = {}

    def measure(self, k: int, path: Path, meta: dict) -> float:
        cosine = mean_cosine(run(str(path), self.evaluation), self.reference)
        self.tried[k] = (cosine, path, meta)
        return cosine

    def evaluate(self, k: int) -> float:
        path = self.out_dir / f"search-{k}.onnx"
        meta = self.requantize(self.ranking[:k], path)
        keep_float(path, set(self.ranking[:k]))
        return self.measure(k, path, meta)

    def bisect(self, target: float, n: int) -> int:
        """The smallest k in [1, n - 1] whose model meets ``target``; -1 when none does (k = n would keep every
        node in float: that is the float model, not a quantization)."""
        lo, hi, best = 1, n - 1, -1
        while lo <= hi:
            k = (lo + hi) // 2
            if self.evaluate(k) >= target:
                best, hi = k, k - 1
            else:
                lo = k + 1
        return best

    def finish(self, k: int, out: Path) -> None:
        """The model of ``k`` at ``out``; every other tried model removed."""
        for j, (_, path, _) in self.tried.items():
            if j == k and path != out:
                os.replace(path, out)
            elif j != k and path != out:
                path.unlink(missing_ok=True)


def search(requantize: Callable[[List[str], Path], dict], out: Path, meta: dict, src: str, reference: str,
           cfg, ctx) -> dict:
    """Accuracy-aware search after the plain quantization at ``out`` (options ``meta``): the meta of the chosen
    model with ``accuracy_aware`` recording the nodes kept in float, the evaluations and the cosine before and
    after. ``src`` is the float model handed to the quantizer (its node names), ``reference`` the pass's input;
    ``requantize(exclude, path)`` quantizes ``src`` to ``path`` with ``exclude`` kept in float, returns its meta.
    PassError with the best cosine reached when nothing meets the bound."""
    target = cfg.target_cosine if cfg.target_cosine is not None else DEFAULT_TARGET
    evaluation = split_feeds(ctx.data.evaluation, reference, cfg.search_samples, ctx.step, "evaluation")
    s = Search(requantize, evaluation, run(reference, evaluation), ctx.out_dir)
    before = s.measure(0, out, meta)
    n = len(candidates(out, src))
    record = {"bound": {"mean_cosine": target}, "samples": len(next(iter(evaluation.values()))),
              "quantized_nodes": n, "cosine_before": before}
    k = 0
    if before < target:
        calibration = split_feeds(ctx.data.calibration, src, SENSITIVITY_SAMPLES, ctx.step, "calibration")
        scores = rank(out, src, calibration)
        s.ranking = [name for name, _ in scores]
        k = s.bisect(target, n)
        if k < 0:
            best = max(s.tried, key=lambda j: s.tried[j][0])
            s.finish(-1, out)
            raise PassError(ctx.step, f"accuracy_aware: no quantization meets mean cosine >= {target} on "
                                      f"{record['samples']} evaluation samples; the best reached "
                                      f"{s.tried[best][0]:.5f}, keeping {best} of {n} quantized nodes in float "
                                      f"({len(s.tried)} evaluations)")
        record["scores"] = {name: round(score, 6) for name, score in scores[:k]}
    cosine, _, chosen = s.tried[k]
    s.finish(k, out)
    record.update(kept_fp32=s.ranking[:k], evaluations=len(s.tried), cosine_after=cosine)
    return {**chosen, "accuracy_aware": record}

