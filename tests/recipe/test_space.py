"""The search space: trials are the recipe's passes with one value per key, every key and value
is planned before anything runs (exit 2 naming ``search.space.<key>``)."""

import pytest

from optimizer.errors import RecipeError
from optimizer.recipe.compose import compose
from optimizer.recipe.space import apply, check, runtime

PASSES = {"export": {"type": "onnx_export"}, "fuse": {"type": "fuse"}, "quantize": {"type": "quantize", "mode": "static"}}


def test_a_trial_is_the_recipe_with_its_values():
    assert apply(PASSES, {"quantize.mode": "dynamic"})["quantize"] == {"type": "quantize", "mode": "dynamic"}
    assert apply(PASSES, {"fuse": None})["fuse"] is None and apply(PASSES, {"fuse": True})["fuse"] == {"type": "fuse"}
    assert apply(PASSES, {"fuse": {"ort_level": "all"}})["fuse"] == {"type": "fuse", "ort_level": "all"}
    dropped = apply(PASSES, {"quantize": None, "quantize.mode": "dynamic"})  # an option of a dropped step
    assert dropped["quantize"] is None and PASSES["quantize"]["mode"] == "static"  # the recipe is left as it was
    params = {"quantize.mode": "dynamic", "hardware.execution_mode": "parallel", "hardware.intra_op_threads": 1}
    assert apply(PASSES, params) == apply(PASSES, {"quantize.mode": "dynamic"})  # session options leave the chain
    assert runtime(params) == {"execution_mode": "parallel", "intra_op_threads": 1} and runtime({"fuse": None}) == {}
    from optimizer.config import HardwareConfig  # the entry's own values are no session options of the trial

    entry = HardwareConfig(intra_op_threads=1)
    assert runtime({**params, "hardware.graph_optimization_level": "all"}, entry) == {"execution_mode": "parallel"}


def _cfg(*overrides):
    return compose("int8", list(overrides))


def test_the_space_is_checked_before_anything_runs():
    space = check(_cfg("+search.space={quantize.mode: [static, dynamic], fuse: [true, null], "
                       "hardware.graph_optimization_level: [all, basic]}"))
    assert space == {"quantize.mode": ["static", "dynamic"], "fuse": [True, None],
                     "hardware.graph_optimization_level": ["all", "basic"]}


@pytest.mark.parametrize("override, message", [
    ("+search.space={quantize.bogus: [1]}", "search.space.quantize.bogus: 1 does not plan: passes.quantize.bogus: "
                                            "unknown key"),
    ("+search.space={quantize.mode: []}", "search.space.quantize.mode: give a non-empty list of values to try, got []"),
    ("+search.space={prune.ratio: [0.5]}", "search.space.prune.ratio: the recipe has no step 'prune'; its steps are "
                                           "['export', 'fuse', 'quantize']"),
    ("+search.space={quantize.mode: [fast]}", "search.space.quantize.mode: 'fast' does not plan: passes.quantize.mode"),
    ("search.max_trials=0", "search.max_trials=0: must be at least 1"),
    ("+search.incumbents=[{fuse.level: 3}]", "search.incumbents[0]: {'fuse.level': 3} does not plan: passes.fuse.level: "
                                             "unknown key"),
    ("search.max_minutes=0", "search.max_minutes=0.0: must be positive"),
    ("+search.space={hardware.cores: [4]}", "search.space.hardware.cores: a trial may set only the runtime options"),
    ("+search.space={hardware.execution_mode: [fast]}", "search.space.hardware.execution_mode: 'fast' is not a value "
                                                        "of execution_mode"),
    ("+search.space={hardware.inter_op_threads: [0]}", "search.space.hardware.inter_op_threads: 0 is not a value"),
])
def test_bad_search_spaces_name_the_key(override, message):
    extra = [] if override.startswith("+search.space") else ["+search.space={quantize.mode: [static]}"]
    with pytest.raises(RecipeError) as e:
        check(_cfg(override, *extra))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_the_auto_recipe_fits_an_onnx_source(tmp_path):
    from optimizer.recipe.plan import plan
    from optimizer.recipe.space import fit_source
    from tests.helpers import tiny_onnx

    cfg = compose("auto", [f"model.source={tiny_onnx(tmp_path / 'm.onnx')}"])
    with pytest.raises(RecipeError, match="passes.prune: pass 'prune' takes a torch model"):
        plan(cfg)
    fitted, dropped = fit_source(cfg)
    assert dropped == ["prune"] and fitted.passes["prune"] is None
    assert [s.label for s in plan(fitted)] == ["export", "fuse", "quantize"]  # export shown as skipped
    space = check(fitted)
    assert "prune" not in space and space["quantize.mode"] == ["static", "dynamic"]
    assert all("prune" not in p for p in fitted.search.incumbents) and len(fitted.search.incumbents) == 3
    assert fit_source(compose("auto"))[1] == []  # a torch source keeps every step
    assert fit_source(compose("int8", [f"model.source={tmp_path / 'm.onnx'}"]))[1] == []  # no search: as written


def test_auto_tries_dynamic_int8_kept_within_the_task_bound():
    """recipe=auto's incumbents include dynamic INT8 with accuracy_aware, planned with the recipe's task and its
    max_accuracy_drop as the bound, measured on the whole evaluation split; the space may switch it on or off."""
    from dataclasses import replace

    from optimizer.recipe.plan import plan
    from optimizer.recipe.space import incumbents

    cfg = compose("auto", ["evaluation.task=embedding"])
    assert check(cfg)["quantize.accuracy_aware"] == [False, True]
    aware = [p for p in incumbents(cfg) if p.get("quantize.accuracy_aware")]
    assert aware == [{"prune": None, "quantize.mode": "dynamic", "quantize.accuracy_aware": True}]
    steps = {s.label: s.config for s in plan(replace(cfg, passes=apply(cfg.passes, aware[0])))}
    q = steps["quantize"]
    assert (q.mode.value, q.accuracy_aware, q.task, q.max_score_drop, q.search_samples, q.search_batch_size) == (
        "dynamic", True, "embedding", 1.0, 0, 64)
    assert list(steps) == ["export", "fuse", "quantize"]
