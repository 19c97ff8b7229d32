"""Transformer fusion and quantization on a tiny BERT (2 layers, hidden 64, 4 heads, vocab 100),
built from BertConfig with random weights and exported with the TorchScript exporter."""

import logging
import warnings
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from optimizer.artifact import Artifact
from optimizer.config import HardwareConfig
from optimizer.passes.fuse import FuseConfig, Transformer, fuse, transformer_plan
from optimizer.passes.quantize import Mode, QuantizeConfig, activation_matmuls, calibration_reader, quantize
from optimizer.registry import Context

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

NAMES = ("input_ids", "attention_mask", "token_type_ids")
META = {"transformer": {"model_type": "bert", "num_heads": 4, "hidden_size": 64}}
FUSED = {"Attention": 2, "EmbedLayerNormalization": 1, "SkipLayerNormalization": 4, "BiasGelu": 2}


class Pooled(torch.nn.Module):
    """BERT's last hidden state, mean-pooled over the attention mask (a sentence embedding)."""

    def __init__(self, bert):
        super().__init__()
        self.bert = bert

    def forward(self, input_ids, attention_mask, token_type_ids):
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        return (h * m).sum(1) / m.sum(1).clamp(min=1e-9)


def feeds(n, seq=24, vocab=100, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, size=(n, seq), dtype=np.int64)
    mask = (np.arange(seq)[None, :] < rng.integers(seq // 2, seq + 1, size=(n, 1))).astype(np.int64)
    return {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": np.zeros((n, seq), np.int64)}


def tiny_bert(attn="eager"):
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=128, max_position_embeddings=64, attn_implementation=attn)
    return Pooled(transformers.BertModel(cfg, add_pooling_layer=False).eval()).eval()


def export(module, path, names=NAMES, sample=None):
    """The TorchScript exporter (dynamo=False), dynamic batch and sequence axes."""
    sample = sample or tuple(torch.from_numpy(feeds(2, 8)[k]) for k in names)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, sample, str(path), input_names=list(names), output_names=["sentence_embedding"],
                          opset_version=17, dynamo=False, do_constant_folding=True,
                          dynamic_axes={**{k: {0: "batch", 1: "sequence"} for k in names},
                                        "sentence_embedding": {0: "batch"}})
    return path


@pytest.fixture(scope="module")
def model():
    return tiny_bert()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    return Artifact(export(model, tmp_path_factory.mktemp("bert") / "model.onnx"), "onnx", meta=META)


@pytest.fixture(scope="module")
def evaluation(model):
    x = feeds(64, seed=1)
    with torch.inference_mode():
        return x, model(*(torch.from_numpy(x[k]) for k in NAMES)).numpy()


def ctx(tmp_path, step):
    out = tmp_path / step
    out.mkdir()
    return Context(out, step, SimpleNamespace(calibration=feeds(64, seed=2)), HardwareConfig())


def run(art, x):
    sess = ort.InferenceSession(str(art.path), providers=["CPUExecutionProvider"])
    return sess.run(None, x)[0]


def cosines(art, evaluation):
    """(mean cosine to FP32, mean cosine after subtracting the FP32 mean embedding)."""
    x, ref = evaluation
    out, mu = run(art, x), ref.mean(0)

    def cos(a, b):
        return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).mean())

    return cos(out, ref), cos(out - mu, ref - mu)


@pytest.fixture(scope="module")
def fused(exported, tmp_path_factory):
    return fuse(exported, FuseConfig(), ctx(tmp_path_factory.mktemp("fuse"), "fuse"))


def test_export_has_three_int64_inputs_with_dynamic_axes(exported):
    inputs = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"]).get_inputs()
    assert [i.name for i in inputs] == list(NAMES) and {i.type for i in inputs} == {"tensor(int64)"}
    assert all(i.shape == ["batch", "sequence"] for i in inputs)


def test_fuse_auto_uses_meta_and_keeps_parity(fused, evaluation):
    assert fused.meta["fused_ops"] == FUSED
    assert fused.meta["transformer_fusion"] == {"model_type": "bert", "num_heads": 4, "hidden_size": 64}
    ops = fused.meta["op_counts"]
    assert ops["Attention"] == 2 and "Softmax" not in ops and fused.meta["nodes_after"] == 25
    assert "warnings" not in fused.meta
    x, ref = evaluation
    assert np.abs(run(fused, x) - ref).max() < 1e-4
    for n, seq in ((1, 5), (3, 40)):  # batch and sequence stay dynamic
        assert run(fused, feeds(n, seq)).shape == (n, 64)


