"""Tuning rules on synthetic latency curves: knee, SLA edges, preferred ≤ max, instances, queue delay."""

import pytest

from optimizer.triton.tune import (default_level, knee, max_batch, queue_delay_us, queue_policy, served, sweep_sizes,
                                   tier_policies, tune, tune_curve, worst_case_ms)


def curve(per_call_ms, p99_factor=1.5):
    """Points for batch sizes 1..64 with p50 = per_call_ms(b) and p99 = p99_factor × p50."""
    pts = []
    for b in sweep_sizes(64):
        p50 = per_call_ms(b)
        pts.append({"batch_size": b, "p50_ms": p50, "p99_ms": p50 * p99_factor, "throughput": b * 1000 / p50,
                    "calls": 100})
    return pts


# fixed 2 ms per call + 0.1 ms per sample: throughput climbs, then flattens past ~32
AMORTIZED = curve(lambda b: 2.0 + 0.1 * b)


def test_sweep_sizes():
    assert sweep_sizes(64) == [1, 2, 4, 8, 16, 32, 64]
    assert sweep_sizes(48) == [1, 2, 4, 8, 16, 32, 48]
    assert sweep_sizes(1) == [1]
    with pytest.raises(ValueError):
        sweep_sizes(0)


def test_max_batch_is_the_largest_fitting_prefix():
    # p99 = 1.5 × (2 + 0.1 b): b=16 -> 5.4 ms, b=32 -> 7.8 ms, b=64 -> 12.6 ms
    assert max_batch(AMORTIZED, 10.0) == 32
    at_32 = AMORTIZED[5]["p99_ms"]
    assert max_batch(AMORTIZED, at_32) == 32  # exactly on the SLA fits
    assert max_batch(AMORTIZED, at_32 - 0.01) == 16
    assert max_batch(AMORTIZED, 100.0) == 64
    assert max_batch(AMORTIZED, 3.0) == 0  # even batch 1 (3.15 ms) misses
    assert max_batch(AMORTIZED, at_32, overhead_ms=0.5) == 16  # the overhead counts against the SLA


def test_a_noisy_fit_after_a_miss_is_not_trusted():
    noisy = [{**p} for p in AMORTIZED]
    noisy[2]["p99_ms"] = 50.0  # batch 4 spikes
    assert max_batch(noisy, 10.0) == 2


def test_knee_is_where_throughput_stops_gaining():
    assert knee(AMORTIZED, 64)["batch_size"] == 64  # 64/8.4 = 7619/s vs 32/5.2 = 6154/s: still +24 %
    assert knee(AMORTIZED, 16)["batch_size"] == 16  # limited by max_batch_size
    # 1 ms fixed + 0.25 ms per sample: 16 -> 3200/s, 32 -> 3556/s (+11 %), 64 -> 3765/s (+6 %)
    saturating = curve(lambda b: 1.0 + 0.25 * b)
    k = knee(saturating, 64)
    assert k["batch_size"] == 32
    assert served(saturating[6], 0) < 1.1 * served(k, 0) and served(k, 0) >= 1.1 * served(saturating[4], 0)


def test_knee_stops_at_the_first_plateau_of_a_noisy_curve():
    noisy = curve(lambda b: 1.0 + 0.25 * b)
    noisy[3] = {**noisy[3], "p50_ms": 10.0}  # batch 8 stalled: 800/s, less than batch 4
    assert knee(noisy, 64)["batch_size"] == 4


def test_flat_curve_knee_at_one_and_overhead_moves_it():
    flat = curve(lambda b: 0.3 * b)  # no fixed cost: batching gains nothing in-process
    assert knee(flat, 64)["batch_size"] == 1
    # a 0.5 ms per-execution server overhead is amortized by batching: 8 -> 2759/s, 16 -> 3019/s (+9 %)
    assert knee(flat, 64, overhead_ms=0.5)["batch_size"] == 8


def test_queue_delay():
    assert queue_delay_us(50.0, 10.0, 2000) == 2000  # capped
    assert queue_delay_us(10.0, 8.0, 5000) == 1000  # half of the 2 ms left
    assert queue_delay_us(10.0, 12.0, 5000) == 0  # nothing left: never negative
    assert queue_delay_us(50.0, 10.0, 2000, alone_ms=0.3) == 300  # never longer than running it alone
    assert tune_curve(AMORTIZED, 100.0, 5000)["max_queue_delay_us"] == 2100  # batch 1 p50: 2.1 ms


