"""A hostile user, continued: models written outside their cache entry, code named where data or a model is
expected, names that would escape the run directory."""

import json
import sys
from pathlib import Path

import pytest

from optimizer.artifact import Artifact
from optimizer.cache import Cache
from optimizer.errors import RecipeError
from tests.helpers import FAST, assert_recipe_error, run_cli


def test_put_refuses_a_model_outside_its_entry(tmp_path):
    outside = tmp_path / "elsewhere.onnx"
    outside.write_bytes(b"model")
    cache = Cache(tmp_path / "cache")
    with pytest.raises(Exception, match="not written inside its cache entry"):
        cache.put("k", lambda d: Artifact(path=outside, format="onnx"))
    assert list((tmp_path / "cache").iterdir()) == []


# --- no code from data -----------------------------------------------------------------------------------

def test_os_system_as_model_source_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    code, out, summary = run_cli(["model.source=os:system", f"+model.kwargs.command='touch {marker}'", *FAST],
                                 tmp_path / "cache", tmp_path / "run")
    assert_recipe_error(code, out, summary, "model.source", "factory rule", "'os'")
    assert not marker.exists()


def test_os_system_as_data_source_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    code, out, summary = run_cli(["data.source=os:system", f"+data.kwargs.command='touch {marker}'", *FAST],
                                 tmp_path / "cache", tmp_path / "run")
    assert_recipe_error(code, out, summary, "data.source", "factory rule")
    assert not marker.exists()


@pytest.mark.parametrize("key,value", [("model.source", "builtins:exec"), ("evaluation.task", "subprocess:getoutput"),
                                       ("passes.distill.student", "shutil:rmtree")])
def test_standard_library_factories_are_refused(key, value, tmp_path):
    recipe = "recipe=distill_int8" if key.startswith("passes") else "recipe=int8"
    code, out, summary = run_cli([recipe, f"{key}={value}", *FAST], tmp_path / "cache", tmp_path / "run")
    assert_recipe_error(code, out, summary, key, "factory rule")


def test_allow_and_deny_lists(tmp_path):
    code, out, summary = run_cli(["model.source=tests.factories:tiny_cnn", "model.allow_factories=[mypkg.*]", *FAST],
                                 tmp_path / "cache", tmp_path / "a")
    assert_recipe_error(code, out, summary, "model.source", "model.allow_factories")
    code, out, summary = run_cli(["data.source=tests.factories:small_digits", "model.deny_factories=[tests.*]", *FAST],
                                 tmp_path / "cache", tmp_path / "b")
    assert_recipe_error(code, out, summary, "data.source", "model.deny_factories")


def test_factory_rule_judges_the_name_before_importing():
    from optimizer.factory import Rule, check, resolve

    assert check("tests.factories:tiny_cnn", "model.source") == ("tests.factories", "tiny_cnn")
    assert check("optimizer.sources.builtin:digits_resnet", "model.source", Rule(allow=("mypkg.*",)))  # built-in
    for spec in ("os:system", "os.path:join", "builtins:eval", "__main__:main", "importlib:import_module"):
        with pytest.raises(RecipeError, match="factory rule"):
            check(spec, "model.source")
    with pytest.raises(RecipeError, match="dotted Python names"):
        check("tests.factories:tiny_cnn.__class__", "model.source")
    assert "never_imported_pkg" not in sys.modules
    with pytest.raises(RecipeError, match="allow_factories"):
        resolve("never_imported_pkg.mod:fn", "model.source", Rule(allow=("mypkg.*",)))
    assert "never_imported_pkg" not in sys.modules


def test_pt2_source_needs_trust_pickle(tmp_path):
    program = tmp_path / "model.pt2"
    program.write_bytes(b"not even a zip")
    code, out, summary = run_cli([f"model.source={program}", "passes.export=null", *FAST], tmp_path / "cache",
                                 tmp_path / "run")
    assert_recipe_error(code, out, summary, "model.source", "unpickles", "model.trust_pickle=true")


# --- names that become paths ------------------------------------------------------------------------------

@pytest.mark.parametrize("label", ["../../escaped_step", "/abs", "a/b", ".."])
def test_step_labels_that_escape_the_run_directory(label, tmp_path):
    (tmp_path / "conf" / "recipe").mkdir(parents=True)
    (tmp_path / "conf" / "recipe" / "evil.yaml").write_text(
        f"# @package _global_\npasses:\n  {json.dumps(label)}:\n    type: onnx_export\n")
    run = tmp_path / "deep" / "er" / "run"
    code, out, summary = run_cli(["--config-dir", str(tmp_path / "conf"), "recipe=evil", *FAST], tmp_path / "cache", run)
    assert_recipe_error(code, out, summary, f"passes: step label {label!r}", "no '/'")
    written = [p for p in tmp_path.rglob("*") if p.suffix in (".log", ".txt") and run not in p.parents]
    assert written == [] and not Path("/abs.log").exists()


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden"])
def test_model_name_must_be_one_path_component(name, tmp_path):
    code, out, summary = run_cli([f"model.name='{name}'", *FAST], tmp_path / "cache", tmp_path / "run")
    assert_recipe_error(code, out, summary, "model.name")


@pytest.mark.parametrize("source, name", [
    ("builtin", "digits_resnet"), ("builtin:vit_digits", "vit_digits"), ("tests.factories:tiny_cnn", "tiny_cnn"),
    ("hf:models/bert-tiny/", "bert-tiny"), ("exports/model v2.onnx", "model_v2"), ("../up/..weird.pt2", "weird")])
def test_a_model_without_a_name_is_named_after_its_source(source, name):
    """A user's model is never emitted or logged as the built-in 'digits_resnet': no model.name names it after
    the factory's function, the directory or the file, made safe as one path component."""
    from optimizer.files import check_name
    from optimizer.recipe.guards import default_model_name

    assert default_model_name(source) == name
    check_name(name, "model.name")  # always a valid Triton model directory name


def test_the_current_directory_is_named_after_the_nearest_telling_directory(tmp_path, monkeypatch):
    from optimizer.recipe.guards import default_model_name

    (tmp_path / "sentiment" / "model").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "sentiment" / "model")
    assert default_model_name("hf:.") == "sentiment" and default_model_name("hf:") == "sentiment"


def test_explain_shows_the_name_a_factory_model_gets():
    from optimizer.recipe.discover import explain_text

    text = explain_text("baseline", ["model.source=tests.factories:tiny_cnn"])
    assert "model tests.factories:tiny_cnn (tiny_cnn)" in text
    assert "(digits_resnet)" in explain_text("baseline", [])
    assert "(mine)" in explain_text("baseline", ["model.source=tests.factories:tiny_cnn", "model.name=mine"])
