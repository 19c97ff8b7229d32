"""Real models through the command line: a tiny BERT with three int64 inputs and no labels, Triton included;
vit_digits; every bad input of the named-I/O data model."""

from pathlib import Path

import numpy as np
import pytest

from optimizer.errors import EXIT_RECIPE
from tests.helpers import FAST, error_lines, run_cli
from tests.helpers import sentences, tiny_bert, write_jsonl


TOKENS = ["input_ids", "attention_mask", "token_type_ids"]
TEXT = ["data.max_length=16", "data.calibration_size=16", "model.name=tinybert"]


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """A feature-extraction BERT directory, an unlabelled and a labelled sentence file."""
    root = tmp_path_factory.mktemp("bert")
    return (tiny_bert(root / "encoder", head=False), write_jsonl(root / "plain.jsonl", sentences(120), labels=False),
            write_jsonl(root / "labelled.jsonl", sentences(120)))


@pytest.fixture(scope="module")
def bert_onnx(bert, tmp_path_factory):
    """The encoder exported by hand with its three named inputs (an ONNX file a user brings)."""
    import torch

    from optimizer.sources.hf import load_module

    path = tmp_path_factory.mktemp("onnx") / "encoder.onnx"
    module = load_module(str(bert[0]), "feature_extraction")
    x = tuple(torch.ones(2, 16, dtype=torch.int64) for _ in TOKENS)
    torch.onnx.export(module, x, str(path), input_names=TOKENS, output_names=["embeddings"], dynamo=False,
                      dynamic_axes={n: {0: "batch", 1: "sequence"} for n in TOKENS} | {"embeddings": {0: "batch"}})
    return path


