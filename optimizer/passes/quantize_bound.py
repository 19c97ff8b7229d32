"""What a model tried by the accuracy-aware search must meet, measured on the evaluation split against the pass's
input model: the mean cosine of its outputs (``target_cosine``), and where the recipe's task scores a model (its
``evaluation.task``, resolved as the evaluation resolves it: ``auto`` is classification with labels, embedding
without, next-token agreement on a causal LM) the drop of the task's headline metric (``max_score_drop`` points:
nn_agreement for embeddings, accuracy with labels, next-token agreement, hidden-state cosine). A metric given as
``package.module:function`` is not run inside the pass: the cosine alone bounds the search then."""

from typing import Dict, Mapping, Optional

import numpy as np


def scored_task(task: str, labels, meta: Mapping) -> Optional[str]:
    """The task whose headline metric bounds the search, or None (cosine only)."""
    from optimizer.evaluate import AUTO, CLASSIFICATION, model_task, resolve_task

    if not task or ":" in task or (task == CLASSIFICATION and labels is None):
        return None
    resolved = model_task(resolve_task(task, labels is not None) if task == AUTO else task, task, meta)
    return None if ":" in resolved else resolved


class Bound:
    """Measures a tried model's outputs: ``{"mean_cosine": ..., "score": ...}`` (score only with a task), and whether
    they meet the bound."""

    def __init__(self, target: float, task: Optional[str], max_drop: float, reference: Mapping[str, np.ndarray],
                 labels=None):
        self.target, self.task, self.max_drop, self.reference, self.labels = target, task, max_drop, reference, labels
        self.output = next(iter(reference))
        self.metric, self.reference_score = None, None
        if task:
            base = self._metrics(reference)
            self.metric, self.reference_score = base["metric"], base["score"]

    def _metrics(self, outputs: Mapping[str, np.ndarray]) -> Dict:
        from optimizer.evaluate import task_metrics

        return task_metrics(self.task, outputs, self.labels, self.output, self.reference)

    def measure(self, outputs: Mapping[str, np.ndarray]) -> Dict[str, float]:
        from optimizer.passes.quantize_measure import mean_cosine

        figures = {"mean_cosine": mean_cosine(outputs, self.reference)}
        if self.task:
            figures[f"{self.metric}_drop"] = round(self.reference_score - self._metrics(outputs)["score"], 6)
        return figures

    def meets(self, figures: Mapping[str, float]) -> bool:
        drop = figures.get(f"{self.metric}_drop", 0.0) if self.task else 0.0
        return figures["mean_cosine"] >= self.target and drop <= self.max_drop

    def rank_key(self, figures: Mapping[str, float]):
        """Higher is closer to the bound: the metric's drop first (when there is a task), then the cosine."""
        drop = figures.get(f"{self.metric}_drop", 0.0) if self.task else 0.0
        return (-drop, figures["mean_cosine"])

    def describe(self) -> Dict[str, float]:
        """The bound as the search record states it."""
        return {"mean_cosine": self.target, **({f"{self.metric}_drop": self.max_drop} if self.task else {})}

    def text(self) -> str:
        cosine = f"mean cosine >= {self.target}"
        return f"{cosine} and {self.metric} drop <= {self.max_drop}" if self.task else cosine
