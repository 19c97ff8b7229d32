"""Cost arithmetic, replica sizing and the recipe checks that guard them."""

import pytest

from optimizer.config import ServingConfig
from optimizer.decide.cost import check, cost_per_million, price, replicas, scaling
from optimizer.errors import RecipeError
from optimizer.recipe.compose import compose


def test_cost_per_million():
    # $0.08925/h serving 1000 samples/s: 3.6M samples per hour -> $0.02479 per 1M
    assert cost_per_million(0.08925, 1000.0) == pytest.approx(0.08925 / 3.6)
    assert cost_per_million(3.6, 1.0) == pytest.approx(1e6 / 1000)  # 3600 samples/h at $3.6 -> $1000/1M
    with pytest.raises(ValueError):
        cost_per_million(1.0, 0.0)


def test_replicas_at_target_utilisation():
    assert replicas(700.0, 1000.0, 0.7) == 1  # exactly 70 % of one replica
    assert replicas(701.0, 1000.0, 0.7) == 2
    assert replicas(1.0, 1000.0, 0.7) == 1  # never fewer than one
    assert replicas(5000.0, 1000.0, 0.5) == 10
    with pytest.raises(ValueError):
        replicas(10.0, 1000.0, 0.0)


def test_scaling_recommendation():
    s = scaling(1500.0, 1000.0, 0.7, burst_factor=2.0)
    assert (s["min_replicas"], s["max_replicas"]) == (3, 5)  # 1500/700 -> 3; 3000/700 -> 5
    assert s["replicas"] == 3 and s["capacity_qps"] == pytest.approx(2100.0)
    assert scaling(10.0, 1000.0)["max_replicas"] == 1


def test_price_with_and_without_a_price_or_a_target():
    assert price(None, 1000.0) == {}
    assert price(0.36, 0.0) == {}
    p = price(0.36, 1000.0, ServingConfig(target_qps=1500.0))
    assert p["cost_per_million"] == pytest.approx(0.1)
    assert p["min_replicas"] == 3 and p["cost_per_hour_at_target"] == pytest.approx(3 * 0.36)
    assert "cost_per_million" not in price(None, 1000.0, ServingConfig(target_qps=10.0))


def test_hardware_entries_have_prices_with_source_and_date():
    for hw in ("aws_c7i_large", "aws_c7i_2xlarge", "aws_g5_xlarge", "aws_g6_xlarge"):
        h = compose("int8", [f"hardware={hw}"]).hardware
        assert h.price_per_hour > 0 and h.price_source and h.price_date, hw
        assert (h.gpu is not None) == (h.device.value == "cuda"), hw


@pytest.mark.parametrize("overrides, message", [
    (["serving.target_qps=0"], "serving.target_qps must be positive"),
    (["serving.target_qps=-5"], "serving.target_qps must be positive"),
    (["objective=cost"], "has no price_per_hour, but objective=cost needs one"),
    (["constraints.max_cost_per_million=0.1"], "constraints.max_cost_per_million needs one"),
    (["serving.utilization=1.5"], "serving.utilization"),
])
def test_bad_cost_settings(overrides, message):
    with pytest.raises(RecipeError, match=message):
        check(compose("int8", overrides))


def test_priced_hardware_passes_the_check():
    check(compose("int8", ["objective=cost", "hardware=aws_c7i_large", "serving.target_qps=100"]))
