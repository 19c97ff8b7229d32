"""Accuracy-aware static INT8 on a chain of MatMuls with one deliberately fragile layer: plain INT8 misses the
cosine bound, the search keeps the fragile layer (and only it) in float within 2*log2(n)+4 evaluations, an
unreachable bound fails the step in one line naming the best cosine, and bad options are refused at plan time."""

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from optimizer.artifact import Artifact
from optimizer.errors import PassError, RecipeError
from optimizer.passes.quantize_search import mean_cosine, run
from tests.helpers import run_pass

LAYERS, WIDTH, FRAGILE = 8, 32, "layer4"


def chain(path, outlier: float, squash: bool = False) -> Artifact:
    """x -> layer0 -> ... -> layer7 (MatMuls). layer3 writes one channel ``outlier`` times larger than the others,
    which layer4 barely reads: INT8 over that range rounds layer4's real input to nothing. ``squash``: a Tanh
    between layer3 and layer4 reads layer3's outlier-ranged output instead (as a GELU reads a transformer's first
    feed-forward projection)."""
    rng = np.random.default_rng(0)
    weights, nodes, x = [], [], "x"
    for i in range(LAYERS):
        w = rng.normal(0, 1 / math.sqrt(WIDTH), (WIDTH, WIDTH)).astype(np.float32)
        if i == 3:
            w[:, 0] *= outlier
        if i == 4:
            w[0, :] = 1e-6
        weights.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [x, f"w{i}"], [f"h{i}"], name=f"layer{i}"))
        x = f"h{i}"
        if squash and i == 3:
            nodes.append(helper.make_node("Tanh", [x], ["t3"], name="squash"))
            x = "t3"
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", WIDTH])],
                              [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["n", WIDTH])], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return Artifact(path, "onnx", meta={"precision": "fp32"})


@pytest.fixture(scope="module")
def data():
    from optimizer.sources.data import Splits

    rng = np.random.default_rng(1)
    split = [{"x": rng.normal(size=(n, WIDTH)).astype(np.float32)} for n in (8, 64, 64)]
    return Splits(split[0], None, split[1], split[2], None)


@pytest.fixture(scope="module")
def pairs():
    """Evaluation samples in near-duplicate pairs, so each one's nearest neighbour is clear (embedding-like)."""
    from optimizer.sources.data import Splits

    rng = np.random.default_rng(2)
    base = rng.normal(size=(32, WIDTH)).astype(np.float32)
    evaluation = np.concatenate([base, base + rng.normal(0, 0.05, base.shape).astype(np.float32)])
    return Splits({"x": base[:8]}, None, {"x": rng.normal(size=(64, WIDTH)).astype(np.float32)}, {"x": evaluation},
                  None)


@pytest.fixture(scope="module")
def fragile(tmp_path_factory):
    return chain(tmp_path_factory.mktemp("fragile") / "chain.onnx", outlier=3000.0)


def cosine(art, reference, data) -> float:
    return mean_cosine(run(str(art.path), data.evaluation), run(str(reference.path), data.evaluation))


def test_the_search_keeps_the_fragile_layer_in_float_and_meets_the_bound(fragile, data, tmp_path):
    (tmp_path / "plain").mkdir()
    plain = run_pass("quantize", fragile, data, tmp_path / "plain", calibration_samples=64)
    assert plain.meta["quantized_nodes"] == {"MatMul": LAYERS}
    assert cosine(plain, fragile, data) < 0.9  # plain static INT8 misses the bound
    art = run_pass("quantize", fragile, data, tmp_path, calibration_samples=64, accuracy_aware=True,
                   target_cosine=0.99)
    record = art.meta["accuracy_aware"]
    assert record["kept_fp32"] == [FRAGILE]
    assert record["quantized_nodes"] == LAYERS and record["evaluations"] <= 2 * math.log2(LAYERS) + 4
    assert record["cosine_before"] < 0.9 <= 0.99 <= record["cosine_after"]
    assert record["bound"] == {"mean_cosine": 0.99} and record["samples"] == 64
    assert cosine(art, fragile, data) >= 0.99  # the written model is the one measured
    assert art.meta["quantized_nodes"] == {"MatMul": LAYERS - 1} and art.meta["precision"] == "int8"
    assert art.meta["nodes_excluded"] == 1
    assert sorted(p.name for p in (tmp_path / "quantize").iterdir()) == ["model.onnx"]  # tried models removed


