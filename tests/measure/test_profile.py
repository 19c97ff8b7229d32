"""The time breakdown: on a known graph the heavy MatMul takes most of a call, shares are of the profiled calls'
wall time and add up to at most all of it; the hints read the breakdown with the variant's metadata."""

import numpy as np

from optimizer.artifact import Artifact
from optimizer.config import HardwareConfig
from optimizer.measure.profile import hints, profile


def _graph(path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).normal(size=(512, 512)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="big_matmul"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("ReduceSum", ["r"], ["y"], name="sum", keepdims=1, axes=[1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 512])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
                              [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)]), str(path))
    return path


def test_the_heavy_node_takes_most_of_a_call(tmp_path):
    art = Artifact(path=_graph(tmp_path / "g.onnx"), format="onnx", meta={"precision": "fp32"})
    x = {"x": np.random.default_rng(1).normal(size=(64, 512)).astype(np.float32)}
    p = profile(art, HardwareConfig(intra_op_threads=1), x, 64)
    assert p["batch_size"] == 64 and p["runs"] == 20
    assert p["top_nodes"][0]["name"] == "big_matmul" and p["top_nodes"][0]["op_type"] == "MatMul"
    assert set(p["op_types"]) == {"MatMul", "Relu", "ReduceSum"} and next(iter(p["op_types"])) == "MatMul"
    assert abs(sum(p["op_types"].values()) - p["covered"]) < 0.01 and 0.3 < p["covered"] <= 1.0
    assert p["op_types"]["MatMul"] > p["op_types"]["Relu"]
    assert p["hints"] == [] or p["hints"][0].startswith("MatMul dominates")


def test_hints():
    def rec(types):
        return {"op_types": dict(sorted(types.items(), key=lambda kv: -kv[1]))}

    unfused = hints(rec({"MatMul": 0.4, "Softmax": 0.2, "Add": 0.1}), {}, "onnx")
    assert unfused[0].startswith("unfused attention: Softmax between MatMuls and no Attention node")
    assert hints(rec({"Attention": 0.6, "MatMul": 0.2, "Softmax": 0.01}), {}, "onnx") == [
        "Attention dominates (60% of the time): it is where any further speed-up must come from"]
    qdq = hints(rec({"QLinearConv": 0.5, "QuantizeLinear": 0.1, "DequantizeLinear": 0.1}), {}, "onnx")
    assert qdq[0].startswith("Q/DQ nodes take 20% of the time")
    mixed = rec({"QLinearMatMul": 0.3, "Conv": 0.45})
    island = hints(mixed, {"precision": "int8", "quantized_nodes": {"MatMul": 4}}, "onnx")
    assert island == ["float island: Conv takes 45% of the time in float inside a quantized graph; add it to "
                      "passes.quantize.op_types"]
    assert hints(mixed, {"precision": "int8-dynamic", "quantized_nodes": {"MatMul": 4}}, "onnx") == []  # on purpose
    assert hints(rec({"aten::addmm": 0.9}), {}, "torch") == [] and hints(None, {}, "onnx") == []
