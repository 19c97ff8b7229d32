"""Models from other toolchains through the whole CLI: an opset-12 ONNX file (exported the way many published
models were) runs the default int8 recipe to a valid INT8 variant, with the export step skipped; a causal LM
keeps its LM head and is scored by next-token agreement, with a warning about generation."""

import pytest

from tests.helpers import FAST, WORDS, error_lines, run_cli, sentences, tiny_gpt2, vad_like, write_jsonl

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter, used on purpose


def test_the_int8_recipe_on_an_opset_12_onnx_file(cache_dir, tmp_path):
    import torch

    from tests.factories import tiny_cnn

    path = tmp_path / "cnn.onnx"
    torch.onnx.export(tiny_cnn().eval(), torch.randn(1, 1, 32, 32), str(path), opset_version=12, dynamo=False,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    code, out, s = run_cli(["recipe=int8", f"model.source={path}", "data.source=tests.factories:small_digits",
                            "constraints.max_accuracy_drop=null", *FAST], cache_dir, tmp_path / "run")
    assert code == 0 and "Traceback" not in out, out
    by = {v["name"]: v for v in s["variants"]}
    assert by["export"]["status"] == "skipped" and by["export"]["error"] == "model.source already gives onnx: nothing to export"
    q = by["quantize"]
    assert q["status"] == "ok" and q["precision"] == "int8" and q["meta"]["quantized_nodes"]["Conv"] == 2
    assert q["evaluation"]["mean_cosine"] > 0.99 and "evaluation" in by["fuse"]
    assert any("opset 12 was upgraded to 13" in w for w in s["warnings"]) and s["failed_steps"] == []


def test_a_causal_lm_is_optimized_as_what_it_is(cache_dir, tmp_path):
    model = tiny_gpt2(tmp_path / "gpt")
    text = write_jsonl(tmp_path / "text.jsonl", sentences(80), labels=False)
    code, out, s = run_cli(["recipe=transformer_int8", f"model.source=hf:{model}", f"data.source=text:{text}",
                            "data.calibration_size=16", "data.max_length=16", *FAST, "triton.emit=true"],
                           cache_dir, tmp_path / "run")
    assert code == 0 and "Traceback" not in out, out
    by = {v["name"]: v for v in s["variants"]}
    assert by["reference"]["evaluation"]["metric"] == "next_token_agreement"
    assert by["quantize"]["evaluation"]["next_token_agreement"] > 90 and by["quantize"]["precision"] == "int8-dynamic"
    assert any("generation and the KV cache are not handled yet" in w for w in s["warnings"])
    config = (tmp_path / "run" / "model_repository" / "gpt" / "config.pbtxt").read_text()
    vocabulary = 5 + len(WORDS)  # the logits cover the vocabulary at every position
    assert s["model"]["io"]["outputs"][0]["shape"][-1] == vocabulary and len(s["model"]["io"]["outputs"][0]["shape"]) == 3
    assert 'name: "logits"' in config and f"dims: {vocabulary}" in config


def test_a_scalar_sample_rate_input_is_folded_and_never_served(cache_dir, tmp_path):
    model = vad_like(tmp_path / "vad.onnx")
    args = ["recipe=int8", f"model.source={model}", "data.source=tests.factories:audio_frames", *FAST]
    code, out, s = run_cli([*args, "+model.constants.rate=16000"], cache_dir, tmp_path / "bad")
    assert code == 2 and error_lines(out) == [
        "error: model.constants.rate: the model has no input 'rate'; its inputs are ['sr', 'x']"], out
    code, out, s = run_cli([*args, "+model.constants.sr=16000", "triton.emit=true"], cache_dir, tmp_path / "run")
    assert code == 0 and "Traceback" not in out, out
    assert [i["name"] for i in s["model"]["io"]["inputs"]] == ["x"] and s["variants"][0]["meta"]["constants"] == {"sr": 16000}
    assert {v["name"]: v["status"] for v in s["variants"]} == {"reference": "ok", "export": "skipped", "fuse": "ok",
                                                                "quantize": "ok"}
    config = (tmp_path / "run" / "model_repository" / "vad" / "config.pbtxt").read_text()
    assert 'name: "x"' in config and 'name: "sr"' not in config


def test_a_streaming_model_with_a_state_on_axis_1_runs_without_graph_surgery(cache_dir, tmp_path):
    from tests.helpers import stateful_vad

    model = stateful_vad(tmp_path / "vad.onnx")
    args = ["recipe=int8", f"model.source={model}", "data.source=tests.factories:audio_frames",
            "+model.constants.sr=16000", "+model.state.state=stateN", *FAST]
    code, out, _ = run_cli([*args, "+model.batch_axis.state=3"], cache_dir, tmp_path / "beyond")
    assert code == 2 and error_lines(out) == [
        "error: model.batch_axis.state: axis 3 is beyond the tensor's 3 axes (0 to 2, or null for none)"], out
    code, out, _ = run_cli([*args, "+model.batch_axis.state=1"], cache_dir, tmp_path / "half")  # stateN left as it is
    assert code == 2 and error_lines(out) == [
        "error: model.state.state: input state (float32 [batch, 2, 16]) and output stateN (float32 [2, batch, 16]) "
        "differ; a state output must have its input's type and shape (set model.batch_axis where the batch is not "
        "axis 0)"], out
    code, out, s = run_cli([*args, "+model.batch_axis.state=1", "+model.batch_axis.stateN=1", "triton.emit=true"],
                           cache_dir, tmp_path / "run")
    assert code == 0 and "Traceback" not in out, out
    assert s["model"]["io"]["inputs"] == [{"name": "x", "dtype": "float32", "shape": ["batch", 64]},
                                          {"name": "state", "dtype": "float32", "shape": ["batch", 2, 16]}]
    by = {v["name"]: v for v in s["variants"]}
    assert by["quantize"]["status"] == "ok" and by["quantize"]["precision"] == "int8"
    assert by["quantize"]["evaluation"]["relative_error"] < 0.2  # per call, on the states the source carried
    config = (tmp_path / "run" / "model_repository" / "vad" / "config.pbtxt").read_text()
    assert '\n  name: "x"' in config and '\n  name: "y"' in config and '\n  name: "state"' not in config
    assert 'input_name: "state"' in config and 'output_name: "stateN"' in config and "zero_data: true" in config
    assert "dynamic_batching" not in config and s["triton"]["values"]["batcher"] == "sequence"