def test_a_kept_node_reads_and_writes_float_where_no_other_quantized_node_reads_its_output(data, tmp_path):
    src = chain(tmp_path / "squash.onnx", outlier=3000.0, squash=True)
    art = run_pass("quantize", src, data, tmp_path, calibration_samples=64, op_types=["MatMul"], accuracy_aware=True,
                   target_cosine=0.99)
    record = art.meta["accuracy_aware"]
    assert record["cosine_before"] < 0.9 and record["cosine_after"] >= 0.99
    assert record["kept_fp32"] == ["layer3"]  # its output's pair, read only by the Tanh, was the fragile one
    graph = onnx.load(str(art.path)).graph
    assert [n.input[0] for n in graph.node if n.op_type == "Tanh"] == ["h3"]  # no pair left on the kept output
    assert not [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "h3"]
    assert [list(n.input) for n in graph.node if n.name == "layer3"] == [["h2", "w3"]]  # float input and weight


def test_a_bound_plain_int8_meets_keeps_nothing_in_float(data, tmp_path):
    benign = chain(tmp_path / "benign.onnx", outlier=1.0)
    art = run_pass("quantize", benign, data, tmp_path, calibration_samples=64, accuracy_aware=True,
                   target_cosine=0.99)
    record = art.meta["accuracy_aware"]
    assert record["kept_fp32"] == [] and record["evaluations"] == 1
    assert record["cosine_before"] == record["cosine_after"] >= 0.99
    assert art.meta["quantized_nodes"] == {"MatMul": LAYERS}


def test_an_unreachable_bound_fails_the_step_with_the_best_cosine(fragile, data, tmp_path):
    with pytest.raises(PassError) as e:
        run_pass("quantize", fragile, data, tmp_path, calibration_samples=64, accuracy_aware=True, target_cosine=1.0)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith("step 'quantize': accuracy_aware: no quantization meets mean cosine >= 1.0 on 64 ")
    best = float(message.split("the best reached ")[1].split(",")[0])
    assert 0.99 <= best < 1.0 and f"of {LAYERS} quantized nodes in float" in message
    assert sorted(p.name for p in (tmp_path / "quantize").iterdir()) == ["model.onnx"]  # tried models removed


@pytest.mark.parametrize("params, fault", [
    ({"target_cosine": 1.5}, "target_cosine must be within (0, 1], got 1.5"),
    ({"target_cosine": 0.0}, "target_cosine must be within (0, 1], got 0.0"),
    ({"search_samples": -1}, "search_samples and search_batch_size must be 0 (see their defaults) or more, got -1, 0"),
    ({"accuracy_aware": True, "mode": "fp16"}, "accuracy_aware searches static and dynamic int8; mode is fp16"),
    ({"max_score_drop": -1.0}, "max_score_drop must be non-negative, got -1.0"),
])
def test_bad_options_are_refused(params, fault):
    from optimizer.passes.quantize import QuantizeConfig
    from optimizer.recipe.plan import typed

    with pytest.raises(RecipeError) as e:
        typed(QuantizeConfig, params, "passes.int8")
    assert str(e.value) == f"passes.int8: {fault}"


def test_the_bound_defaults_to_the_recipes_min_cosine_at_plan_time():
    from optimizer.recipe.compose import compose
    from optimizer.recipe.plan import plan

    def quantize_step(*overrides):
        return {s.label: s for s in plan(compose("int8", overrides))}["quantize"].config

    aware = "+passes.quantize.accuracy_aware=true"
    assert quantize_step(aware, "constraints.min_cosine=0.995").target_cosine == 0.995
    assert quantize_step(aware, "+passes.quantize.target_cosine=0.9").target_cosine == 0.9
    assert quantize_step("constraints.min_cosine=0.995").target_cosine is None  # plain INT8: its cache key unchanged
    with pytest.raises(RecipeError, match=r"^passes.quantize: target_cosine must be within \(0, 1\], got 2.0$"):
        quantize_step(aware, "+passes.quantize.target_cosine=2")