def test_bert_without_labels_end_to_end(bert, cache_dir, tmp_path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    from optimizer.triton import emit

    directory, plain, _ = bert
    code, out, s = run_cli(["recipe=transformer_int8", f"model.source=hf:{directory}", f"data.source=text:{plain}", *TEXT,
                            *FAST, "triton.emit=true", "serving.max_batch_cap=8"], cache_dir, tmp_path / "run")
    assert code == 0, out
    assert s["task"] == "embedding" and s["data"]["labels"] is False
    export = next(v for v in s["variants"] if v["name"] == "export")
    assert [(t["name"], t["dtype"], t["shape"]) for t in export["meta"]["io"]["inputs"]] == [
        (n, "int64", ["batch", "sequence"]) for n in TOKENS]
    assert export["meta"]["io"]["outputs"] == [{"name": "embeddings", "dtype": "float32", "shape": ["batch", 32]}]
    fuse = next(v for v in s["variants"] if v["name"] == "fuse")
    assert fuse["meta"]["fused_ops"]["Attention"] == 2 and fuse["meta"]["fused_ops"]["EmbedLayerNormalization"] == 1
    quantize = next(v for v in s["variants"] if v["name"] == "quantize")
    assert quantize["precision"] == "int8-dynamic" and quantize["evaluation"]["mean_cosine"] >= 0.99
    for v in s["variants"]:
        assert v["evaluation"]["metric"] == "nn_agreement" and 0 <= v["evaluation"]["score"] <= 100
    assert export["evaluation"]["mean_cosine"] > 0.9999 and export["evaluation"]["parity_base"] == "reference"
    config_path = tmp_path / "run" / s["triton"]["config"]  # relative to the run directory
    c = text_format.Parse(config_path.read_text(), mc.ModelConfig())
    assert [(i.name, mc.DataType.Name(i.data_type), list(i.dims)) for i in c.input] == [
        (n, "TYPE_INT64", [-1]) for n in TOKENS]
    assert [list(d.dims) for d in c.model_warmup[0].inputs.values()] == [[16]] * 3  # concrete, never -1
    assert emit.validate(config_path, emit.model_io(config_path.parent / "1" / "model.onnx"), cores=2) == []
    ref = np.load(config_path.parent / "reference.npz")
    assert sorted(k for k in ref.files if k.startswith("in.")) == sorted(f"in.{n}" for n in TOKENS)
    assert ref["in.input_ids"].dtype == np.int64 and ref["out.embeddings"].shape == (30, 32)  # the 30 evaluation rows


def test_bert_served_by_a_real_triton_server(bert, cache_dir, tmp_path):
    from optimizer.tritonserver.server import find_server

    try:
        find_server()
    except Exception as e:  # noqa: BLE001 - CI provisions a server (OPTIMIZER_TRITON_REQUIRED makes this fail)
        import os

        if os.environ.get("OPTIMIZER_TRITON_REQUIRED"):
            raise
        pytest.skip(f"no tritonserver: {e}")
    directory, _, labelled = bert
    code, out, s = run_cli(["recipe=transformer_int8", f"model.source=hf:{directory}", f"data.source=text:{labelled}",
                            "evaluation.task=embedding", *TEXT, *FAST, "triton.emit=true", "triton.smoke_test=true",
                            "triton.smoke_concurrency=[1,4]", "triton.smoke_requests=40", "triton.capacity_test=false",
                            "serving.max_batch_cap=8"],
                           cache_dir, tmp_path / "run")
    assert code == 0, out
    smoke = s["triton"]["smoke_test"]
    model = smoke["models"]["tinybert"]
    assert smoke["passed"] and model["max_abs_diff"] <= model["tolerance"] and model["samples"] == 30, smoke
    assert all(r["errors"] == 0 for r in model["load"])


def test_vit_digits_end_to_end(cache_dir, tmp_path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    code, out, s = run_cli(["model=vit_digits", "model.train_epochs=3", "recipe=int8", *FAST, "triton.emit=true",
                            "serving.max_batch_cap=8", "constraints.max_accuracy_drop=5"], cache_dir, tmp_path / "run")
    assert code == 0, out
    ref = s["variants"][0]
    assert ref["evaluation"]["metric"] == "accuracy" and ref["evaluation"]["accuracy"] > 15  # 3 epochs: above chance
    assert s["model"]["io"]["inputs"] == [{"name": "input", "dtype": "float32", "shape": ["batch", 1, 32, 32]}]
    assert s["chosen"] != "reference" and s["triton"]["emitted"]
    c = text_format.Parse((tmp_path / "run" / s["triton"]["config"]).read_text(), mc.ModelConfig())
    assert c.name == "vit_digits" and [o.name for o in c.output] == ["logits"] and list(c.output[0].dims) == [10]


def _factory(tmp_path, **kwargs):
    return ["data.source=tests.factories:token_splits", *[f"+data.kwargs.{k}={v}" for k, v in kwargs.items()]]


BAD = {
    "missing-input": (lambda b, o, t: [f"model.source={o}", "passes.export=null", *_factory(t, drop="attention_mask")],
                      "needs input attention_mask (int64 [batch, sequence]); the data has"),
    "wrong-dtype": (lambda b, o, t: [f"model.source={o}", "passes.export=null", *_factory(t, dtype="int32")],
                    "input 'input_ids' must be int64 with 2 axes"),
    "labels-train-only": (lambda b, o, t: [f"model.source={o}", "passes.export=null", *_factory(t, labels="train")],
                          "data: labels are given for the train split only"),
    "label-count": (lambda b, o, t: [f"model.source={o}", "passes.export=null", *_factory(t, labels="short")],
                    "data: the evaluation split has 24 samples but 3 labels"),
    "empty-split": (lambda b, o, t: [f"model.source={o}", "passes.export=null", *_factory(t, empty="calibration")],
                    "data: the calibration split is empty"),
    "embedding-4d": (lambda b, o, t: ["model.source=tests.factories:conv_features", "evaluation.task=embedding"],
                     "evaluation.task=embedding needs a 2-D output [batch, features]; output 'output' has shape"),
    "no-tokenizer": (lambda b, o, t: [f"model.source=hf:{_without_tokenizer(b, t)}", f"data.source=text:{b[1]}", *TEXT],
                     "no tokenizer in"),
    "forward-argument": (lambda b, o, t: ["model.source=tests.factories:two_inputs", *_factory(t, drop="attention_mask")],
                         "the model's forward needs ['attention_mask']; the data has ['input_ids', 'token_type_ids']"),
    "classification-no-labels": (lambda b, o, t: [f"model.source=hf:{b[0]}", f"data.source=text:{b[1]}",
                                                  "evaluation.task=classification", *TEXT],
                                 "evaluation.task=classification needs labels in the data"),
}


def _without_tokenizer(bert, tmp_path) -> Path:
    import shutil

    target = tmp_path / "no_tokenizer"
    shutil.copytree(bert[0], target)
    for f in target.iterdir():
        if "token" in f.name or f.name.startswith(("vocab", "special")):
            f.unlink()
    return target


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input(case, bert, bert_onnx, cache_dir, tmp_path):
    args, message = BAD[case]
    code, out, summary = run_cli(["recipe=baseline", *args(bert, bert_onnx, tmp_path), *FAST], cache_dir, tmp_path / "run")
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    assert code == EXIT_RECIPE, out
    assert len(lines) <= 2 and "Traceback" not in out, out
    (error,) = error_lines(out)  # a status line may come before it (stdout), the error goes to stderr
    assert message in error, out
    assert summary["status"] == "error" and summary["exit_code"] == EXIT_RECIPE and message in summary["error"]
