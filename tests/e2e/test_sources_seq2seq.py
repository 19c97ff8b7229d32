"""An encoder–decoder through the command line: a tiny T5 (from config classes, the tests' own tokenizer) runs
the transformer INT8 recipe as its encoder and, in a separate run, as one decoder step whose data is made by
running the encoder on the text; a tiny Whisper's decoder step on log-mel features from a data factory is emitted
to Triton with its dynamic axes; a wrong model.component is refused in one line."""

import pytest

from tests.helpers import FAST, WORDS, assert_recipe_error, run_cli, sentences, tiny_t5, tiny_whisper, write_jsonl

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter, used on purpose
CHEAP = [*FAST, "benchmark.batch_sizes=[1]", "benchmark.rounds=1", "benchmark.min_repeats=5",
         "benchmark.max_seconds=0.1", "benchmark.fresh_workers=false", "data.calibration_size=8",
         "data.max_length=12", "evaluation.batch_size=16"]


@pytest.fixture(scope="module")
def t5(tmp_path_factory):
    root = tmp_path_factory.mktemp("t5")
    return tiny_t5(root / "t5"), write_jsonl(root / "text.jsonl", sentences(40), labels=False)


@pytest.mark.parametrize("component", ["encoder", "decoder_step"])
def test_each_piece_of_a_t5_runs_the_transformer_recipe(component, t5, cache_dir, tmp_path):
    code, out, s = run_cli(["recipe=transformer_int8", f"model.source=hf:{t5[0]}", f"data.source=text:{t5[1]}",
                            f"model.component={component}", *CHEAP], cache_dir, tmp_path / "run")
    assert code == 0 and "Traceback" not in out, out
    by = {v["name"]: v for v in s["variants"]}
    assert set(by) == {"reference", "export", "fuse", "quantize"} and s["failed_steps"] == []
    inputs = [(t["name"], t["shape"]) for t in by["export"]["meta"]["io"]["inputs"]]
    output = by["export"]["meta"]["io"]["outputs"][0]
    assert by["quantize"]["precision"] == "int8-dynamic" and by["export"]["evaluation"]["relative_error"] < 1e-4
    if component == "encoder":
        assert inputs == [("input_ids", ["batch", "sequence"]), ("attention_mask", ["batch", "sequence"])]
        assert output["name"] == "last_hidden_state" and len(output["shape"]) == 3 and output["shape"][-1] == 32
        assert by["quantize"]["evaluation"]["metric"] == "cosine_similarity"
        assert by["quantize"]["evaluation"]["score"] > 99
        assert any("decoder step is a separate run with model.component=decoder_step" in w for w in s["warnings"])
    else:
        assert inputs == [("decoder_input_ids", ["batch", "decoder_sequence"]),
                          ("encoder_hidden_states", ["batch", "encoder_sequence", 32]),
                          ("encoder_attention_mask", ["batch", "encoder_sequence"])]
        assert output["name"] == "logits" and output["shape"][-1] == 5 + len(WORDS)
        assert by["export"]["evaluation"]["metric"] == "next_token_agreement"
        assert by["export"]["evaluation"]["score"] == 100.0
        assert any("generation and the KV cache are not handled yet" in w for w in s["warnings"])


def test_a_whisper_decoder_step_is_emitted_to_triton(cache_dir, tmp_path):
    model = tiny_whisper(tmp_path / "whisper")
    code, out, s = run_cli(["recipe=transformer_int8", f"model.source=hf:{model}", "model.component=decoder_step",
                            "data.source=tests.factories:mel_features", *CHEAP, "triton.emit=true",
                            "serving.max_batch_cap=8"], cache_dir, tmp_path / "run")
    assert code == 0 and "Traceback" not in out, out
    assert [t["name"] for t in s["model"]["io"]["inputs"]] == ["decoder_input_ids", "encoder_hidden_states"]
    config = (tmp_path / "run" / "model_repository" / "whisper" / "config.pbtxt").read_text()
    hidden = config[config.index('name: "encoder_hidden_states"'):]
    assert "dims: -1\n  dims: 32" in hidden  # [batch,] encoder positions (dynamic), hidden size
    assert 'name: "logits"' in config and "dims: 50" in config


def test_a_wrong_component_is_named(t5, cache_dir, tmp_path):
    code, out, s = run_cli(["recipe=transformer_int8", f"model.source=hf:{t5[0]}", f"data.source=text:{t5[1]}",
                            "model.component=decoder", *CHEAP], cache_dir, tmp_path / "run")
    assert_recipe_error(code, out, s, "model.component='decoder' is not one of auto, encoder, decoder_step")
