"""From raw per-call latencies of interleaved rounds to figures with their spread.

A variant's figures pool every timed call of every round. A speed-up is the ratio of pooled throughputs;
its interval is the range of the per-round ratios (variant block / reference block of the same round).
With five rounds the true median ratio lies outside [min, max] with probability 2 × 0.5⁵ ≈ 6 %, so the
range is a ~94 % interval; a verdict other than "same" needs the whole interval on one side of 1."""

from typing import Dict, List, Sequence, Tuple

from optimizer.measure.benchmark import summarize

FASTER, SLOWER, SAME = "faster", "slower", "same"


def block_throughput(latencies: Sequence[float], batch: int) -> float:
    """Samples per second over one block's timed calls."""
    return batch * len(latencies) / sum(latencies)


def pooled(blocks: List[Sequence[float]], batch: int, max_cv: float) -> Dict:
    """Percentiles, mean, CV and throughput over every call of ``blocks`` (one per round), each round's
    throughput, and whether the pooled CV exceeds ``max_cv``."""
    record = summarize([t for b in blocks for t in b], batch)
    record["rounds"] = [block_throughput(b, batch) for b in blocks]
    record["unstable"] = bool(record["cv"] > max_cv)
    return record


def speedup(variant: Dict, reference: Dict) -> Tuple[float, List[float]]:
    """Point speed-up (ratio of pooled throughputs) and its interval over rounds ``[lo, hi]``.

    Both records come from ``pooled`` and hold one throughput per round, paired by round."""
    point = variant["throughput"] / reference["throughput"]
    ratios = [v / r for v, r in zip(variant["rounds"], reference["rounds"])] or [point]
    return point, [min(min(ratios), point), max(max(ratios), point)]


def verdict(interval: Sequence[float]) -> str:
    """"faster" or "slower" only when the interval excludes 1, else "same"."""
    lo, hi = interval
    return FASTER if lo > 1.0 else SLOWER if hi < 1.0 else SAME


def compare(variant: Dict[str, Dict], reference: Dict[str, Dict], is_reference: bool = False) -> Dict:
    """``speedup``, ``speedup_interval``, ``verdict`` per batch size of a variant's pooled benchmark."""
    out: Dict[str, Dict] = {"speedup": {}, "speedup_interval": {}, "verdict": {}}
    for bs, b in variant.items():
        if bs not in reference:
            continue
        point, interval = (1.0, [1.0, 1.0]) if is_reference else speedup(b, reference[bs])
        out["speedup"][bs], out["speedup_interval"][bs], out["verdict"][bs] = point, interval, verdict(interval)
    return out
