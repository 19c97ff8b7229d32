"""What the user gave is never removed or overwritten by the run directory's clean-up."""

from types import SimpleNamespace

import pytest

from optimizer.errors import RecipeError
from optimizer.record import rundir


def recipe(baseline="", model="builtin", data="digits"):
    return SimpleNamespace(gates=SimpleNamespace(baseline=baseline), model=SimpleNamespace(source=model),
                           data=SimpleNamespace(source=data))


def test_a_baseline_that_this_run_would_overwrite_is_refused(tmp_path):
    (tmp_path / "summary.json").write_text('{"variants": []}')
    inputs = rundir.user_inputs(recipe(baseline=str(tmp_path / "summary.json")))
    with pytest.raises(RecipeError, match=r"gates.baseline '.*summary.json' is a file this run writes \(summary.json "
                                          r"in the run directory\): copy it out"):
        rundir.check_inputs(tmp_path, inputs, own_repository=True)
    assert (tmp_path / "summary.json").read_text() == '{"variants": []}'


def test_a_model_inside_the_runs_own_repository_is_refused(tmp_path):
    model = tmp_path / "model_repository" / "m" / "1" / "model.onnx"
    model.parent.mkdir(parents=True)
    model.write_bytes(b"onnx")
    inputs = rundir.user_inputs(recipe(model=str(model)))
    with pytest.raises(RecipeError, match="model.source .* lies in the run directory's model_repository"):
        rundir.check_inputs(tmp_path, inputs, own_repository=True)
    rundir.check_inputs(tmp_path, inputs, own_repository=False)  # a repository the user named is left alone


def test_inputs_the_clean_up_would_touch_are_kept(tmp_path):
    data = tmp_path / "quantize.log"  # a step's log name, given as data
    data.write_text("text")
    (tmp_path / "report.md").write_text("old report")
    inputs = rundir.user_inputs(recipe(data=f"text:{data}", model="tests.factories:tiny_cnn"))
    assert inputs == {"data.source": data.resolve()}  # a factory is no path
    rundir.check_inputs(tmp_path, inputs, own_repository=True)
    removed = rundir.clean(tmp_path, ["quantize"], own_repository=True, keep=inputs.values())
    assert removed == ["report.md"] and data.read_text() == "text"


def test_a_symlink_loop_is_left_to_the_sources_check(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    assert rundir.user_inputs(recipe(model=f"hf:{loop}")) == {}