def test_dynamic_search_keeps_the_fragile_layer_in_float(fragile, pairs, tmp_path):
    """Dynamic INT8 quantizes each call's input over its own range: layer4's input, dominated by layer3's outlier
    channel, rounds to nothing. The proxy (each node alone, simulated on float activations) ranks layer4 first."""
    (tmp_path / "plain").mkdir()
    plain = run_pass("quantize", fragile, pairs, tmp_path / "plain", mode="dynamic")
    assert cosine(plain, fragile, pairs) < 0.9
    art = run_pass("quantize", fragile, pairs, tmp_path, mode="dynamic", accuracy_aware=True, target_cosine=0.99,
                   task="embedding", max_score_drop=1.0, search_samples=0)
    record = art.meta["accuracy_aware"]
    assert record["kept_fp32"] == [FRAGILE] and list(record["scores"]) == [FRAGILE]
    assert record["quantized_nodes"] == LAYERS and record["evaluations"] <= 2 * math.log2(LAYERS) + 4
    assert record["bound"] == {"mean_cosine": 0.99, "nn_agreement_drop": 1.0} and record["samples"] == 64
    assert record["batch_size"] == 16  # a pass run on its own; at plan time: evaluation.batch_size
    assert record["before"]["nn_agreement_drop"] > 1.0 and record["after"]["nn_agreement_drop"] <= 1.0
    assert record["cosine_before"] < 0.9 <= 0.99 <= record["cosine_after"]
    assert cosine(art, fragile, pairs) >= 0.99 and art.meta["precision"] == "int8-dynamic"
    graph = onnx.load(str(art.path)).graph
    assert [n.op_type for n in graph.node if n.name == FRAGILE] == ["MatMul"]  # kept in float, by its own name
    assert sum(n.op_type == "MatMulInteger" for n in graph.node) == LAYERS - 1
    assert sorted(p.name for p in (tmp_path / "quantize").iterdir()) == ["model.onnx"]  # tried models removed


def test_the_task_metric_bounds_the_search_beside_the_cosine(fragile, data, tmp_path):
    """A cosine bound plain dynamic INT8 meets, but nearest neighbours moved: the nn_agreement bound still
    searches; an unreachable one fails naming both figures."""
    from optimizer.passes.quantize_bound import Bound
    from optimizer.passes.quantize_measure import run as outputs

    reference = outputs(str(fragile.path), data.evaluation)
    bound = Bound(0.5, "embedding", 1.0, reference)
    same = bound.measure(reference)
    assert same == {"mean_cosine": pytest.approx(1.0), "nn_agreement_drop": 0.0} and bound.meets(same)
    noisy = {k: v + np.random.default_rng(0).normal(0, 0.3 * v.std(), v.shape) for k, v in reference.items()}
    figures = bound.measure(noisy)
    assert figures["nn_agreement_drop"] > 1.0 and figures["mean_cosine"] > 0.5 and not bound.meets(figures)
    with pytest.raises(PassError) as e:
        run_pass("quantize", fragile, data, tmp_path, mode="dynamic", accuracy_aware=True, target_cosine=1.0,
                 task="embedding", max_score_drop=0.0, search_samples=0)
    assert "\n" not in str(e.value)
    assert "no quantization meets mean cosine >= 1.0 and nn_agreement drop <= 0.0 on 64 evaluation samples" in str(
        e.value)


def test_the_task_bound_comes_from_the_recipe_at_plan_time():
    from optimizer.recipe.compose import compose
    from optimizer.recipe.plan import plan

    def quantize_step(*overrides):
        return {s.label: s for s in plan(compose("dynamic_int8", overrides))}["quantize"].config

    step = quantize_step("+passes.quantize.accuracy_aware=true", "constraints.max_accuracy_drop=0.5",
                         "evaluation.task=embedding", "evaluation.batch_size=32", "+passes.quantize.search_samples=0",
                         "evaluation.max_samples=100")
    assert (step.task, step.max_score_drop, step.mode.value) == ("embedding", 0.5, "dynamic")
    assert (step.search_batch_size, step.search_samples) == (32, 100)  # measured as the run measures its variants
    plain = quantize_step("constraints.max_accuracy_drop=0.5")
    assert (plain.task, plain.max_score_drop, plain.search_batch_size) == ("", None, 0)  # plain INT8: cache key kept
