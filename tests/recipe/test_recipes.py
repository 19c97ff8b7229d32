"""Recipes are validated before any model loads; bad input gives one clear line and exit 2."""

import pytest

from optimizer.errors import RecipeError
from optimizer.recipe.plan import plan
from optimizer.recipe.compose import available, compose


@pytest.mark.parametrize("recipe", ["baseline", "int8", "dynamic_int8", "fp16"])
def test_every_recipe_plans(recipe):
    steps = plan(compose(recipe))
    assert [s.label for s in steps][0] == "export"
    assert steps[0].spec.takes == "torch" and steps[-1].spec.makes == "onnx"


def test_recipes_listed():
    assert {"baseline", "int8", "dynamic_int8", "fp16"} <= set(available())


def test_override_reaches_the_pass_config():
    steps = plan(compose("int8", ["passes.quantize.per_channel=false", "passes.quantize.calibration_method=entropy"]))
    q = steps[-1].config
    assert q.per_channel is False and q.calibration_method.value == "entropy" and q.calibration_samples == 256


def test_step_removed_with_null():
    assert [s.label for s in plan(compose("int8", ["passes.fuse=null"]))] == ["export", "quantize"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["+passes.quantize.calibraton_samples=8"], "passes.quantize.calibraton_samples: unknown key"),
        (["passes.quantize.mode=int4"], "passes.quantize.mode: Invalid value 'int4'"),
        (["passes.quantize.calibration_samples=0"], "passes.quantize: calibration_samples must be at least 1"),
        (["passes.export.type=nope"], "passes.export.type: unknown pass 'nope'"),
        (["~passes.export"], "passes.fuse: pass 'fuse' takes a onnx model but model.source gives torch"),
        (["benchmark.batch_sizes=[0,8]"], "benchmark.batch_sizes: every batch size must be a positive integer"),
        (["model.source=/nonexistent/model.onnx"], "model.source '/nonexistent/model.onnx': no such file"),
    ],
)
def test_plan_rejects(overrides, message):
    with pytest.raises(RecipeError) as err:
        plan(compose("int8", overrides))
    assert str(err.value).startswith(message)
