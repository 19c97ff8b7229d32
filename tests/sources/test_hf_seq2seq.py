"""Encoder–decoder Hugging Face models (optimizer.sources.hf_seq2seq, hf_decoder_data): a tiny T5 and a tiny
Whisper built from config classes load as their encoder and as one decoder step, each exports to ONNX through
the export pass (dynamic axes, verified against torch) and matches torch at two sequence lengths; the decoder
step's data is made by running the encoder; a wrong component is named in one line."""

import numpy as np
import pytest
import torch

from optimizer.cache import Cache
from optimizer.config import DataConfig, ModelConfig
from optimizer.errors import RecipeError
from optimizer.evaluate import HIDDEN, NEXT_TOKEN, model_task, resolve_task, task_metrics
from optimizer.sources import hf, hf_dir
from optimizer.sources.data import load_splits
from optimizer.sources.hf_module import ENCODER as ENC
from optimizer.sources.hf_decoder_data import decoder_parts
from optimizer.sources.models import check_source
from tests.factories import mel_features
from tests.helpers import run_pass, sentences, tiny_bert, tiny_t5, tiny_whisper, write_jsonl


@pytest.fixture(scope="module")
def t5(tmp_path_factory):
    root = tmp_path_factory.mktemp("t5")
    return tiny_t5(root / "t5"), write_jsonl(root / "text.jsonl", sentences(40), labels=False)


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    return tiny_whisper(tmp_path_factory.mktemp("whisper") / "whisper")


