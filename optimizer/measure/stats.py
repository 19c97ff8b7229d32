"""From raw per-call latencies of interleaved rounds to figures with their spread.

A variant's figures pool every timed call of every round. A speed-up compares typical calls: in each
round, the variant's median-call throughput (batch / median latency) over the reference's in the same
round; the point figure is the median of those per-round ratios, the interval their range.

Medians, not means: on a shared machine a co-tenant's time slices land as a few very long calls on
whichever variant is running (a 2-thread OpenMP pool waits whole slices for its preempted thread), and a
burst of load can hit one round. Measured here with a busy process on one core, the torch reference's
mean throughput fell 3x while its median call moved by about 1 %. The mean throughput (what a saturated
server delivers on this machine, as loaded) is still recorded as ``throughput`` and feeds sizing and cost.

With five rounds the true median ratio lies outside [min, max] with probability 2 × 0.5⁵ ≈ 6 %, so the
range is a ~94 % interval; a verdict other than "same" needs the whole interval on one side of 1."""

from typing import Dict, List, Sequence, Tuple

import numpy as np

from optimizer.measure.benchmark import summarize

FASTER, SLOWER, SAME = "faster", "slower", "same"


def block_throughput(latencies: Sequence[float], batch: int) -> float:
    """Samples per second over one block's timed calls."""
    return batch * len(latencies) / sum(latencies)


def median_throughput(latencies: Sequence[float], batch: int) -> float:
    """Samples per second at the block's median call."""
    return batch / float(np.median(latencies))


def pooled(blocks: List[Sequence[float]], batch: int, max_cv: float) -> Dict:
    """Percentiles, mean, CV, throughput and median throughput over every call of ``blocks`` (one per
    round), each round's median throughput and p99, and whether the pooled CV exceeds ``max_cv``."""
    calls = [t for b in blocks for t in b]
    record = summarize(calls, batch)
    record["median_throughput"] = median_throughput(calls, batch)
    record["rounds"] = [median_throughput(b, batch) for b in blocks]
    record["p99_rounds"] = [float(np.percentile(b, 99)) * 1e3 for b in blocks if len(b)]  # ms, for the p99 gate
    record["unstable"] = bool(record["cv"] > max_cv)
    return record


def speedup(variant: Dict, reference: Dict) -> Tuple[float, List[float]]:
    """Point speed-up (the median of the per-round ratios) and its interval over rounds ``[lo, hi]``.

    Both records come from ``pooled`` and hold one median throughput per round, paired by round; a round
    that a burst of load hit moves the interval, not the point. Without rounds, the pooled ratio."""
    ratios = [v / r for v, r in zip(variant["rounds"], reference["rounds"])]
    if not ratios:
        point = variant["median_throughput"] / reference["median_throughput"]
        return point, [point, point]
    point = float(np.median(ratios))
    return point, [min(ratios), max(ratios)]


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
