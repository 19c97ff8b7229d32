"""The prune pass on Hugging Face encoders (optimizer.passes.prune_transformer): attention heads and MLP
channels cut at ratio 0.5 on a 4-layer BERT written by the test (hidden 64, 4 heads, MLP 256), label-free
recovery against the unpruned model, save / reload with the new shapes, ONNX export matching torch, a
classifier with labels, and the errors raised before any work."""

import numpy as np
import pytest

from tests.helpers import bert_encoder, hf_artifact, run_pass, token_data

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("bert")
    splits = token_data()
    teacher = hf_artifact(bert_encoder(root / "enc"), splits, root / "cache")
    pruned = run_pass("prune", teacher, splits, root, ratio=0.5, finetune_epochs=8, lr=1e-3)
    return teacher, pruned, splits


def test_half_the_heads_and_mlp_channels_go(setup):
    teacher, pruned, _ = setup
    m = pruned.meta
    assert m["heads_before"] == [4] * 4 and m["heads_after"] == [2] * 4
    assert m["mlp_before"] == [256] * 4 and m["mlp_after"] == [128] * 4
    assert m["transformer"] == {"model_type": "bert", "num_heads": 2, "hidden_size": 32}  # what fuse tells ORT
    assert 0.4 < m["param_reduction"] < 0.5  # embeddings and LayerNorms stay whole
    assert m["retrained"] == "prune" and teacher.meta["transformer"]["num_heads"] == 4


def test_recovery_brings_the_outputs_back_to_the_teacher(setup):
    m = setup[1].meta
    # a random-init encoder gives every input nearly the same embedding: the centered cosine (the teacher's
    # mean embedding taken out) is what moves. Measured: 0.988 after the cut, 0.9999 after 8 epochs.
    assert m["cosine_after_finetune"] > 0.999
    assert m["centered_cosine_after_prune"] < 0.995
    assert m["centered_cosine_after_finetune"] > 0.998
    assert 1 - m["centered_cosine_after_finetune"] < (1 - m["centered_cosine_after_prune"]) / 5


def test_pruned_model_reloads_with_its_new_shapes(setup):
    import torch

    from optimizer.formats.torch import forward, load_module

    teacher, pruned, splits = setup
    torch.load(pruned.path, weights_only=True)  # no pickled modules
    module = load_module(pruned)
    for layer in module.model.encoder.layer:
        attention = layer.attention.self
        assert (attention.num_attention_heads, attention.all_head_size, attention.query.out_features) == (2, 32, 32)
        assert layer.intermediate.dense.out_features == 128 and layer.output.dense.in_features == 128
    assert sum(p.numel() for p in module.parameters()) == pruned.meta["params_after"]
    got = forward(module, splits.evaluation)["output"].numpy()
    want = forward(load_module(teacher), splits.evaluation)["output"].numpy()
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.mean() == pytest.approx(pruned.meta["cosine_after_finetune"], abs=1e-5)


def test_pruned_model_exports_to_onnx_matching_torch(setup, tmp_path):
    import onnx

    teacher, pruned, splits = setup
    art = run_pass("onnx_export", pruned, splits, tmp_path)  # verifies ONNX Runtime against torch
    assert art.format == "onnx" and art.meta["heads_after"] == [2] * 4
    inits = {i.name: list(i.dims) for i in onnx.load(str(art.path)).graph.initializer}
    assert sorted(d for d in inits.values() if 128 in d and len(d) == 2) == [[64, 128]] * 4 + [[128, 64]] * 4
    assert art.meta["export_max_abs_diff"] < 1e-4


def test_classifier_with_labels_keeps_its_head(tmp_path):
    from optimizer.formats.torch import load_module

    splits = token_data(train=96, labels=True)
    teacher = hf_artifact(bert_encoder(tmp_path / "cls", head=True, layers=2), splits, tmp_path / "cache", "auto")
    art = run_pass("prune", teacher, splits, tmp_path, ratio=0.5, finetune_epochs=2, lr=1e-3, round_to=16,
                   ignored_layers=["model.bert.encoder.layer.1"])
    assert art.meta["heads_after"] == [2, 4] and art.meta["mlp_after"] == [128, 256]
    assert art.meta["transformer"]["num_heads"] == 0  # uneven: ORT reads the heads from the graph
    module = load_module(art)
    assert module.model.classifier.out_features == 2  # the output head stays whole
    assert module.model.bert.encoder.layer[1].attention.self.num_attention_heads == 4
    assert np.isfinite(art.meta["finetune_loss"])  # KL to the teacher plus cross-entropy on the labels


@pytest.mark.parametrize("params, message", [
    ({"importance": "taylor"}, "importance=taylor needs loss gradients"),
    ({"global_pruning": True}, "remove global_pruning"),
    ({"ignored_layers": ["encoder.layer.9"]}, r"ignored_layers \['encoder.layer.9'\] name no encoder layer"),
])
def test_bad_settings_fail_naming_the_fix(setup, tmp_path, params, message):
    from optimizer.errors import PassError

    teacher, _, splits = setup
    with pytest.raises(PassError, match=message):
        run_pass("prune", teacher, splits, tmp_path, **params)


def test_text_data_without_an_input_the_model_takes_fails(setup, tmp_path):
    from optimizer.errors import PassError
    from optimizer.sources.data import Splits

    teacher, _, s = setup
    drop = lambda f: {k: v for k, v in f.items() if k != "token_type_ids"}  # noqa: E731
    splits = Splits(drop(s.train), None, drop(s.calibration), drop(s.evaluation), None)
    with pytest.raises(PassError, match=r"the train split lacks \['token_type_ids'\]"):
        run_pass("prune", teacher, splits, tmp_path)


def test_pruned_model_fuses_into_attention_with_its_head_count(setup, tmp_path):
    import onnxruntime as ort

    _, pruned, splits = setup
    exported = run_pass("onnx_export", pruned, splits, tmp_path, opset=17, dynamo=False)
    fused = run_pass("fuse", exported, splits, tmp_path)
    assert fused.meta["fused_ops"]["Attention"] == 4  # ORT told 2 heads of 16: every layer's attention fused
    assert fused.meta["transformer_fusion"] == {"model_type": "bert", "num_heads": 2, "hidden_size": 32}
    run = [ort.InferenceSession(str(a.path), providers=["CPUExecutionProvider"]).run(None, splits.evaluation)[0]
           for a in (exported, fused)]
    assert np.abs(run[0] - run[1]).max() < 1e-4
