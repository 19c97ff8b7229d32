"""The export-ready module around a Hugging Face model: ``forward(<input names>)`` -> logits (a classifier's,
a causal LM's over the vocabulary at every position), pooled embeddings, or one piece of an encoder–decoder:
its encoder's hidden states, or one decoder step's logits over the vocabulary (``sources/hf_seq2seq.py``)."""

import functools
from typing import Any, Dict, List, Tuple

# The processors' outputs a model may take, in no particular order (the model's forward sets it): tokenizers',
# image processors' and audio feature extractors' (raw waveform ``input_values``, log-mel ``input_features``).
PROCESSOR_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "pixel_values", "input_values", "input_features")
# What one decoder step of an encoder–decoder takes: the tokens so far, the encoder's output and its mask.
DECODER_INPUTS = ("decoder_input_ids", "encoder_hidden_states", "encoder_attention_mask")
ENCODER, DECODER_STEP = "seq2seq_encoder", "seq2seq_decoder_step"  # the tasks of an encoder–decoder's pieces


@functools.lru_cache(maxsize=None)
def wrapper_class(names: Tuple[str, ...]):
    """A module class whose ``forward`` has one real positional parameter per input: torch.export
    (dynamo=True) matches ``dynamic_shapes`` to the signature, which ``*args`` would hide."""
    import torch

    assert all(name in PROCESSOR_INPUTS + DECODER_INPUTS for name in names)  # identifiers from a fixed list only
    params = ", ".join(names)
    scope: Dict[str, Any] = {}
    exec(f"def forward(self, {params}):\n    return self.run({params})", scope)  # noqa: S102

    class HFWrapper(torch.nn.Module):
        """``forward(<input_names>)`` -> logits, pooled embeddings or an encoder's hidden states."""

        forward = scope["forward"]

        def __init__(self, model, task: str, outputs: List[str]):
            super().__init__()
            self.model, self.task, self.input_names, self.output_names = model, task, list(names), list(outputs)

        def run(self, *tensors):
            feeds = dict(zip(self.input_names, tensors))
            if self.task == ENCODER:  # every position's hidden state: what the decoder attends to
                return self.model.get_encoder()(**feeds, return_dict=True).last_hidden_state
            if self.task == DECODER_STEP:
                return decoder_step(self.model, feeds)
            out = self.model(**feeds, return_dict=True)
            if self.task != "feature_extraction":
                return out.logits
            return pool(out.last_hidden_state, feeds.get("attention_mask"))

    return HFWrapper


def decoder_step(model, feeds):
    """One decoder pass (no KV cache) over ``decoder_input_ids`` given the encoder's hidden states: the logits
    over the vocabulary at every decoder position. The decoder's own mask is all ones, given: without it
    transformers looks for packed sequences with ``torch.diff``, which ONNX has no operator for."""
    import torch

    tokens = feeds["decoder_input_ids"]
    out = model(decoder_input_ids=tokens, decoder_attention_mask=torch.ones_like(tokens),
                encoder_outputs=(feeds["encoder_hidden_states"],), attention_mask=feeds.get("encoder_attention_mask"),
                use_cache=False, return_dict=True)
    return out.logits


def pool(hidden, attention_mask=None):
    """Mean of the tokens ([N, L, C]; masked by ``attention_mask`` when given) or of the spatial
    positions ([N, C, H, W]): one embedding [N, C] per sample."""
    if hidden.dim() == 4:
        return hidden.mean(dim=(2, 3))
    if attention_mask is None:
        return hidden.mean(dim=1)
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
