"""Hugging Face models that are not encoders with a classifier: a causal LM keeps its LM head (logits over the
vocabulary, next-token agreement, a warning about generation) and an audio model takes its waveform
(encoder–decoders: test_hf_seq2seq.py). Models are built from config classes here."""

import numpy as np
import pytest
import torch

from optimizer.errors import RecipeError
from optimizer.io import IOSpec, TensorSpec
from optimizer.evaluate import NEXT_TOKEN, check_outputs, model_task, task_metrics
from optimizer.sources import hf


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    from transformers import GPT2Config, GPT2LMHeadModel

    d = tmp_path_factory.mktemp("gpt2")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=50, n_positions=32, bos_token_id=1,
                               eos_token_id=2)).save_pretrained(str(d))
    return d


def test_a_causal_lm_keeps_its_head_and_says_what_is_not_handled(gpt2):
    info = hf.describe(str(gpt2))
    assert info["task"] == "causal_lm" and info["output_names"] == ["logits"] and info["num_labels"] is None
    assert info["input_names"] == ["input_ids", "attention_mask"] and info["warnings"] == [hf.CAUSAL_LM_NOTE]
    module = hf.load_module(str(gpt2), info["task"])
    logits = module(torch.randint(3, 50, (2, 7)), torch.ones(2, 7, dtype=torch.long))
    assert logits.shape == (2, 7, 50)  # the vocabulary at every position, not a pooled embedding
    assert model_task("embedding", "auto", {"hf_task": "causal_lm"}) == NEXT_TOKEN
    assert model_task("classification", "classification", {"hf_task": "causal_lm"}) == "classification"


def test_next_token_agreement_and_its_output_check():
    ref = np.random.default_rng(0).normal(size=(4, 6, 30))
    other = ref.copy()
    other[0, :3] = -ref[0, :3]  # three of 24 positions predict another token
    got = task_metrics(NEXT_TOKEN, {"logits": other}, None, "logits", {"logits": ref})
    assert got == {"metric": "next_token_agreement", "score": 87.5, "next_token_agreement": 87.5}
    io = IOSpec((TensorSpec("input_ids", "int64", ("batch", "sequence")),),
                (TensorSpec("logits", "float32", ("batch", 30)),))
    with pytest.raises(RecipeError, match=r"next_token needs logits \[batch, sequence, vocabulary\]"):
        check_outputs(NEXT_TOKEN, io, "")


def test_an_audio_model_takes_its_waveform(tmp_path):
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            conv_dim=(16, 16), conv_stride=(5, 2), conv_kernel=(10, 3), num_feat_extract_layers=2,
                            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=20)
    torch.manual_seed(0)
    Wav2Vec2Model(config).save_pretrained(str(tmp_path))
    info = hf.describe(str(tmp_path))
    assert info["task"] == "feature_extraction" and info["input_names"] == ["input_values"]
    assert hf.load_module(str(tmp_path))(torch.randn(2, 400)).shape == (2, 32)
