"""Quantization on models from other toolchains yields valid graphs, says what it quantized, and fails as a
step with the real cause when the quantizer writes an invalid model."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from optimizer.artifact import Artifact
from optimizer.errors import PassError, one_line
from optimizer.formats.onnx_graph import check_runs, opset, quantized_nodes
from tests.helpers import run_pass

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter, used on purpose


def legacy_export(module, path, opset_version):
    """Export the way many published ONNX files were made: the TorchScript exporter at an old opset."""
    import torch

    torch.onnx.export(module.eval(), torch.randn(1, 1, 32, 32), str(path), opset_version=opset_version, dynamo=False,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return Artifact(path, "onnx", meta={"precision": "fp32"})


@pytest.fixture(scope="module")
def opset12(tmp_path_factory):
    from tests.factories import tiny_cnn

    art = legacy_export(tiny_cnn(), tmp_path_factory.mktemp("op12") / "cnn.onnx", 12)
    assert opset(art.path) == 12
    return art


def _outputs(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


def test_per_channel_int8_on_an_opset_12_model_is_valid(opset12, splits, tmp_path):
    art = run_pass("quantize", opset12, splits, tmp_path, calibration_samples=32)
    check_runs(art.path)  # checker and ONNX Runtime both accept it
    assert opset(art.path) == 13 and art.meta["precision"] == "int8"
    assert art.meta["quantized_nodes"]["Conv"] == 2 and art.meta["quantized_ops"] == sorted(art.meta["quantized_nodes"])
    assert any("opset 12 was upgraded to 13" in w for w in art.meta["warnings"])
    x = splits.evaluation["input"][:64]
    ref, q = _outputs(opset12.path, x), _outputs(art.path, x)
    cos = (ref * q).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(q, axis=1)
    assert cos.mean() > 0.99
    assert sorted(p.name for p in (tmp_path / "quantize").iterdir()) == ["model.onnx"]  # no scratch files left


def test_an_invalid_quantized_model_fails_the_step_with_its_cause(opset12, splits, tmp_path, monkeypatch):
    from optimizer.passes import quantize_checks

    monkeypatch.setattr(quantize_checks, "fit_opset", lambda src, cfg, step, out: (src, cfg, []))  # the old path
    with pytest.raises(PassError) as e:
        run_pass("quantize", opset12, splits, tmp_path, calibration_samples=16)
    message = str(e.value)
    assert message.startswith("step 'quantize': static quantization wrote an invalid model: ")
    assert "DequantizeLinear" in message and "\n" not in message


def test_dynamic_int8_with_nothing_to_quantize_says_so(splits, tmp_path):
    from tests.factories import conv_features

    src = legacy_export(conv_features(), tmp_path / "conv.onnx", 17)
    art = run_pass("quantize", src, splits, tmp_path, mode="dynamic")
    assert art.meta["quantized_nodes"] == {} and art.meta["quantized_ops"] == []
    assert art.meta["precision"] == "fp32"  # labelled for what it is, not int8-dynamic
    (warning,) = art.meta["warnings"]
    assert warning.startswith("passes.quantize: nothing was quantized") and "stays fp32" in warning


def test_dynamic_int8_counts_what_it_quantized(opset12, splits, tmp_path):
    art = run_pass("quantize", opset12, splits, tmp_path, mode="dynamic")
    assert art.meta["precision"] == "int8-dynamic" and art.meta["op_types"] == ["MatMul", "Gemm", "Attention", "LSTM",
                                                                                "GRU", "Gather", "EmbedLayerNormalization"]
    assert art.meta["quantized_nodes"] == {"MatMulInteger": 1}  # the classifier's Gemm; convolutions stay float


def test_quantized_nodes_of_a_qdq_graph(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 4), np.int8), "w_q")
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "s"], ["w"]),
             helper.make_node("QuantizeLinear", ["x", "s"], ["x_q"]),
             helper.make_node("DequantizeLinear", ["x_q", "s"], ["x_dq"]),
             helper.make_node("MatMul", ["x_dq", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])],
                              [w, numpy_helper.from_array(np.array(0.1, np.float32), "s")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(tmp_path / "m.onnx"))
    assert quantized_nodes(tmp_path / "m.onnx") == {"MatMul": 1}  # Relu runs on the float MatMul output


def test_a_long_library_message_keeps_its_cause():
    cause = "the real cause at the very end"
    line = one_line(RuntimeError("Load model failed: " + "x" * 600 + " " + cause))
    assert len(line) <= 300 and line.startswith("Load model failed: ") and line.endswith(cause)
