"""Pruning a Hugging Face encoder through the command line, on a tiny BERT and unlabelled
sentences written by the test; a model whose layers prune cannot cut fails at plan time, before anything
is loaded or timed."""

import pytest

from tests.helpers import FAST, run_cli, sentences, tiny_bert, tiny_gpt2, write_jsonl

pytest.importorskip("transformers")

TEXT = ["data.max_length=16", "data.calibration_size=16", "model.name=tinybert"]


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    root = tmp_path_factory.mktemp("bert")
    return tiny_bert(root / "encoder", head=False), write_jsonl(root / "plain.jsonl", sentences(120), labels=False)


def test_prune_heads_then_export(bert, cache_dir, tmp_path):
    directory, plain = bert
    code, out, s = run_cli(["recipe=transformer_prune", f"model.source=hf:{directory}", f"data.source=text:{plain}",
                            *TEXT, *FAST, "passes.prune.finetune_epochs=2"], cache_dir, tmp_path / "run")
    assert code == 0, out
    assert [(v["name"], v["status"]) for v in s["variants"]] == [("reference", "ok"), ("prune", "ok"), ("export", "ok")]
    prune = s["variants"][1]["meta"]
    assert prune["heads_before"] == [2, 2] and prune["heads_after"] == [1, 1]
    assert prune["mlp_before"] == [64, 64] and prune["mlp_after"] == [32, 32]
    export = s["variants"][2]
    assert export["meta"]["io"]["outputs"][0]["shape"] == ["batch", 32]  # the hidden size stays
    assert export["evaluation"]["mean_cosine"] > 0.99


def test_a_model_without_encoder_layers_fails_at_plan_time(bert, cache_dir, tmp_path):
    gpt2 = tiny_gpt2(tmp_path / "gpt2")
    code, out, summary = run_cli(["recipe=transformer_prune", f"model.source=hf:{gpt2}", f"data.source=text:{bert[1]}",
                                  *TEXT, *FAST], cache_dir, tmp_path / "run")
    assert code == 2, out
    assert summary["status"] == "error" and not summary["variants"], out  # nothing loaded, nothing timed
    assert "error: passes.prune: GPT2LMHeadModel has no encoder layers of a known layout" in out or \
        "error: passes.prune: GPT2Model has no encoder layers of a known layout" in out, out
    assert "Traceback" not in out
