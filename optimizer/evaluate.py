"""Task metrics on the evaluation split and numerical parity against the reference variant.

``evaluation.task`` decides what the headline figure is: ``classification`` (accuracy, labels
required), ``embedding`` (no labels: nearest-neighbour agreement with the reference's embeddings),
``next_token`` (the token each position predicts, against the reference's), ``hidden_states`` (an
encoder's [batch, sequence, hidden]: mean per-sample cosine to the reference's, in percent), or a
user metric ``pkg.mod:fn(outputs, labels) -> {name: value}`` whose first entry is the headline. Parity is
measured for every variant and every output, labels or not: relative L2 error (whole and worst slice), max
|diff|, cosine where a sample holds enough values, top-1 / top-5 agreement for logits."""

from typing import Callable, Dict, Mapping, Optional

import numpy as np

from optimizer.errors import RecipeError
from optimizer.io import IOSpec, batches, concat

CLASSIFICATION, EMBEDDING, NEXT_TOKEN, AUTO = "classification", "embedding", "next_token", "auto"
HIDDEN = "hidden_states"  # an encoder's hidden states [batch, sequence, hidden]: cosine to the source's, per sample


def predict(session, feeds: Mapping[str, np.ndarray], batch_size: int) -> Dict[str, np.ndarray]:
    """Every output of ``session`` over ``feeds``, run ``batch_size`` samples at a time."""
    return concat([{k: np.asarray(v) for k, v in session(b).items()} for b in batches(feeds, batch_size)])


def resolve_task(task: str, has_labels: bool) -> str:
    """``auto`` is classification with labels, embedding without; a user metric stays as written."""
    if task == AUTO:
        return CLASSIFICATION if has_labels else EMBEDDING
    if task == CLASSIFICATION and not has_labels:
        raise RecipeError("evaluation.task=classification needs labels in the data; give labels or set "
                          "evaluation.task=embedding")
    if task not in (CLASSIFICATION, EMBEDDING, NEXT_TOKEN, HIDDEN) and ":" not in task:
        raise RecipeError(f"evaluation.task {task!r}: expected auto, classification, embedding, next_token, "
                          f"hidden_states or a metric 'package.module:function'")
    return task


def model_task(task: str, asked: str, meta: Mapping) -> str:
    """``auto`` on a causal LM (``hf_task`` causal_lm) or an encoder–decoder's decoder step is next-token
    agreement: its logits over the vocabulary at every position are what it is for, not a class or an
    embedding; on an encoder–decoder's encoder it is the cosine of its hidden states to the source's."""
    by_hf = {"causal_lm": NEXT_TOKEN, "seq2seq_decoder_step": NEXT_TOKEN, "seq2seq_encoder": HIDDEN}
    return by_hf.get(meta.get("hf_task"), task) if asked == AUTO else task


def primary(outputs: Mapping[str, np.ndarray], name: str = "") -> str:
    """The output the task reads: ``evaluation.output``, else the first one."""
    if name and name not in outputs:
        raise RecipeError(f"evaluation.output {name!r}: the model's outputs are {list(outputs)}")
    return name or next(iter(outputs))


def check_outputs(task: str, io: IOSpec, name: str) -> str:
    """The output the task reads, checked against the model's I/O before anything is measured."""
    names = io.output_names
    if name and name not in names:
        raise RecipeError(f"evaluation.output {name!r}: the model's outputs are {names}")
    spec = next(t for t in io.outputs if t.name == (name or names[0]))
    if task == NEXT_TOKEN and len(spec.shape) != 3:
        raise RecipeError(f"evaluation.task=next_token needs logits [batch, sequence, vocabulary]; output "
                          f"{spec.name!r} has shape {list(spec.shape)}")
    if task in (EMBEDDING, CLASSIFICATION) and len(spec.shape) != 2:
        need = "[batch, features]" if task == EMBEDDING else "[batch, classes]"
        raise RecipeError(f"evaluation.task={task} needs a 2-D output {need}; output {spec.name!r} has shape "
                          f"{list(spec.shape)} (pool it in the model, or pick another with evaluation.output)")
    return spec.name


def check_labels(task: str, io: IOSpec, output: str, labels, meta: Mapping) -> None:
    """Labels the model can produce: a classification scores class indices below the output's width, and never
    an embedding model's features (``hf_task`` feature_extraction); else RecipeError before any work."""
    if task != CLASSIFICATION or labels is None:
        return
    if meta.get("hf_task") == "feature_extraction":
        raise RecipeError("data: the model gives embeddings (hf task feature_extraction), which labels cannot score; "
                          "set evaluation.task=embedding, or load a model with a classification head")
    spec = next(t for t in io.outputs if t.name == output)
    width = spec.shape[-1] if spec.shape and isinstance(spec.shape[-1], int) else None
    values = np.asarray(labels)
    if not np.issubdtype(values.dtype, np.integer):
        return
    bad = values[(values < 0) | (values >= width)] if width else values[values < 0]
    if bad.size:
        raise RecipeError(f"data: label {int(bad[0])} is not a class the model can produce (output {output!r} has "
                          f"{width} classes: 0..{(width or 1) - 1}); check the labels or evaluation.output")


def _rows(a: np.ndarray) -> np.ndarray:
    return a.reshape(len(a), -1).astype(np.float64)


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-sample cosine similarity of two outputs (flattened per sample)."""
    a, b = _rows(a), _rows(b)
    return np.sum(a * b, axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def neighbours(e: np.ndarray) -> np.ndarray:
    """Index of each row's nearest other row by cosine."""
    e = _rows(e)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    return sim.argmax(1)


