"""The data of an encoder–decoder's decoder step (``model.component=decoder_step``), made from the data of its
encoder: the real encoder is run on every split, and each sample gets ``DECODER_TOKENS`` decoder tokens (the
decoder start token, then random vocabulary ids drawn with the run's seed)."""

from typing import Any, Dict

import numpy as np

from optimizer.errors import RecipeError
from optimizer.io import batches, concat
from optimizer.sources.hf_module import DECODER_STEP, ENCODER

DECODER_TOKENS = 8  # decoder positions per sample (fewer when the model's max_target_positions is smaller)


def decoder_parts(directory: str, splits, seed: int) -> Dict[str, Any]:
    """``Splits`` keyword arguments for the decoder step, from ``splits`` that hold the encoder's inputs:
    ``decoder_input_ids``, ``encoder_hidden_states`` and, when the encoder takes a mask,
    ``encoder_attention_mask`` (the data's ``attention_mask``). Labels pass through."""
    from optimizer.sources import hf

    config = hf.read_config(directory)
    encoder = hf.load_module(directory, ENCODER)
    names = hf.describe(directory, DECODER_STEP)["input_names"]
    missing = [n for n in encoder.input_names if n not in splits.evaluation]
    if missing:
        raise RecipeError(f"data: the decoder step of {config.model_type} runs its encoder on the data, which needs "
                          f"{', '.join(missing)}; the data has {', '.join(splits.evaluation)}")
    start = getattr(config, "decoder_start_token_id", None)
    length = min(DECODER_TOKENS, getattr(config, "max_target_positions", None) or DECODER_TOKENS)
    rng = np.random.default_rng(seed)

    def piece(feeds):
        tokens = rng.integers(0, config.vocab_size, size=(len(next(iter(feeds.values()))), length), dtype=np.int64)
        tokens[:, 0] = 0 if start is None else int(start)
        out = {"decoder_input_ids": tokens, "encoder_hidden_states": encoder_states(encoder, feeds)}
        if "encoder_attention_mask" in names:
            out["encoder_attention_mask"] = np.asarray(feeds["attention_mask"], dtype=np.int64)
        return out

    return {"train": piece(splits.train), "train_labels": splits.train_labels,
            "calibration": piece(splits.calibration), "evaluation": piece(splits.evaluation),
            "evaluation_labels": splits.evaluation_labels}


def encoder_states(encoder, feeds, batch_size: int = 32) -> np.ndarray:
    """``last_hidden_state`` of ``encoder`` (an ``hf`` encoder module) over ``feeds``, float32."""
    import torch

    with torch.inference_mode():
        parts = [{"h": encoder(*(torch.from_numpy(b[n]) for n in encoder.input_names)).float().numpy()}
                 for b in batches(feeds, batch_size)]
    return np.ascontiguousarray(concat(parts)["h"])
