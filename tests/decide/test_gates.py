"""Regression gates against an earlier summary.json, on synthetic summaries: a regression, none, another host."""

import json

import pytest

from optimizer.config import GatesConfig
from optimizer.errors import EXIT_GATE, EXIT_OK, RecipeError
from optimizer.decide.gates import apply, compare, load_baseline
from optimizer.records import RunSummary, VariantRecord

HOST = {"cpu": "Intel Xeon 8488C", "cpus": "2", "machine": "x86_64"}


def _bench(bs: int, throughput: float, p99: float, spread: float = 0.02):
    rounds = [throughput * (1 - spread), throughput, throughput * (1 + spread)]
    return {"batch_size": bs, "p50_ms": p99 / 2, "p99_ms": p99, "throughput": throughput,
            "median_throughput": throughput, "rounds": rounds}


def _variant(name, throughput, p99, score=99.0, cosine=0.9999, size=300_000, ref_throughput=None, chain=("q",)):
    rec = {"name": name, "chain": list(chain), "status": "ok", "size_bytes": size,
           "evaluation": {"metric": "accuracy", "score": score, "mean_cosine": cosine},
           "benchmark": {"1": _bench(1, throughput, p99), "8": _bench(8, throughput * 4, p99 * 3)}}
    if ref_throughput:
        rec["speedup"] = {"1": throughput / ref_throughput, "8": throughput / ref_throughput}
        rec["speedup_interval"] = {bs: [s * 0.97, s * 1.03] for bs, s in rec["speedup"].items()}
    return rec


def _summary(ref=1000.0, quant=4000.0, p99=1.0, score=99.0, host=HOST, size=300_000):
    return {"status": "passed", "exit_code": EXIT_OK, "chosen": "quantize", "gate_failures": {},
            "hardware": {"name": "local-cpu", "host": dict(host)},
            "variants": [_variant("reference", ref, p99 * 4, chain=()),
                         _variant("quantize", quant, p99, score=score, size=size, ref_throughput=ref)]}


def _typed(summary: dict) -> RunSummary:
    """The run's typed summary that ``gates.apply`` takes, from a synthetic summary.json."""
    return RunSummary("int8", None, summary["status"], summary["exit_code"], model={}, data={}, output_dir="",
                      versions={}, provenance={}, chosen=summary["chosen"], hardware=summary["hardware"],
                      variants=tuple(VariantRecord.from_dict(v) for v in summary["variants"]))


def test_no_regression_passes_every_gate():
    record = compare(GatesConfig(), _summary(quant=3900.0), _summary(), "base.json")
    assert record["same_host"] and record["passed"]
    names = {g["name"] for g in record["gates"]}
    assert names == {"throughput_b1", "throughput_b8", "p99_b1", "p99_b8", "score", "parity", "size"}
    assert all(g["variant"] == "quantize" for g in record["gates"])


def test_regression_fails_with_metric_values_and_interval(tmp_path):
    base = tmp_path / "summary.json"
    base.write_text(json.dumps(_summary()))
    summary = apply(GatesConfig(baseline=str(base)), _typed(_summary(quant=3000.0, score=98.0)))  # 25 % slower,
    # one point less accurate
    assert summary.exit_code == EXIT_GATE and summary.status == "gate_failed"
    failed = {g["name"]: g for g in summary.regression["gates"] if not g["passed"]}
    assert set(failed) == {"throughput_b1", "throughput_b8", "score"}
    t = failed["throughput_b1"]
    assert t["baseline"] == 4000.0 and t["value"] == 3000.0 and t["limit"] == pytest.approx(3600.0)
    assert t["interval"] == [pytest.approx(2940.0), pytest.approx(3060.0)]
    assert t["message"] == ("quantize throughput_b1: median-call throughput at batch 1 3000 samples/s (every round "
                            "2940-3060) vs baseline 4000 samples/s; limit 3600 samples/s")
    assert failed["score"]["baseline"] == 99.0 and failed["score"]["value"] == 98.0
    assert summary.gate_failures()["regression"] == [g["message"] for g in summary.regression["gates"]
                                                         if not g["passed"]]