def test_fuse_auto_without_meta_runs_the_standard_fusions(exported, tmp_path):
    art = fuse(Artifact(exported.path, "onnx"), FuseConfig(), ctx(tmp_path, "fuse"))
    assert "fused_ops" not in art.meta and "Attention" not in art.meta["op_counts"]
    assert art.meta["op_counts"]["Softmax"] == 2


def test_fuse_explicit_type_and_null(exported, tmp_path):
    forced = fuse(Artifact(exported.path, "onnx"), FuseConfig(transformer=Transformer.bert, num_heads=4, hidden_size=64),
                  ctx(tmp_path, "forced"))
    assert forced.meta["fused_ops"] == FUSED
    off = fuse(exported, FuseConfig(transformer=None), ctx(tmp_path, "off"))
    assert "fused_ops" not in off.meta and "Attention" not in off.meta["op_counts"]


def test_transformer_plan_maps_hf_types_and_overrides():
    meta = {"transformer": {"model_type": "roberta", "num_heads": 12, "hidden_size": 768}}
    assert transformer_plan(meta, FuseConfig()) == (("bert", 12, 768), None)
    assert transformer_plan(meta, FuseConfig(num_heads=6)) == (("bert", 6, 768), None)
    assert transformer_plan({}, FuseConfig()) == (None, None)
    assert transformer_plan(meta, FuseConfig(transformer=Transformer.none)) == (None, None)
    plan, note = transformer_plan({"transformer": {"model_type": "llama"}}, FuseConfig())
    assert plan is None and "no onnxruntime.transformers fusion for model_type 'llama'" in note
    with pytest.raises(ValueError, match="not a multiple"):
        FuseConfig(num_heads=5, hidden_size=64)


def test_warning_for_sdpa_export_keeps_earlier_warnings(tmp_path):
    art = Artifact(export(tiny_bert("sdpa"), tmp_path / "sdpa.onnx"), "onnx",
                   meta={**META, "warnings": ["earlier"]})
    out = fuse(art, FuseConfig(), ctx(tmp_path, "fuse"))
    assert out.meta["fused_ops"]["Attention"] == 0 and out.meta["fused_ops"]["SkipLayerNormalization"] == 4
    assert out.meta["warnings"][0] == "earlier" and len(out.meta["warnings"]) == 2
    assert "fused no Attention although the graph has 2 Softmax" in out.meta["warnings"][1]
    assert "dynamo: false" in out.meta["warnings"][1] and "eager" in out.meta["warnings"][1]


def test_warning_for_graph_without_attention(tmp_path):
    mlp = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.GELU(), torch.nn.Linear(32, 4)).eval()
    path = export(mlp, tmp_path / "mlp.onnx", names=("x",), sample=(torch.randn(2, 16),))
    out = fuse(Artifact(path, "onnx"), FuseConfig(transformer=Transformer.bert), ctx(tmp_path, "fuse"))
    assert out.meta["fused_ops"]["Attention"] == 0
    assert "no attention pattern (no Softmax)" in out.meta["warnings"][0]


def _embedding_int8(art, shape=(100, 64)):
    model = onnx.load(str(art.path))
    return [i.name for i in model.graph.initializer
            if tuple(i.dims) == shape and i.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)]


def test_dynamic_int8_quantizes_embeddings_and_attention(fused, evaluation, tmp_path):
    with_emb = quantize(fused, QuantizeConfig(mode=Mode.dynamic), ctx(tmp_path, "q"))
    without = quantize(fused, QuantizeConfig(mode=Mode.dynamic, quantize_embeddings=False), ctx(tmp_path, "q2"))
    ops = with_emb.meta["op_counts"]
    assert ops["QAttention"] == 2 and ops["MatMulInteger"] == 6 and ops["QEmbedLayerNormalization"] == 1
    assert _embedding_int8(with_emb) and not _embedding_int8(without)
    assert with_emb.path.stat().st_size < 0.8 * without.path.stat().st_size
    cos, centered = cosines(with_emb, evaluation)  # measured 0.99997 / 0.9994
    assert cos > 0.9995 and centered > 0.997
    cos, centered = cosines(without, evaluation)  # measured 1.00000 / 0.99996
    assert centered > 0.999


