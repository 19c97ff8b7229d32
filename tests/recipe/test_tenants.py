"""Bad ``serving.tenants`` refused at plan time with one line naming the key (exit 2 through the command line):
shares not summing to 1 or outside (0, 1], unknown tiers, duplicate or non-DNS names, negative quotas."""

import pytest

from optimizer.errors import RecipeError
from optimizer.recipe.compose import compose
from optimizer.recipe.plan import plan
from optimizer.recipe.tenants import tiers


def test_without_recipe_tiers_tenants_name_premium_standard_or_batch():
    assert tiers(compose("int8").serving) == [("premium", True), ("standard", True), ("batch", False)]
    plan(compose("int8", ["+serving.tenants=[{name:a,tier:premium,share:0.25},{name:b-2,tier:batch,share:0.75}]"]))


@pytest.mark.parametrize("tenants_, message", [
    ("[{name:a,tier:premium,share:0.5},{name:b,tier:batch,share:0.4}]", "serving.tenants: the shares must sum to 1"),
    ("[{name:a,tier:premium,share:0},{name:b,tier:batch,share:1}]", "serving.tenants[0].share must be in (0, 1]"),
    ("[{name:a,tier:premium,share:1.5},{name:b,tier:batch,share:-0.5}]", "serving.tenants[0].share must be in (0, 1]"),
    ("[{name:a,tier:gold,share:1}]", "serving.tenants[0].tier 'gold' is not one of the default tiers"),
    ("[{name:a,tier:premium,share:0.5},{name:a,tier:batch,share:0.5}]", "serving.tenants[1].name 'a': duplicate"),
    ("[{name:Acme_Corp,tier:premium,share:1}]", "serving.tenants[0].name 'Acme_Corp' is not a DNS label"),
    ("[{name:default,tier:premium,share:1}]", "serving.tenants[0].name 'default' is a namespace Kubernetes keeps"),
    ("[{name:a,tier:premium,share:1,quota:{memory_mb:-1}}]", "serving.tenants[0].quota.memory_mb must be ≥ 0"),
])
def test_bad_tenants_are_refused_at_plan_time_naming_the_key(tenants_, message):
    with pytest.raises(RecipeError) as e:
        plan(compose("int8", [f"+serving.tenants={tenants_}"]))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_an_unknown_tier_among_the_recipes_tiers_names_them():
    with pytest.raises(RecipeError) as e:
        plan(compose("int8", ["serving.tiers=[{name:gold,p99_ms:10}]", "+serving.tenants=[{name:a,tier:premium,share:1}]"]))
    assert str(e.value) == "serving.tenants[0].tier 'premium' is not one of serving.tiers: gold"


def test_bad_tenants_exit_2_through_the_command_line(cache_dir, tmp_path):
    from optimizer.errors import EXIT_RECIPE
    from tests.helpers import run_cli

    code, out, _ = run_cli(["recipe=int8", "+serving.tenants=[{name:a,tier:premium,share:0.7}]"], cache_dir, tmp_path)
    assert code == EXIT_RECIPE == 2 and "serving.tenants: the shares must sum to 1 (within 1e-6), got 0.7" in out, out
    assert "Traceback" not in out
