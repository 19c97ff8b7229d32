"""Task accuracy on the evaluation split and numerical parity against the reference variant."""

from typing import Dict, Optional

import numpy as np


def predict(session, x: np.ndarray, batch_size: int) -> np.ndarray:
    """Logits of ``session`` over ``x``, run ``batch_size`` samples at a time."""
    return np.concatenate([np.asarray(session(x[i : i + batch_size]), dtype=np.float32)
                           for i in range(0, len(x), batch_size)])


def metrics(logits: np.ndarray, labels: np.ndarray, reference: Optional[np.ndarray]) -> Dict[str, float]:
    """Accuracy (percent) and, when a reference is given, parity figures against it."""
    out = {"accuracy": float((logits.argmax(1) == labels).mean() * 100.0), "samples": int(len(labels))}
    if reference is not None:
        a, b = logits.astype(np.float64), reference.astype(np.float64)
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        cosine = np.sum(a * b, axis=1) / np.maximum(norms, 1e-12)
        out.update(
            max_abs_diff=float(np.abs(a - b).max()),
            mean_cosine=float(cosine.mean()),
            min_cosine=float(cosine.min()),
            top1_agreement=float((a.argmax(1) == b.argmax(1)).mean() * 100.0),
        )
    return out
