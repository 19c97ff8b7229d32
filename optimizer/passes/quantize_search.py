"""Accuracy-aware INT8 (``passes.<step>.accuracy_aware``): when the quantized model misses the bound (its mean cosine
to the float model below ``target_cosine``, and where the recipe's task scores a model, its headline metric more than
``max_score_drop`` points below the float model's: ``quantize_bound``), the quantized nodes are ranked by a
sensitivity proxy and the smallest k such that keeping the k most sensitive in float meets the bound is found by
bisection over that ranking. Static INT8's proxy is described next; dynamic INT8's is ``quantize_dynamic_search``.

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
from optimizer.passes.quantize_measure import channel_error, mean_cosine, run, split_feeds  # noqa: F401 (re-exported)

DEFAULT_TARGET = 0.99  # target_cosine when neither the step nor the recipe's constraints.min_cosine sets one
SENSITIVITY_SAMPLES = 32  # calibration samples the proxy runs on
QDQ = ("QuantizeLinear", "DequantizeLinear")


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
    measures it against ``bound``; every tried model is kept until ``finish`` moves the chosen one into place.
    ``static``: a kept node's quantize-dequantize pairs are removed after quantizing (``keep_float``)."""

    def __init__(self, requantize: Callable[[List[str], Path], dict], evaluation: Dict, bound, out_dir: Path,
                 static: bool = True):
        self.requantize, self.evaluation, self.bound, self.out_dir = requantize, evaluation, bound, out_dir
        self.static, self.ranking, self.batch = static, [], 16
        self.tried: Dict[int, Tuple[Dict[str, float], Path, dict]] = {}

    def measure(self, k: int, path: Path, meta: dict) -> Dict[str, float]:
        figures = self.bound.measure(run(str(path), self.evaluation, batch=self.batch))
        self.tried[k] = (figures, path, meta)
        return figures

    def evaluate(self, k: int) -> Dict[str, float]:
        path = self.out_dir / f"search-{k}.onnx"
        meta = self.requantize(self.ranking[:k], path)
        if self.static:
            keep_float(path, set(self.ranking[:k]), self.ranking)
        return self.measure(k, path, meta)

    def bisect(self, n: int) -> int:
        """The smallest k in [1, n - 1] whose model meets the bound; -1 when none does (k = n would keep every
        node in float: that is the float model, not a quantization)."""
        lo, hi, best = 1, n - 1, -1
        while lo <= hi:
            k = (lo + hi) // 2
            if self.bound.meets(self.evaluate(k)):
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


def planned(cfg, recipe) -> Dict:
    """The accuracy-aware options the recipe decides at plan time: ``target_cosine`` null is
    ``constraints.min_cosine``, ``max_score_drop`` null ``constraints.max_accuracy_drop``, ``task`` "" the
    ``evaluation.task``, and the bound is measured as the run measures its variants: ``search_samples`` 0 is
    ``evaluation.max_samples`` (0 too: the whole split), ``search_batch_size`` 0 ``evaluation.batch_size``."""
    c, e = recipe.constraints, recipe.evaluation
    return {"target_cosine": c.min_cosine if cfg.target_cosine is None else cfg.target_cosine,
            "max_score_drop": c.max_accuracy_drop if cfg.max_score_drop is None else cfg.max_score_drop,
            "task": cfg.task or str(e.task), "search_samples": cfg.search_samples or e.max_samples,
            "search_batch_size": cfg.search_batch_size or e.batch_size}


def _ranking(out: Path, src: str, cfg, ctx, dynamic: bool) -> Tuple[int, Callable[[], List[Tuple[str, float]]]]:
    """The number of quantized nodes the search may keep in float, and the function that ranks them."""
    if not dynamic:
        return len(candidates(out, src)), lambda: rank(out, src, split_feeds(
            ctx.data.calibration, src, SENSITIVITY_SAMPLES, ctx.step, "calibration"))
    from optimizer.host import int8_sums_saturate
    from optimizer.passes import quantize_dynamic_search as dyn

    names = dyn.candidates(src, str(out))
    seven_bits = cfg.reduce_range if cfg.reduce_range is not None else int8_sums_saturate()  # prepare sets it
    return len(names), lambda: dyn.rank(src, names, split_feeds(
        ctx.data.calibration, src, dyn.SENSITIVITY_SAMPLES, ctx.step, "calibration"), cfg.per_channel, seven_bits)


def search(requantize: Callable[[List[str], Path], dict], out: Path, meta: dict, src: str, reference: str,
           cfg, ctx, source_meta=None) -> dict:
    """Accuracy-aware search after the plain quantization at ``out`` (options ``meta``): the meta of the chosen
    model with ``accuracy_aware`` recording the nodes kept in float, the evaluations and the figures before and
    after. ``src`` is the float model handed to the quantizer (its node names), ``reference`` the pass's input
    (``source_meta`` its meta); ``requantize(exclude, path)`` quantizes ``src`` to ``path`` with ``exclude`` kept
    in float, returns its meta. PassError with the best figures reached when nothing meets the bound."""
    from optimizer.passes.quantize_bound import Bound, scored_task

    target = cfg.target_cosine if cfg.target_cosine is not None else DEFAULT_TARGET
    evaluation = split_feeds(ctx.data.evaluation, reference, cfg.search_samples, ctx.step, "evaluation")
    samples = len(next(iter(evaluation.values())))
    labels = ctx.data.evaluation_labels[:samples] if ctx.data.evaluation_labels is not None else None
    task = scored_task(getattr(cfg, "task", ""), labels, source_meta or {})
    drop = cfg.max_score_drop if getattr(cfg, "max_score_drop", None) is not None else 1.0
    batch = getattr(cfg, "search_batch_size", 0) or 16  # set at plan time; 16 where a pass runs on its own
    bound = Bound(target, task, drop, run(reference, evaluation, batch=batch), labels)
    dynamic = getattr(cfg.mode, "value", cfg.mode) == "dynamic"
    s = Search(requantize, evaluation, bound, ctx.out_dir, static=not dynamic)
    s.batch = batch
    before = s.measure(0, out, meta)
    n, ranking = _ranking(out, src, cfg, ctx, dynamic)
    record = {"bound": bound.describe(), "samples": samples, "batch_size": batch, "quantized_nodes": n,
              "before": before, "cosine_before": before["mean_cosine"]}
    k = 0
    if not bound.meets(before):
        scores = ranking()
        s.ranking = [name for name, _ in scores]
        k = s.bisect(n)
        if k < 0:
            best = max(s.tried, key=lambda j: bound.rank_key(s.tried[j][0]))
            s.finish(-1, out)
            figures = s.tried[best][0]
            reached = f"{figures['mean_cosine']:.8g}" + "".join(
                f" ({key.replace('_', ' ')} {value:.4g})" for key, value in figures.items() if key != "mean_cosine")
            raise PassError(ctx.step, f"accuracy_aware: no quantization meets {bound.text()} on {samples} "
                                      f"evaluation samples; the best reached {reached}, keeping {best} of {n} "
                                      f"quantized nodes in float ({len(s.tried)} evaluations)")
        record["scores"] = {name: round(score, 6) for name, score in scores[:k]}
    figures, _, chosen = s.tried[k]
    s.finish(k, out)
    record.update(kept_fp32=s.ranking[:k], evaluations=len(s.tried), after=figures,
                  cosine_after=figures["mean_cosine"])
    return {**chosen, "accuracy_aware": record}