def test_slower_median_within_noise_is_not_a_regression():
    summary = _summary(quant=3580.0)
    summary["variants"][1]["benchmark"]["1"]["rounds"] = [3300.0, 3580.0, 3700.0]  # a round above the 3600 limit
    record = compare(GatesConfig(), summary, _summary())
    g = next(g for g in record["gates"] if g["name"] == "throughput_b1")
    assert g["passed"] and "within noise" in g["message"]


def test_another_host_compares_only_ratios_to_the_own_reference():
    # a host twice as fast: every absolute figure doubles, the speed-ups stay, so no regression
    other = {"cpu": "AMD EPYC 9R14", "cpus": "8", "machine": "x86_64"}
    fast = _summary(ref=2000.0, quant=8000.0, p99=0.5, host=other)
    record = compare(GatesConfig(), fast, _summary())
    assert not record["same_host"] and record["passed"]
    assert "another host" in record["note"] and "ratios to each run's own reference" in record["note"]
    names = {g["name"] for g in record["gates"]}
    assert {"speedup_b1", "speedup_b8", "p99_b1_ratio", "p99_b8_ratio"} <= names and "throughput_b1" not in names
    # the same host's absolute figures would have passed too; a lost speed-up fails whatever the host
    slower = _summary(ref=2000.0, quant=4000.0, p99=0.5, host=other)
    record = compare(GatesConfig(), slower, _summary())
    g = next(g for g in record["gates"] if g["name"] == "speedup_b1")
    assert not g["passed"] and g["baseline"] == 4.0 and g["value"] == 2.0 and g["interval"] == [1.94, 2.06]
    assert "speed-up vs its own reference at batch 1 2x (every round 1.94-2.06) vs baseline 4x" in g["message"]


def test_ratios_on_the_same_host_ride_out_a_host_wide_phase():
    """Same host, a phase that slows every runtime alike (both the reference and the variant at half speed):
    absolute figures fail, ratios to the run's own reference do not; a real loss of speed-up still fails."""
    slow_phase = _summary(ref=500.0, quant=2000.0, p99=2.0)
    assert not compare(GatesConfig(), slow_phase, _summary())["passed"]
    record = compare(GatesConfig(ratios=True), slow_phase, _summary())
    assert record["passed"] and not record["same_host"] and "gates.ratios=true" in record["note"]
    assert "throughput_b1" not in {g["name"] for g in record["gates"]}
    lost = compare(GatesConfig(ratios=True), _summary(ref=1000.0, quant=2000.0), _summary())
    assert not next(g for g in lost["gates"] if g["name"] == "speedup_b1")["passed"]


def test_p99_above_the_limit_in_one_round_only_is_noise():
    # measured: an unchanged int8 re-run's pooled p99 at batch 32 went 26.41 -> 44.37 ms (limit 33.01 ms) on a
    # loaded machine, while its median-call throughput stayed within the limit; one round's burst of load
    summary = _summary()
    b1 = summary["variants"][1]["benchmark"]["1"]
    b1["p99_ms"], b1["p99_rounds"] = 1.68, [0.98, 1.1, 1.9]  # baseline 1.0 ms, limit 1.25 ms
    g = next(g for g in compare(GatesConfig(), summary, _summary())["gates"] if g["name"] == "p99_b1")
    assert g["passed"] and g["value"] == 1.68 and g["interval"] == [0.98, 1.9] and g["limit"] == pytest.approx(1.25)
    assert "within noise" in g["message"]
    b1["p99_rounds"] = [1.3, 1.6, 1.9]  # every round above the limit: a regression
    g = next(g for g in compare(GatesConfig(), summary, _summary())["gates"] if g["name"] == "p99_b1")
    assert not g["passed"] and g["message"] == ("quantize p99_b1: p99 latency at batch 1 1.68 ms (every round "
                                                "1.3-1.9) vs baseline 1 ms; limit 1.25 ms")


