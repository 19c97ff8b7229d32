"""Chargeback: the run's cost divided among the tenants by share × tier weight; the rows sum to the total, the
files say what was divided (replica-hours without a price)."""

import csv
import io

import pytest

from optimizer.record import chargeback
from optimizer.recipe.compose import compose

TENANTS = ("+serving.tenants=[{name:acme,tier:premium,share:0.5},{name:globex,tier:standard,share:0.3},"
           "{name:initech,tier:batch,share:0.2}]")
AT_TARGET = {"cost_per_million": 0.0417, "target_qps": 900.0, "min_replicas": 3, "max_replicas": 6,
             "cost_per_hour_at_target": 0.3213, "capacity_source": "smoke test"}


def serving(*overrides):
    return compose("int8", [TENANTS, *overrides]).serving


def test_tier_weights_charge_premium_for_its_headroom():
    w = chargeback.weights(serving())
    assert w == pytest.approx({"premium": 2.0, "standard": 1 / 0.7, "batch": 1.0})  # 1 / (0.5, 0.7, 1.0)
    recipe_tiers = serving("serving.tiers=[{name:gold,p99_ms:10},{name:bulk,p99_ms:null}]",
                           "serving.utilization=0.8", "serving.tenants=[{name:a,tier:gold,share:1}]")
    assert chargeback.weights(recipe_tiers) == pytest.approx({"gold": 1 / (0.8 * 5 / 7), "bulk": 1.0})


def test_rows_sum_to_the_total_and_follow_share_times_weight():
    table = chargeback.allocate(serving(), AT_TARGET)
    assert table["unit"] == "$/hour" and table["amount"] == 0.3213
    amounts = {r["tenant"]: r["amount"] for r in table["rows"]}
    assert sum(amounts.values()) == pytest.approx(0.3213, abs=1e-12)
    mass = 0.5 * 2 + 0.3 / 0.7 + 0.2 * 1
    assert amounts["acme"] == pytest.approx(0.3213 * 1.0 / mass, abs=1e-6)
    assert amounts["initech"] == pytest.approx(0.3213 * 0.2 / mass, abs=1e-6)
    # premium pays more per request than batch: twice, its weight over batch's
    per = {r["tenant"]: r["per_million"] for r in table["rows"]}
    assert per["acme"] / per["initech"] == pytest.approx(2.0, rel=1e-3)
    assert per["acme"] == pytest.approx(amounts["acme"] / (0.5 * 900 * 3600) * 1e6, abs=1e-6)


@pytest.mark.parametrize("price", [0.1, 1.0, 7.77, 123.456789])
def test_the_written_amounts_sum_to_the_total_exactly(price):
    table = chargeback.allocate(serving(), {**AT_TARGET, "cost_per_hour_at_target": price})
    assert round(sum(r["amount"] for r in table["rows"]), 6) == round(price, 6)


def test_the_csv_holds_every_tenant_and_the_total(tmp_path):
    cfg = compose("int8", [TENANTS])
    written = chargeback.write(cfg, {"triton": {"cost": AT_TARGET}}, tmp_path)
    assert written == {"chargeback": "chargeback.md", "chargeback_csv": "chargeback.csv"}
    rows = list(csv.DictReader(io.StringIO((tmp_path / "chargeback.csv").read_text())))
    assert [r["tenant"] for r in rows] == ["acme", "globex", "initech", "total"]
    assert [r["tier"] for r in rows[:3]] == ["premium", "standard", "batch"]
    assert {r["unit"] for r in rows} == {"$/hour"} and rows[0]["weight"] == "2" and rows[2]["weight"] == "1"
    assert sum(float(r["amount"]) for r in rows[:3]) == pytest.approx(float(rows[3]["amount"]), abs=1e-9)
    assert rows[3]["amount"] == "0.321300"
    md = (tmp_path / "chargeback.md").read_text()
    assert "0.3213 $/hour" in md and "| acme | premium | 0.5 | 2 |" in md
    assert chargeback.metrics(cfg, {"triton": {"cost": AT_TARGET}}) == {
        f"chargeback.{r['tenant']}": float(r["amount"]) for r in rows[:3]}


def test_without_a_price_replica_hours_are_divided_and_the_files_say_so(tmp_path):
    cfg = compose("int8", [TENANTS])
    chargeback.write(cfg, {"triton": {"cost": {"target_qps": 900.0, "min_replicas": 3, "max_replicas": 6}}}, tmp_path)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "chargeback.csv").read_text())))
    assert {r["unit"] for r in rows} == {"replica-hours per hour"} and rows[-1]["amount"] == "3.000000"
    assert "no hardware.price_per_hour: replica-hours are divided instead" in (tmp_path / "chargeback.md").read_text()
    one = chargeback.allocate(cfg.serving, {})  # no sizing at all: one replica
    assert one["amount"] == 1.0 and "no serving.target_qps" in one["basis"]


def test_a_price_without_a_target_divides_the_cost_per_million():
    table = chargeback.allocate(serving(), {"cost_per_million": 0.05})
    assert table["unit"] == "$ per million requests"
    assert sum(r["amount"] for r in table["rows"]) == pytest.approx(0.05, abs=1e-9)
    assert all("per_million" not in r for r in table["rows"])


def test_no_tenants_writes_nothing(tmp_path):
    cfg = compose("int8")
    assert chargeback.write(cfg, {"triton": {"cost": AT_TARGET}}, tmp_path) == {}
    assert list(tmp_path.iterdir()) == [] and chargeback.metrics(cfg, {}) == {}
