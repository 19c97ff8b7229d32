"""Accuracy-aware static INT8 (``passes.<step>.accuracy_aware``): when the quantized model's mean cosine to the float
model misses ``target_cosine``, the quantized nodes are ranked by a sensitivity proxy and the smallest k such that
keeping the k most sensitive in float meets the bound is found by bisection over that ranking.

The proxy costs one run of the quantized model on a few calibration samples, every quantized tensor exposed on both
sides of its quantize-dequantize pair: a pair's error is the mean over channels of each channel's relative error
(so a few outlier channels cannot hide the rest rounded to nothing), and a node's score is the largest error among
the pairs that belong to it (see ``Pairs``). Keeping a node in float re-quantizes with it in ``nodes_to_exclude``
and drops its pairs. The bound is measured with ONNX Runtime on the evaluation split against the pass's input
model, so no timing is involved; one evaluation is one quantization plus one run. The bisection assumes that
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


class Pairs:
    """The QDQ graph's activation quantize-dequantize pairs and who they belong to. A pair on tensor ``T`` belongs to
    the candidates that read it; read by none (a bias Add, a GELU), to the candidate that wrote ``T``. Candidates are
    the nodes fed a weight stored quantized that the float model has by name (the names ``nodes_to_exclude`` takes);
    keeping one in float drops the pairs that belong to it, which ONNX Runtime's quantizer leaves in place when
    only ``nodes_to_exclude`` names it (a quantized MatMul's output keeps its pair)."""

    def __init__(self, graph, names=None, known=()):
        self.graph = graph
        producer = {o: n for n in graph.node for o in n.output}
        self.readers: Dict[str, list] = {}
        for n in graph.node:
            for i in n.input:
                self.readers.setdefault(i, []).append(n)
        stored = {i.name for i in graph.initializer}
        weights = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in stored}
        if names is None:
            names = [n.name for n in graph.node if n.name in known and n.op_type not in QDQ and set(n.input) & weights]
        self.names = list(names)
        self.pairs = []  # (float tensor, dequantized tensor, owners)
        for q in graph.node:
            if q.op_type != "QuantizeLinear" or q.input[0] in stored:
                continue
            for dq in [d for d in self.readers.get(q.output[0], []) if d.op_type == "DequantizeLinear"]:
                readers = [r.name for r in self.readers.get(dq.output[0], []) if r.op_type not in QDQ]
                writer = producer[q.input[0]].name if q.input[0] in producer else ""
                owners = [r for r in readers if r in self.names] or [writer]
                self.pairs.append((q.input[0], dq.output[0], owners))

    def scores(self, tensors: Mapping[str, np.ndarray]) -> List[Tuple[str, float]]:
        """Every candidate with its score (the largest error among its pairs), highest first."""
        score = dict.fromkeys(self.names, 0.0)
        for t, dq, owners in self.pairs:
            for owner in set(owners) & set(score):
                score[owner] = max(score[owner], channel_error(tensors[dq], tensors[t]))
        return sorted(score.items(), key=lambda s: -s[1])

    def keep_float(self, keep) -> None:
        """Readers of a pair that belongs to a kept node read the float tensor; pairs no node reads any more, and
        their scales, are removed."""
        graph = self.graph
        for t, dq, owners in self.pairs:
            if set(owners) & set(keep):
                for r in self.readers.get(dq, []):
                    for j, i in enumerate(r.input):
                        r.input[j] = t if i == dq else i
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


def candidates(qdq: Path, float_model: str) -> List[str]:
    """The quantized nodes of the QDQ model the search may keep in float, in graph order."""
    import onnx

    known = {n.name for n in onnx.load(float_model, load_external_data=False).graph.node}
    return Pairs(onnx.load(str(qdq), load_external_data=False).graph, known=known).names


def keep_float(path: Path, keep, names: List[str]) -> None:
    """Rewrite the QDQ model at ``path`` so that the pairs of the nodes in ``keep`` (among candidates ``names``)
    are gone."""
    import onnx

    model = onnx.load(str(path))
    Pairs(model.graph, names).keep_float(keep)
    onnx.save(model, str(path))


def channel_error(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over the last axis's channels of each channel's relative L2 error of ``a`` against ``b`` (floored at
    0.01 % of the mean channel's size): a few huge channels do not hide the rest rounded to nothing."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    width = b.shape[-1] if b.ndim else 1
    err, ref = (a - b).reshape(-1, width), b.reshape(-1, width)
    norms = np.linalg.norm(ref, axis=0)
    return float(np.mean(np.linalg.norm(err, axis=0) / np.maximum(norms, max(1e-4 * float(norms.mean()), 1e-12))))


def rank(qdq: Path, float_model: str, feeds: Mapping[str, np.ndarray]) -> List[Tuple[str, float]]:
    """The candidates, most sensitive first, with their score: the largest error that one of their pairs adds to
    its tensor (one run of the QDQ model, fake-quantized arithmetic, every paired tensor exposed)."""
    import onnx

    known = {n.name for n in onnx.load(float_model, load_external_data=False).graph.node}
    pairs = Pairs(onnx.load(str(qdq), load_external_data=False).graph, known=known)
    tensors = run(str(qdq), feeds, sorted({t for p in pairs.pairs for t in p[:2]}), optimize=False)
    return pairs.scores(tensors)


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
        keep_float(path, set(self.ranking[:k]), self.ranking)
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
                                      f"{s.tried[best][0]:.8g}, keeping {best} of {n} quantized nodes in float "
                                      f"({len(s.tried)} evaluations)")
        record["scores"] = {name: round(score, 6) for name, score in scores[:k]}
    cosine, _, chosen = s.tried[k]
    s.finish(k, out)
    record.update(kept_fp32=s.ranking[:k], evaluations=len(s.tried), cosine_after=cosine)
    return {**chosen, "accuracy_aware": record}