def test_tune_curve_preferred_never_exceeds_max():
    for sla in (8.0, 12.0, 16.0, 26.0, 100.0):  # queued worst case 2 × p99: batch 2 needs 6.6 ms
        t = tune_curve(AMORTIZED, sla, 2000)
        assert 2 <= t["preferred_batch_size"] == t["knee_batch_size"] <= t["max_batch_size"]
    only_one = tune_curve(AMORTIZED, 6.4, 2000)  # batch 1 (2 × 3.15 ms) fits, batch 2 (2 × 3.3 ms) does not
    assert (only_one["max_batch_size"], only_one["preferred_batch_size"], only_one["max_queue_delay_us"]) == (1, 0, 0)
    assert tune_curve(AMORTIZED, 6.0, 2000) is None


def test_no_preferred_size_when_batching_runs_no_faster():
    # per-sample cost flat in the batch size (the built-in model on a CPU): the knee is batch 1, so
    # the batcher is not told to wait for a size, and nothing is held in the queue
    flat = curve(lambda b: 0.3 * b)
    t = tune_curve(flat, 50.0, 2000, overhead_ms=0.5)
    assert t["knee_batch_size"] == 1 and t["preferred_batch_size"] == 0 and t["max_queue_delay_us"] == 0
    assert t["max_batch_size"] == 32  # batch 64's p99 28.8 ms: queued 2 × 29.3 ms misses 50 ms
    assert t["throughput_per_instance"] == pytest.approx(1000 / (0.3 + 0.5))  # capacity counts the overhead
    # the assumed overhead does not move the preferred size: queueing amortizes it without one
    assert tune_curve(flat, 50.0, 2000, overhead_ms=5.0)["preferred_batch_size"] == 0
    # a real in-process gain does: 1 ms fixed + 0.25 ms per sample has its knee at 32
    gaining = tune_curve(curve(lambda b: 1.0 + 0.25 * b), 100.0, 2000)
    assert gaining["preferred_batch_size"] == gaining["knee_batch_size"] == 32
    assert gaining["max_queue_delay_us"] == 1250  # capped by the batch-1 p50 (1.25 ms)


def test_tune_picks_threads_and_instances_by_total_throughput():
    one_thread = curve(lambda b: 1.0 + 0.2 * b)
    two_threads = curve(lambda b: 0.8 + 0.15 * b)  # faster per call, but only one instance fits in 2 cores
    t = tune({2: two_threads, 1: one_thread}, 20.0, cores=2, overhead_ms=0.5)
    assert t.feasible and t.kind == "KIND_CPU"
    assert (t.instances, t.threads) == (2, 1)
    assert t.instances * t.threads <= 2
    assert t.throughput == pytest.approx(2 * t.throughput_per_instance)
    assert t.preferred_batch_size == t.knee_batch_size <= t.max_batch_size
    assert set(t.curves) == {"1", "2"}


def test_gpu_is_one_gpu_instance():
    t = tune({4: AMORTIZED}, 20.0, cores=4, gpu=True)
    assert (t.kind, t.instances) == ("KIND_GPU", 1)


def test_sla_missed_at_batch_one():
    t = tune({2: AMORTIZED, 1: AMORTIZED}, 1.0, cores=2)
    assert not t.feasible and t.max_batch_size == 0
    assert "cannot be met even at batch 1" in t.reason and "3.15" in t.reason
    assert t.reason.startswith("serving.p99_ms=1.0 ")


def test_a_missed_tier_sla_names_that_tier_not_serving_p99():
    tiers = {"premium": 1.0, "standard": 50.0, "batch": None}
    t = tune({1: AMORTIZED}, 999.0, cores=2, tiers=tiers)
    assert not t.feasible
    assert t.reason.startswith("serving.tiers[0].p99_ms=1.0 (tier premium) cannot be met")


def test_a_missed_sla_states_the_two_times_rule_with_its_numbers():
    # batch 1 runs in 3.15 ms p99, under the 7 ms SLA alone, but a request may wait for one running execution
    t = tune({1: AMORTIZED}, 7.0, cores=1, overhead_ms=0.5)
    assert not t.feasible
    assert "2 × (p99 + overhead) ≤ SLA gives 2 × (3.15 + 0.5) = 7.30 ms > 7.0 ms" in t.reason, t.reason


def test_max_batch_counts_one_running_execution_ahead():
    # the default model's shape: ~19 ms p99 at batch 64 fits 50 ms alone, but 2 × (19 + 0.5) = 39 ms queued;
    # at 26 ms p99, 2 × 26.5 = 53 ms does not fit and batch 32 is the largest
    flat = curve(lambda b: 0.3 * b, p99_factor=1.0)  # p99 = 0.3 ms × batch: 64 -> 19.2 ms
    assert worst_case_ms(flat[6], 0.5) == pytest.approx(2 * 19.7)
    assert max_batch(flat, 50.0, 0.5, queued=True) == 64
    slower = curve(lambda b: 0.4 * b, p99_factor=1.0)  # 64 -> 25.6 ms: alone 26.1 fits, queued 52.2 does not
    assert max_batch(slower, 50.0, 0.5) == 64
    assert max_batch(slower, 50.0, 0.5, queued=True) == 32
    assert tune_curve(slower, 50.0, 2000, 0.5)["max_batch_size"] == 32


