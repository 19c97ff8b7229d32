"""Constraints, the accuracy/latency Pareto front, and the choice of the variant to ship."""

from dataclasses import replace
from typing import List, Optional, Sequence

from optimizer.config import ConstraintsConfig, Objective
from optimizer.records import VariantRecord


def latency_p99(v: VariantRecord) -> Optional[float]:
    """p99 latency at batch size 1 (or the smallest batch measured), in ms."""
    sizes = v.sizes()
    return v.at(sizes[0])["p99_ms"] if sizes else None


def throughput(v: VariantRecord) -> Optional[float]:
    """Throughput at the largest batch size measured, in samples/s."""
    sizes = v.sizes()
    return v.at(sizes[-1])["throughput"] if sizes else None


def violations(v: VariantRecord, c: ConstraintsConfig) -> List[str]:
    """Every constraint variant ``v`` fails, as short sentences (its ``cost`` already priced)."""
    if not v.ok:
        return [f"variant {v.status}"]
    out = []
    ev = v.evaluation
    drop = ev.get("score_drop", 0.0)
    if c.max_accuracy_drop is not None and drop > c.max_accuracy_drop:
        out.append(f"{ev.get('metric', 'accuracy')} drop {drop:.2f} > {c.max_accuracy_drop} points")
    gated = ev.get("parity_gated", True)  # a retrained model (prune, distill) is judged by its task metric
    cos = ev.get("mean_cosine") if gated else None
    if c.min_cosine is not None and cos is not None and cos < c.min_cosine:
        out.append(f"mean cosine to the reference {cos:.4f} < {c.min_cosine} (short by {c.min_cosine - cos:.4f})")
    diff = ev.get("max_abs_diff") if gated else None
    if c.max_abs_diff is not None and diff is not None and diff > c.max_abs_diff:
        out.append(f"max |diff| to the reference {diff:.4g} > {c.max_abs_diff} (over by {diff - c.max_abs_diff:.4g})")
    rel = ev.get("relative_error") if gated else None
    if c.max_relative_error is not None and rel is not None and rel > c.max_relative_error:
        out.append(f"relative error of output {ev.get('relative_error_output')!r} to the reference {rel:.4g} > "
                   f"{c.max_relative_error} (worst slice of its second axis)")
    p99 = latency_p99(v)
    if c.max_p99_ms is not None and p99 is not None and p99 > c.max_p99_ms:
        out.append(f"p99 {p99:.2f} ms > {c.max_p99_ms} ms")
    cost = (v.cost or {}).get("cost_per_million")
    if c.max_cost_per_million is not None:
        if cost is None:
            out.append("no cost figure (hardware.price_per_hour is not set)")
        elif cost > c.max_cost_per_million:
            out.append(f"cost ${cost:.4f}/1M > ${c.max_cost_per_million}/1M")
    return out


def pareto(variants: Sequence[VariantRecord]) -> List[str]:
    """Names of the variants no other beats on both the task's score (higher) and p99 (lower)."""
    pts = [(v.name, v.evaluation["score"], latency_p99(v)) for v in variants
           if v.ok and latency_p99(v) is not None]
    front = []
    for name, acc, lat in pts:
        dominated = any(a >= acc and p <= lat and (a > acc or p < lat) for _, a, p in pts)
        if not dominated:
            front.append(name)
    return front


def judge(records: Sequence[VariantRecord], constraints: ConstraintsConfig) -> List[VariantRecord]:
    """Each record with its constraint violations and whether it is on the Pareto front."""
    judged = [replace(r, violations=tuple(violations(r, constraints))) for r in records]
    front = pareto(judged)
    return [replace(r, pareto=r.name in front) for r in judged]


def choose(variants: Sequence[VariantRecord], objective: Objective) -> Optional[VariantRecord]:
    """The best deployable variant (one with a serving format) among those with no violations, by ``objective``."""
    ok = [v for v in variants if v.ok and not v.violations and v.deployable]
    if not ok:
        return None
    if objective == Objective.throughput:
        return max(ok, key=lambda v: throughput(v) or 0.0)
    if objective == Objective.p99:
        return min(ok, key=lambda v: latency_p99(v) or float("inf"))
    return min(ok, key=lambda v: (v.cost or {}).get("cost_per_million", float("inf")))
