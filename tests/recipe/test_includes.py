"""Files a recipe includes through ``defaults:`` are checked like the recipe itself, before Hydra reads them."""

import pytest

from optimizer.errors import RecipeError
from optimizer.recipe.files import check_command_line
from tests.helpers import ROOT

BUILTIN = ROOT / "recipes"


def recipe(config_dir, text, name="mine"):
    (config_dir / "recipe").mkdir(parents=True, exist_ok=True)
    (config_dir / "recipe" / f"{name}.yaml").write_text(text)


def check(config_dir, name="mine"):
    check_command_line(["--config-dir", str(config_dir), f"recipe={name}"], BUILTIN)


@pytest.mark.parametrize("included, why", [
    (b"\x7fELF\x00\x01", "binary data, not YAML"),
    (b"a: 1\na: 2\n", "duplicate key 'a'"),
    (b"- a list\n", "the top level must be a mapping"),
])
def test_a_bad_included_file_is_named(tmp_path, included, why):
    recipe(tmp_path, "# @package _global_\ndefaults:\n  - base\n  - _self_\ndescription: mine\n")
    (tmp_path / "recipe" / "base.yaml").write_bytes(included)
    with pytest.raises(RecipeError, match=f"recipe file {tmp_path / 'recipe' / 'base.yaml'}.*{why}"):
        check(tmp_path)


def test_a_recipe_that_includes_itself(tmp_path):
    recipe(tmp_path, "defaults:\n  - other\n")
    recipe(tmp_path, "defaults:\n  - mine\n", "other")
    with pytest.raises(RecipeError, match=r"its defaults include it again \(mine.yaml -> other.yaml\)"):
        check(tmp_path)


@pytest.mark.parametrize("entry", ["/../../../tmp/evil", "{/../../tmp: evil}", "../outside"])
def test_an_include_that_climbs_out_of_the_config_directory(tmp_path, entry):
    recipe(tmp_path, f"defaults:\n  - {entry}\n")
    with pytest.raises(RecipeError, match="climbs out of the config directory"):
        check(tmp_path)


def test_the_shipped_recipes_and_a_good_include_pass(tmp_path):
    recipe(tmp_path, "# @package _global_\ndefaults:\n  - /recipe/int8\n  - override /hardware: aws_c7i_large\n"
                     "  - _self_\ndescription: mine\n")
    check(tmp_path)
    for path in (BUILTIN / "recipe").glob("*.yaml"):
        check_command_line([f"recipe={path.stem}"], BUILTIN)
