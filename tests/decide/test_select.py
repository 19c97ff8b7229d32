"""Constraints, the Pareto front and the choice of the variant to emit, on hand-made records."""

from dataclasses import replace

from optimizer.config import ConstraintsConfig, Objective
from optimizer.decide.select import choose, judge, pareto, violations
from optimizer.records import VariantRecord


def record(name, acc_drop, p99_b1, tput_b8, cost=None, status="ok", acc=None):
    score = 99.0 - acc_drop if acc is None else acc
    return VariantRecord.from_dict({"name": name, "status": status, "deployable": name != "reference",
            "evaluation": {"metric": "accuracy", "score": score, "accuracy": score, "score_drop": acc_drop},
            "benchmark": {"1": {"p99_ms": p99_b1, "throughput": 1000 / p99_b1},
                          "8": {"p99_ms": p99_b1 * 4, "throughput": tput_b8}},
            "cost": {} if cost is None else {"cost_per_million": cost}})


VARIANTS = [
    record("reference", 0.0, 20.0, 400, cost=0.06),
    record("export", 0.0, 5.0, 1500, cost=0.017),
    record("quantize", 1.5, 1.0, 6000, cost=0.004),  # fastest, but loses 1.5 points
    record("fp16", 0.2, 8.0, 900, cost=0.028),
]


def annotate(variants, c):
    return [replace(v, violations=tuple(violations(v, c))) for v in variants]


def test_constraints_exclude_and_say_why():
    vs = annotate(VARIANTS, ConstraintsConfig(max_accuracy_drop=1.0, max_p99_ms=10.0))
    why = {v.name: list(v.violations) for v in vs}
    assert why["quantize"] == ["accuracy drop 1.50 > 1.0 points"]
    assert why["reference"] == ["p99 20.00 ms > 10.0 ms"]
    assert why["export"] == [] and why["fp16"] == []
    assert choose(vs, Objective.throughput).name == "export"
    assert choose(vs, Objective.p99).name == "export"
    assert choose(vs, Objective.cost).name == "export"


def test_objectives_pick_different_variants_when_all_pass():
    vs = annotate(VARIANTS, ConstraintsConfig(max_accuracy_drop=2.0))
    assert choose(vs, Objective.throughput).name == "quantize"
    assert choose(vs, Objective.p99).name == "quantize"
    vs = annotate(VARIANTS, ConstraintsConfig(max_accuracy_drop=0.1))
    assert choose(vs, Objective.cost).name == "export"


def test_cost_constraint():
    vs = annotate(VARIANTS, ConstraintsConfig(max_accuracy_drop=None, max_cost_per_million=0.01))
    assert [v.name for v in vs if not v.violations] == ["quantize"]
    assert "cost $0.0170/1M > $0.01/1M" in {v.name: v for v in vs}["export"].violations
    unpriced = annotate([record("x", 0.0, 1.0, 10)], ConstraintsConfig(max_cost_per_million=0.01))
    assert list(unpriced[0].violations) == ["no cost figure (hardware.price_per_hour is not set)"]


def test_nothing_passes_nothing_chosen():
    vs = annotate(VARIANTS, ConstraintsConfig(max_accuracy_drop=0.0, max_p99_ms=2.0))
    assert choose(vs, Objective.throughput) is None
    assert all(v.violations for v in vs)
    failed = annotate([record("broken", 0.0, 1.0, 10, status="failed")], ConstraintsConfig())
    assert list(failed[0].violations) == ["variant failed"] and choose(failed, Objective.throughput) is None


def test_pareto_front_accuracy_vs_p99():
    front = pareto(VARIANTS)
    # quantize: fastest; export: no accuracy lost and faster than reference and fp16
    assert sorted(front) == ["export", "quantize"]
    tie = VARIANTS + [record("export2", 0.0, 5.0, 1500)]
    assert "export2" in pareto(tie) and "export" in pareto(tie)  # equal points do not dominate each other


def test_judge_marks_violations_and_the_front_without_changing_its_input():
    judged = judge(VARIANTS, ConstraintsConfig(max_accuracy_drop=1.0))
    assert [v.name for v in judged if v.pareto] == ["export", "quantize"]
    assert {v.name: list(v.violations) for v in judged}["quantize"] == ["accuracy drop 1.50 > 1.0 points"]
    assert all(v.violations is None and v.pareto is None for v in VARIANTS)