def _session(path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _export(directory, component, splits, tmp_path):
    art = hf_dir.load(ModelConfig(source=f"hf:{directory}", component=component), splits, Cache(tmp_path / "c"), 0)
    return art, run_pass("onnx_export", art, splits, tmp_path, opset=17, dynamo=False)


def _t5_splits(t5, component):
    model = ModelConfig(source=f"hf:{t5[0]}", component=component)
    return load_splits(DataConfig(source=f"text:{t5[1]}", max_length=12, calibration_size=8), 0, model)


def test_the_pieces_named_from_the_config(t5, whisper):
    encoder, step = hf.describe(str(t5[0])), hf.describe(str(t5[0]), component="decoder_step")
    assert (encoder["task"], encoder["input_names"], encoder["output_names"]) == (
        "seq2seq_encoder", ["input_ids", "attention_mask"], ["last_hidden_state"])
    assert "decoder step is a separate run with model.component=decoder_step" in encoder["warnings"][0]
    assert step["input_names"] == ["decoder_input_ids", "encoder_hidden_states", "encoder_attention_mask"]
    assert step["data_input_names"] == ["input_ids", "attention_mask"] and step["output_names"] == ["logits"]
    assert "KV cache are not handled" in step["warnings"][0]
    audio = hf.describe(str(whisper), component="decoder_step")
    assert hf.describe(str(whisper))["input_names"] == ["input_features"]
    assert audio["input_names"] == ["decoder_input_ids", "encoder_hidden_states"]  # no mask: Whisper has none
    assert model_task("embedding", "auto", {"hf_task": "seq2seq_encoder"}) == HIDDEN
    assert model_task("embedding", "auto", {"hf_task": "seq2seq_decoder_step"}) == NEXT_TOKEN
    assert resolve_task(HIDDEN, False) == HIDDEN and model_task("embedding", "embedding", {"hf_task": ENC}) == "embedding"


def test_the_decoder_steps_data_runs_the_encoder(t5):
    s = _t5_splits(t5, "decoder_step")
    ev = s.evaluation
    assert set(ev) == {"decoder_input_ids", "encoder_hidden_states", "encoder_attention_mask"}
    assert ev["encoder_hidden_states"].shape == (10, 12, 32) and ev["encoder_hidden_states"].dtype == np.float32
    assert ev["decoder_input_ids"].shape == (10, 8) and (ev["decoder_input_ids"][:, 0] == 0).all()
    plain = _t5_splits(t5, "encoder").evaluation
    np.testing.assert_array_equal(ev["encoder_attention_mask"], plain["attention_mask"])
    encoder = hf.load_module(str(t5[0]), component="encoder")
    with torch.inference_mode():
        hidden = encoder(*(torch.from_numpy(plain[n][:3]) for n in encoder.input_names)).numpy()
    np.testing.assert_allclose(ev["encoder_hidden_states"][:3], hidden, atol=1e-6)


def test_t5_encoder_exports_and_matches_torch_at_two_lengths(t5, tmp_path):
    art, onnx = _export(t5[0], "encoder", _t5_splits(t5, "encoder"), tmp_path)
    assert art.meta["hf_task"] == "seq2seq_encoder" and onnx.meta["export_max_abs_diff"] < 1e-4
    module, session = hf.load_module(str(t5[0]), "seq2seq_encoder"), _session(onnx.path)
    for length in (5, 19):
        ids = torch.randint(5, 60, (3, length), generator=torch.Generator().manual_seed(length))
        mask = torch.ones_like(ids)
        mask[1, length // 2:] = 0
        with torch.inference_mode():
            expected = module(ids, mask).numpy()
        got = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
        assert got.shape == (3, length, 32)
        np.testing.assert_allclose(got, expected, atol=1e-4)
    same = task_metrics(HIDDEN, {"h": got}, None, "h", {"h": expected})
    assert same["metric"] == "cosine_similarity" and same["score"] > 99.99


def _step_feeds(batch, tokens, frames, with_mask, seed):
    gen = torch.Generator().manual_seed(seed)
    feeds = {"decoder_input_ids": torch.randint(0, 50, (batch, tokens), generator=gen),
             "encoder_hidden_states": torch.randn(batch, frames, 32, generator=gen)}
    if with_mask:
        feeds["encoder_attention_mask"] = torch.ones(batch, frames, dtype=torch.int64)
        feeds["encoder_attention_mask"][0, frames // 2:] = 0
    return feeds


@pytest.mark.parametrize("kind", ["t5", "whisper"])
def test_a_decoder_step_exports_and_matches_torch_at_two_lengths(kind, t5, whisper, tmp_path):
    directory = t5[0] if kind == "t5" else whisper
    splits = _t5_splits(t5, "decoder_step") if kind == "t5" else _whisper_splits(whisper)
    art, onnx = _export(directory, "decoder_step", splits, tmp_path)
    assert art.meta["hf_task"] == "seq2seq_decoder_step"
    shapes = {t["name"]: t["shape"] for t in art.meta["io"]["inputs"]}
    assert shapes["decoder_input_ids"] == ["batch", "decoder_sequence"]
    assert shapes["encoder_hidden_states"] == ["batch", "encoder_sequence", 32]
    module, session = hf.load_module(str(directory), "seq2seq_decoder_step"), _session(onnx.path)
    for tokens, frames in ((3, 7), (6, 16)):
        feeds = _step_feeds(2, tokens, frames, kind == "t5", seed=tokens)
        with torch.inference_mode():
            expected = module(*feeds.values()).numpy()
        got = session.run(None, {k: v.numpy() for k, v in feeds.items()})[0]
        assert got.shape == (2, tokens, 67 if kind == "t5" else 50)
        np.testing.assert_allclose(got, expected, atol=1e-4)
        assert (got.argmax(-1) == expected.argmax(-1)).all()


def _whisper_splits(whisper):
    model = ModelConfig(source=f"hf:{whisper}", component="decoder_step")
    return load_splits(DataConfig(source="tests.factories:mel_features", kwargs={"n": 16}), 0, model)


def test_whisper_encoder_takes_its_features(whisper, tmp_path):
    art, onnx = _export(whisper, "encoder", mel_features(16), tmp_path)
    assert [t["name"] for t in art.meta["io"]["inputs"]] == ["input_features"]
    got = _session(onnx.path).run(None, {"input_features": mel_features(4).evaluation["input_features"]})[0]
    assert got.shape == (2, 16, 32)  # 32 frames in, 16 positions out (the convolution's stride 2)


def test_a_wrong_component_is_named_in_one_line(t5, whisper, tmp_path):
    with pytest.raises(RecipeError, match=r"model.component='decoder' is not one of auto, encoder, decoder_step"):
        check_source(ModelConfig(source=f"hf:{t5[0]}", component="decoder"))
    with pytest.raises(RecipeError, match=r"model.component='encoder' picks a piece of an hf: encoder–decoder"):
        check_source(ModelConfig(source="tests.factories:tiny_cnn", component="encoder"))
    bert = tiny_bert(tmp_path / "bert")
    with pytest.raises(RecipeError, match=r"model.component='decoder_step' picks a piece of an encoder–decoder "
                                          r"model; bert is not one") as e:
        hf.describe(str(bert), component="decoder_step")
    with pytest.raises(RecipeError, match=r"model.task='causal_lm': t5 is an encoder–decoder model; leave"):
        hf.describe(str(t5[0]), "causal_lm")
    with pytest.raises(RecipeError, match=r"runs its encoder on the data, which needs input_features; the data "
                                          r"has input_ids, attention_mask"):
        decoder_parts(str(whisper), _t5_splits(t5, "encoder"), 0)
    assert "\n" not in str(e.value)