def test_dynamic_int8_quantizes_gather_of_an_unfused_graph(exported, evaluation, tmp_path):
    plain = fuse(exported, FuseConfig(transformer=None), ctx(tmp_path, "fuse"))
    art = quantize(plain, QuantizeConfig(mode=Mode.dynamic), ctx(tmp_path, "q"))
    assert _embedding_int8(art) and art.meta["op_counts"]["MatMulInteger"] == 12
    assert cosines(art, evaluation)[1] > 0.997  # measured 0.9994


def test_static_keeps_transformer_ops_in_float(fused, evaluation, tmp_path):
    art = quantize(fused, QuantizeConfig(calibration_samples=64), ctx(tmp_path, "q"))
    ops = art.meta["op_counts"]
    assert art.meta["op_types"] == ["MatMul", "Gemm"] and ops["QuantizeLinear"] == 12
    assert art.meta["quantized_nodes"] == {"MatMul": 6}  # per layer: attention output, FFN in, FFN out
    assert ops["Attention"] == 2 and ops["SkipLayerNormalization"] == 4 and art.meta["calibration_samples"] == 64
    cos, centered = cosines(art, evaluation)  # measured 0.99999 / 0.9998
    assert cos > 0.9995 and centered > 0.998


def test_static_exclusions_on_an_unfused_graph(exported, evaluation, tmp_path):
    plain = fuse(exported, FuseConfig(transformer=None), ctx(tmp_path, "fuse"))
    art = quantize(plain, QuantizeConfig(calibration_samples=64), ctx(tmp_path, "q"))
    # the 4 attention MatMuls (scores, context) have no weight: kept in float; the 12 projections quantized
    assert art.meta["nodes_excluded"] == 4 and art.meta["op_counts"]["QuantizeLinear"] == 20
    assert cosines(art, evaluation)[1] > 0.99  # measured 0.9976
    scores = activation_matmuls(str(plain.path))
    first = next(n.name for n in onnx.load(str(plain.path)).graph.node if n.op_type == "MatMul" and n.name not in scores)
    fewer = quantize(plain, QuantizeConfig(calibration_samples=32, nodes_to_exclude=[first]), ctx(tmp_path, "q2"))
    assert fewer.meta["nodes_excluded"] == 5 and fewer.meta["op_counts"]["QuantizeLinear"] < 20


def test_op_types_to_exclude_and_reader():
    from optimizer.passes.quantize import default_ops

    assert default_ops(QuantizeConfig(mode=Mode.dynamic, op_types_to_exclude=["Gather"]))[-1] == "EmbedLayerNormalization"
    ops = default_ops(QuantizeConfig(op_types_to_exclude=["Relu"]))
    assert "Relu" not in ops and "Conv" in ops
    assert default_ops(QuantizeConfig()) is None
    seen = []
    reader = calibration_reader({"a": np.arange(5), "b": np.arange(5) * 10}, 2, seen.append)
    batches = list(iter(reader.get_next, None))
    assert [b["b"].tolist() for b in batches] == [[0, 10], [20, 30], [40]] and seen == [2, 2, 1]


def test_a_failing_fusion_falls_back_under_auto_and_fails_when_forced(exported, tmp_path, monkeypatch):
    import optimizer.passes.fuse as fuse_module
    from optimizer.errors import PassError

    def broken(*args):
        raise RuntimeError("Graph is not a DAG")

    monkeypatch.setattr(fuse_module, "_fuse_transformer", broken)
    art = fuse(exported, FuseConfig(), ctx(tmp_path, "auto"))
    assert art.meta["fused_ops"] == {} and art.meta["op_counts"]["Softmax"] == 2
    assert "failed (RuntimeError: Graph is not a DAG); ran the standard fusions only" in art.meta["warnings"][0]
    with pytest.raises(PassError, match=r"transformer fusion \(bert\) failed: RuntimeError: Graph is not a DAG"):
        fuse(exported, FuseConfig(transformer=Transformer.bert), ctx(tmp_path, "forced"))


def test_pre_processing_leaves_nothing_in_the_working_directory(exported, tmp_path, monkeypatch):
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    plain = fuse(exported, FuseConfig(transformer=None), ctx(tmp_path, "fuse"))  # symbolic shape inference fails here
    art = quantize(plain, QuantizeConfig(mode=Mode.dynamic), ctx(tmp_path, "q"))
    assert list(work.iterdir()) == [] and sorted(p.name for p in art.path.parent.iterdir()) == ["model.onnx"]
