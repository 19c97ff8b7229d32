"""A day's traffic profile -> the autoscaled schedule, its trigger and saving, the SLA held at every tick."""

import pytest

from optimizer.decide.traffic import (TICK_S, clock, covering, diurnal, for_run, interpolated, manifest_replicas,
                                      profile, recommend, simulate, trigger_share)
from optimizer.recipe.compose import compose
from optimizer.recipe.traffic import DAY_S, read_csv

N = DAY_S // TICK_S


def test_constant_profile_keeps_a_fixed_count():
    r = recommend(lambda t: 700.0, capacity=100.0, utilization=0.7, cold_start_s=30.0)
    assert (r["min_replicas"], r["max_replicas"], r["replicas_95"], r["fixed_replicas"]) == (10, 10, 10, 10)
    assert r["saving"] == 0.0 and r["replica_hours"] == 240.0 and r["trigger"] == 1.0
    assert r["sla_held"] and "warning" not in r and "cost_per_day" not in r
    assert all(row["replicas"] == 10 and row["needed"] == 10 for row in r["schedule"])
    assert len(r["schedule"]) == 24 and r["schedule"][13]["time"] == "13:00"


def test_a_step_is_served_one_cold_start_after_the_autoscaler_sees_it():
    rates = [100.0] * (N // 2) + [400.0] * (N // 2)
    lead = 3  # ceil(38 s / 15 s)
    assert trigger_share(rates, lead) == pytest.approx(0.25)  # 4x within one cold start: scale at 25 %
    sim = simulate(rates, capacity=100.0, trigger=0.25, cold_start_s=38.0)
    half = N // 2
    assert sim["replicas"][half - 1] == 4 and sim["replicas"][half] == 16  # requested as the step comes
    assert sim["ready"][half:half + lead] == [4] * lead and sim["ready"][half + lead] == 16  # ready 45 s later
    assert all(ready * 100.0 >= rate for ready, rate in zip(sim["ready"], rates))  # the SLA at every tick
    with pytest.raises(AssertionError, match="SLA missed at 12:00"):
        simulate(rates, capacity=100.0, trigger=0.7, cold_start_s=38.0)  # 6 replicas cannot take the step


def test_a_ramp_sets_the_trigger_and_warns_past_the_utilisation_target(tmp_path):
    # 100 -> 400 requests/s over 10 minutes from noon: 0.5 requests/s per second; one cold start (45 s on the
    # 15 s grid) from 100 reaches 122.5, so scaling must begin at 100 / 122.5 = 81.6 % of capacity
    rate = interpolated([(0.0, 100.0), (43200.0, 100.0), (43800.0, 400.0), (80000.0, 400.0)])
    calm = recommend(rate, capacity=100.0, utilization=0.7, cold_start_s=38.0, sla_ms=20.0)
    assert calm["trigger"] == pytest.approx(0.816, abs=1e-3) and "warning" not in calm
    assert "by 81 % of capacity (serving.utilization's 70 % target starts it earlier)" in calm["recommendation"]
    hot = recommend(rate, capacity=100.0, utilization=0.9, cold_start_s=38.0, sla_ms=20.0)
    assert hot["trigger_used"] == pytest.approx(0.816, abs=1e-3) and hot["sla_held"]
    assert "ramps faster than a replica can start" in hot["warning"] and "must target 81 %" in hot["warning"]
    assert "the scale-up must begin at 81 % of capacity" in hot["recommendation"]


def test_diurnal_figures_by_hand():
    # 2000 + 1000 cos: 3x from trough to peak; 50 requests/s per replica at 50 % of 100
    r = recommend(diurnal(3000.0, 1000.0, 14.0), capacity=100.0, utilization=0.5, cold_start_s=38.0,
                  price_per_hour=1.0, sla_ms=20.0)
    # 1000 / 50 = 20 at 02:00 exactly; the scale-down window (380 s) still holds the 21 wanted just before
    assert (r["min_replicas"], r["max_replicas"], r["fixed_replicas"]) == (21, 60, 60)
    assert r["peak_time"] == "14:00" and r["profile_trough_rps"] == 1000.0 and r["profile_peak_rps"] == 3000.0
    # 95 % served: E[(cos - a)+] = (sqrt(1 - a²) - a acos a) / π ≤ 0.1 needs a > 0.53: 51 × 50 = 2550 (a = 0.55)
    assert r["replicas_95"] == 51 and covering([2000.0 + 1000.0 * x for x in (1, 0, -1, 0)], 50.0) == 52
    assert r["requests_per_day"] == 2000 * DAY_S
    assert r["fixed_cost_per_day"] == 1440.0 and r["fixed_cost_per_million"] == pytest.approx(1440.0 / 172.8, abs=1e-6)
    assert 0.30 <= r["saving"] < 1 / 3 + 0.01  # the mean is 2/3 of the peak, the autoscaler's lag adds a little
    assert r["cost_per_day"] == pytest.approx(r["replica_hours"]) and r["cost_per_day"] < 0.7 * 1440.0
    assert r["sla_held"] and r["schedule"][14] == {"time": "14:00", "rate": 3000.0, "needed": 60, "replicas": 60}
    assert "51 replicas serve 95 % of the day's traffic within the p99 SLA of 20 ms; 60 cover the peak of " \
           "3000 requests/s at 14:00; with the cold start of 38 s the scale-up must begin by 99 % of capacity" \
           in r["recommendation"]
    assert "costs $" in r["recommendation"] and "for a fixed fleet of 60: 3" in r["recommendation"]


def test_sentence_in_the_seeds_terms_with_an_assumed_cold_start():
    r = recommend(diurnal(300.0, 100.0, 14.0), capacity=200.0, utilization=0.7)
    assert r["cold_start_assumed"] and r["cold_start_s"] == 60.0
    assert r["recommendation"].startswith(
        "2 replicas serve 95 % of the day's traffic at 200 requests/s per replica (no p99 SLA set); a 3rd covers the peak of 300 "
        "requests/s at 14:00; with the cold start of 60 s (assumed: not measured) the scale-up must begin by ")
    assert "replica-hours/day against 72 for a fixed fleet of 3" in r["recommendation"]


def test_csv_profiles_read_seconds_and_clock_times(tmp_path):
    f = tmp_path / "day.csv"
    f.write_text("# requests per second over a day\ntime,requests_per_s\n00:00,100\n43200,300\n18:00:00,200\n")
    assert read_csv(str(f)) == [(0.0, 100.0), (43200.0, 300.0), (64800.0, 200.0)]
    rate = interpolated(read_csv(str(f)))
    assert rate(21600) == pytest.approx(200.0) and rate(75600) == pytest.approx(150.0)  # 21:00, over midnight
    assert clock(52200) == "14:30"
    r = for_run(compose("int8", ["serving.traffic.profile=csv", f"serving.traffic.csv={f}"]), 100.0, 12.5, 20.0)
    assert r["profile"] == "csv" and r["peak_time"] == "12:00" and r["cold_start_s"] == 12.5


def test_no_profile_no_recommendation_and_manifests_follow_the_profile():
    cfg = compose("int8", [])
    assert profile(cfg.serving.traffic) is None and for_run(cfg, 100.0, None, None) == {}
    assert for_run(compose("int8", ["serving.traffic.profile=constant", "serving.traffic.rate=5"]), None, None, None) == {}
    cost = {"cost_per_million": 1.0, "min_replicas": 3, "max_replicas": 6}
    assert manifest_replicas(cost, {}) is cost
    scaled = manifest_replicas(cost, {"profile": "diurnal", "min_replicas": 2, "max_replicas": 9, "trigger_used": 0.7})
    assert (scaled["min_replicas"], scaled["max_replicas"], scaled["cost_per_million"]) == (2, 9, 1.0)
    assert scaled["replicas_from"].startswith("serving.traffic (diurnal)")
