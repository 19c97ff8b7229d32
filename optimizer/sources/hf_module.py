"""The export-ready module around a Hugging Face model: ``forward(<input names>)`` -> logits (a classifier's,
a causal LM's over the vocabulary at every position) or pooled embeddings."""

import functools
from typing import Any, Dict, List, Tuple

# The processors' outputs a model may take, in no particular order (the model's forward sets it): tokenizers',
# image processors' and audio feature extractors' (raw waveform ``input_values``, log-mel ``input_features``).
PROCESSOR_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "pixel_values", "input_values", "input_features")


@functools.lru_cache(maxsize=None)
def wrapper_class(names: Tuple[str, ...]):
    """A module class whose ``forward`` has one real positional parameter per input: torch.export
    (dynamo=True) matches ``dynamic_shapes`` to the signature, which ``*args`` would hide."""
    import torch

    assert all(name in PROCESSOR_INPUTS for name in names)  # identifiers from a fixed list only
    params = ", ".join(names)
    scope: Dict[str, Any] = {}
    exec(f"def forward(self, {params}):\n    return self.run({params})", scope)  # noqa: S102

    class HFWrapper(torch.nn.Module):
        """``forward(<input_names>)`` -> logits or pooled embeddings."""

        forward = scope["forward"]

        def __init__(self, model, task: str, outputs: List[str]):
            super().__init__()
            self.model, self.task, self.input_names, self.output_names = model, task, list(names), list(outputs)

        def run(self, *tensors):
            feeds = dict(zip(self.input_names, tensors))
            out = self.model(**feeds, return_dict=True)
            if self.task != "feature_extraction":
                return out.logits
            return pool(out.last_hidden_state, feeds.get("attention_mask"))

    return HFWrapper


def pool(hidden, attention_mask=None):
    """Mean of the tokens ([N, L, C]; masked by ``attention_mask`` when given) or of the spatial
    positions ([N, C, H, W]): one embedding [N, C] per sample."""
    if hidden.dim() == 4:
        return hidden.mean(dim=(2, 3))
    if attention_mask is None:
        return hidden.mean(dim=1)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