def test_p99_ratio_on_another_host_pairs_rounds_with_the_own_reference():
    other = {"cpu": "AMD EPYC 9R14", "cpus": "8", "machine": "x86_64"}
    summary = _summary(host=other)  # reference p99 4 ms, quantize 1 ms: ratio 0.25, limit 0.3125
    ref, quant = (v["benchmark"]["1"] for v in summary["variants"])
    ref["p99_rounds"], quant["p99_rounds"] = [4.0, 4.0, 2.0], [1.0, 1.1, 1.0]  # the reference's quick round
    quant["p99_ms"] = 1.4  # pooled ratio 0.35 above the limit; per round 0.25, 0.275, 0.5
    g = next(g for g in compare(GatesConfig(), summary, _summary())["gates"] if g["name"] == "p99_b1_ratio")
    assert g["passed"] and g["interval"] == [0.25, 0.5] and g["value"] == pytest.approx(0.35)
    quant["p99_rounds"] = [1.4, 1.4, 1.4]
    g = next(g for g in compare(GatesConfig(), summary, _summary())["gates"] if g["name"] == "p99_b1_ratio")
    assert not g["passed"] and g["interval"] == [0.35, 0.7]


def test_contended_measurement_reports_speed_but_does_not_fail_it():
    # measured: unchanged int8 re-runs timed while other processes used 0.9-1.5 of 2 cores had every round of
    # batch-32 throughput below the limit, and their batch-32 speed-up over their own reference halved
    loaded = _summary(quant=3000.0, score=98.0)  # every round 25 % slower, one point less accurate
    loaded["measurement"] = {"contended": True, "foreign_cores": 1.5}
    record = compare(GatesConfig(), loaded, _summary())
    assert record["contended"] == ["this run (1.5 cores)"] and "inconclusive" in record["note"]
    t = next(g for g in record["gates"] if g["name"] == "throughput_b1")
    assert t["passed"] and t["inconclusive"] and t["value"] == 3000.0 and t["limit"] == pytest.approx(3600.0)
    assert t["message"].endswith("limit 3600 samples/s; inconclusive: measured under contention (this run (1.5 cores))")
    assert [g["name"] for g in record["gates"] if not g["passed"]] == ["score"]  # accuracy still fails
    baseline = _summary()
    baseline["measurement"] = {"contended": True, "foreign_cores": 0.9}
    record = compare(GatesConfig(), _summary(quant=3000.0), baseline)
    assert record["passed"] and record["contended"] == ["the baseline (0.9 cores)"]
    assert not any(g.get("inconclusive") for g in compare(GatesConfig(), _summary(quant=3900.0), baseline)["gates"])
    quiet = compare(GatesConfig(), _summary(quant=3000.0), _summary())
    assert not quiet["passed"] and not quiet["contended"]


def test_all_variants_and_disabled_tolerances():
    base, new = _summary(), _summary(size=400_000)
    cfg = GatesConfig(variants="all", max_throughput_drop=None, max_p99_increase=None)
    record = compare(cfg, new, base)
    assert {g["variant"] for g in record["gates"]} == {"reference", "quantize"}
    assert [g["name"] for g in record["gates"] if not g["passed"]] == ["size"]


def test_bad_baseline_is_a_recipe_error(tmp_path):
    with pytest.raises(RecipeError, match="gates.baseline .*no such file"):
        load_baseline(str(tmp_path / "missing.json"))
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(RecipeError, match="not an optimizer summary.json"):
        load_baseline(str(tmp_path / "x.json"))


def test_without_baseline_nothing_changes():
    summary = _typed(_summary())
    assert apply(GatesConfig(), summary) is summary


def test_figures_read_as_numbers_not_exponents():
    from optimizer.decide.gates import num

    assert [num(13542.4), num(1000.0), num(999.94), num(0.17241), num(1.5)] == ["13542", "1000", "999.9", "0.1724", "1.5"]