COSINE_MIN_ELEMENTS = 8  # below this many values per sample a cosine says little (one value: only the sign)
TOP_K = 5


def relative_errors(a: np.ndarray, b: np.ndarray) -> Dict[str, float]:
    """Relative L2 error of output ``a`` against reference ``b``: over the whole output, and the worst slice
    along its second axis (a class's logits, a detector's box coordinate or class score, a position), each
    slice measured against its own size (floored at 0.01 % of the mean slice's, so all-zero slices do not
    dominate). Half a detector's boxes moved shows in the slices even when the whole output barely moves."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    whole = float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-12))
    if a.ndim < 2:
        return {"relative_error": whole, "worst_slice_error": whole, "worst_slice": 0}
    d = np.moveaxis(a - b, 1, 0).reshape(a.shape[1], -1)
    r = np.moveaxis(b, 1, 0).reshape(b.shape[1], -1)
    norms = np.linalg.norm(r, axis=1)
    errors = np.linalg.norm(d, axis=1) / np.maximum(norms, max(1e-4 * float(norms.mean()), 1e-12))
    worst = int(errors.argmax())
    return {"relative_error": whole, "worst_slice_error": float(errors[worst]), "worst_slice": worst}


def output_parity(a: np.ndarray, b: np.ndarray) -> Dict[str, float]:
    """One output's parity: relative errors, max |diff|, cosine where a sample has enough values for it to
    mean something, and top-1 / top-k agreement for 2-D outputs (logits)."""
    out = {**relative_errors(a, b), "max_abs_diff": float(np.abs(_rows(a) - _rows(b)).max(initial=0.0))}
    if _rows(a).shape[1] >= COSINE_MIN_ELEMENTS:
        cos = cosines(a, b)
        out.update(mean_cosine=float(cos.mean()), min_cosine=float(cos.min()))
    if a.ndim == 2 and a.shape[1] > 1:
        out["top1_agreement"] = float((a.argmax(1) == b.argmax(1)).mean() * 100.0)
        if a.shape[1] > TOP_K:
            top_a, top_b = np.argsort(-a, 1)[:, :TOP_K], np.argsort(-b, 1)[:, :TOP_K]
            shared = [len(set(x) & set(y)) for x, y in zip(top_a, top_b)]
            out[f"top{TOP_K}_agreement"] = float(np.mean(shared) / TOP_K * 100.0)
    return out


def parity(outputs: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray], name: str) -> Dict:
    """Parity of every output (``parity_outputs``), the task's output's figures at the top level (cosine, top-1
    agreement), and max |diff| and the worst relative error over every output."""
    per = {k: output_parity(np.asarray(outputs[k]), np.asarray(reference[k])) for k in reference}
    worst = max(per, key=lambda k: per[k]["worst_slice_error"])
    top = {k: v for k, v in per[name].items() if k in ("mean_cosine", "min_cosine", "top1_agreement",
                                                          f"top{TOP_K}_agreement")}
    return {**top, "max_abs_diff": max(p["max_abs_diff"] for p in per.values()),
            "relative_error": per[worst]["worst_slice_error"], "relative_error_output": worst, "parity_outputs": per}


def task_metrics(task: str, outputs: Mapping[str, np.ndarray], labels: Optional[np.ndarray], name: str,
                 reference: Optional[Mapping[str, np.ndarray]]) -> Dict[str, float]:
    """``{"metric": headline name, "score": value, ...}`` for the task."""
    out = outputs[name]
    if task == CLASSIFICATION:
        acc = float((out.argmax(1) == labels).mean() * 100.0)
        return {"metric": "accuracy", "score": acc, "accuracy": acc}
    if task == NEXT_TOKEN:  # the token each position predicts, against the source model's
        ref = reference[name] if reference is not None else out
        agree = float((out.argmax(-1) == ref.argmax(-1)).mean() * 100.0)
        return {"metric": "next_token_agreement", "score": agree, "next_token_agreement": agree}
    if task == HIDDEN:  # every position's vector, as one vector per sample
        ref = reference[name] if reference is not None else out
        cosine = float(cosines(out, ref).mean() * 100.0)
        return {"metric": "cosine_similarity", "score": cosine, "cosine_similarity": cosine}
    if task == EMBEDDING:
        ref = reference[name] if reference is not None else out
        agree = float((neighbours(out) == neighbours(ref)).mean() * 100.0)
        return {"metric": "nn_agreement", "score": agree, "nn_agreement": agree}
    values = _user_metric(task)(dict(outputs), labels)
    if not isinstance(values, Mapping) or not values:
        raise RecipeError(f"evaluation.task {task!r} must return a non-empty dict of numbers")
    values = {str(k): float(v) for k, v in values.items()}
    return {"metric": next(iter(values)), "score": next(iter(values.values())), **values}


def _user_metric(spec: str) -> Callable:
    from optimizer.factory import resolve

    return resolve(spec, "evaluation.task")


def metrics(task: str, outputs: Mapping[str, np.ndarray], labels: Optional[np.ndarray], name: str,
            reference: Optional[Mapping[str, np.ndarray]]) -> Dict:
    """The evaluation record of one variant: task metrics, and parity when a reference is given."""
    record = {"task": task, "output": name, "samples": int(len(outputs[name])),
              **task_metrics(task, outputs, labels, name, reference)}
    if reference is not None:
        record.update(parity(outputs, reference, name))
    return record