def test_queue_policy_from_capacity_and_sla_budget():
    # 2000 samples/s; own execution 20 ms of a 50 ms SLA leaves 30 ms of waiting: 60 requests, timeout 30 ms
    p = queue_policy(50.0, 20.0, 2000.0, 8)
    assert p == {"wait_budget_ms": 30.0, "max_queue_size": 60, "timeout_us": 30000}
    assert queue_policy(50.0, 20.0, 100.0, 8)["max_queue_size"] == 8  # never below a full batch
    assert queue_policy(None, 20.0, 2000.0, 8) == {"wait_budget_ms": None, "max_queue_size": 0, "timeout_us": 0}


def test_tune_sets_the_default_queue_policy_and_the_switches():
    flat = curve(lambda b: 0.3 * b, p99_factor=1.0)
    t = tune({1: flat}, 50.0, cores=2, overhead_ms=0.5)
    assert (t.instances, t.max_batch_size, t.p99_at_max_ms) == (2, 64, pytest.approx(19.2))
    assert t.queue_wait_budget_ms == pytest.approx(50 - 19.7)
    assert t.throughput == pytest.approx(2 * 1000 / 0.8)  # 2500 samples/s
    assert t.max_queue_size == int(2500 * 30.3 / 1000) == 75
    assert t.queue_timeout_us == 30300
    off = tune({1: flat}, 50.0, cores=2, overhead_ms=0.5, queue_policy_on=False)
    assert (off.max_queue_size, off.queue_timeout_us) == (0, 0)
    no_timeout = tune({1: flat}, 50.0, cores=2, overhead_ms=0.5, timeout_on=False)
    assert (no_timeout.max_queue_size, no_timeout.queue_timeout_us) == (75, 0)


def test_tiers_become_priority_levels():
    tiers = {"premium": 50.0, "standard": 100.0, "batch": None}
    flat = curve(lambda b: 0.3 * b, p99_factor=1.0)
    t = tune({1: flat}, 999.0, cores=2, overhead_ms=0.5, tiers=tiers)
    assert t.sla_p99_ms == 50.0 and t.max_batch_size == 64  # the tightest tier is the SLA
    assert [(x["name"], x["level"]) for x in t.tiers] == [("premium", 1), ("standard", 2), ("batch", 3)]
    assert [x["timeout_us"] for x in t.tiers] == [30300, 80300, 0]
    assert [x["max_queue_size"] for x in t.tiers] == [75, int(2500 * 80.3 / 1000), 0]
    assert t.default_priority_level == 2  # the last tier with an SLA
    assert default_level(tiers, "premium") == 1 and default_level({"a": None}) == 1
    assert tier_policies({"only": 10.0}, 12.0, 1000.0, 4)[0]["max_queue_size"] == 4  # no budget: a full batch


def test_no_sla_set_tunes_for_throughput_and_says_what_each_batch_needs():
    from optimizer.triton.deploy import open_sla_reason
    from optimizer.triton.tune import open_sla

    slow = curve(lambda b: 40.0 + 5.0 * b)  # a big model: 45 ms at batch 1, far past a 50 ms SLA's rule
    assert tune({1: slow}, 50.0, 4).feasible is False  # what the old 50 ms default did: exit 3, nothing emitted
    sla = open_sla({1: slow, 2: slow}, 0.5)
    assert sla >= worst_case_ms(slow[-1], 0.5) and sla - worst_case_ms(slow[-1], 0.5) < 0.002
    t = open_sla_reason(tune({1: slow}, sla, 4, overhead_ms=0.5))
    assert t.feasible and t.max_batch_size == 64 and t.sla_p99_ms == sla and t.sla_set is False
    # nothing to protect: an unbounded queue without a timeout refuses no request
    assert (t.max_queue_size, t.queue_timeout_us, t.queue_wait_budget_ms) == (0, 0, None)
    from optimizer.tritonserver.expected import from_tuning

    assert from_tuning(t.to_dict(), "tuning.json").p99_ms is None  # a smoke test holds the server to no SLA
    assert from_tuning(t.to_dict(), "tuning.json", 20.0).p99_ms == 20.0  # serve_check --sla-ms still does
    assert t.reason.startswith("no SLA set (serving.p99_ms=null), so no SLA gate: tuned for throughput, ")
    assert "batch 1: 136.0 ms" in t.reason and f"batch 64: {worst_case_ms(slow[-1], 0.5):.1f} ms" in t.reason
