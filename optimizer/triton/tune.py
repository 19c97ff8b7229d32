"""Triton settings from a measured latency/throughput curve: pure functions, no I/O.

A *curve* is a list of points ``{"batch_size", "p50_ms", "p99_ms", ...}`` (what
``benchmark.summarize`` returns), one per swept batch size, for one instance at a given
number of intra-op threads. The in-process sweep does not see what a server adds to every
execution (request handling, tensor copies); ``overhead_ms`` stands for it. A point's *served
throughput* is ``batch / (p50 + overhead)`` samples/s (p50, not the mean: a busy machine's
stalls should not move the knee). The rules:

- ``max_batch_size``: the largest swept batch whose p99 + overhead fits the SLA, walking up from 1
  and stopping at the first one that does not (a noisy fit beyond a miss is not trusted).
- the *knee*: where in-process throughput stops gaining, the first batch within ``max_batch_size``
  whose next swept size (double it) adds less than ``MIN_GAIN`` (10 %).
- ``preferred_batch_size``: the knee when it is above 1, else none. A preferred size makes the
  batcher hold requests until that many have arrived, which pays only when the bigger batch runs
  faster per sample. The per-execution overhead needs no preferred size: whenever every instance
  is busy, requests queue and the batcher sends them together. This is Triton's own advice: set
  a preferred size only when a batch size is markedly faster; otherwise ``dynamic_batching {}``.
  Measured on the smoke server at concurrency 8 for the built-in model (in-process compute
  per sample is flat in the batch size): no preferred size and no delay served 1.44x the requests/s
  of the untuned default, preferred 8 with a 305 µs delay 1.30x (experiments/results/triton_tuning.txt).
- ``max_queue_delay_microseconds``: 0 without a preferred size (holding a request buys nothing).
  With one: half the SLA budget left after the p99 at the preferred size (the other half absorbs
  waiting behind a running batch), never more than the p50 of batch 1 (holding a request longer
  than it takes to run it alone loses to an instance that is free), and at most ``queue_delay_cap_us``.
- instances: ``cores // threads`` CPU instances of ``threads`` intra-op threads each, the thread
  count whose instances together serve the most samples/s at the knee (served throughput, with
  the overhead: the estimate the cost model uses)."""

from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence

MIN_GAIN = 0.1  # a doubling of the batch that adds less served throughput than this is not worth it
QUEUE_SHARE = 0.5  # share of the SLA budget left after compute given to the batcher's queue delay


@dataclass
class Tuning:
    """The tuned values and the numbers behind them (goes into summary.json and tuning.md)."""

    feasible: bool  # some batch size meets the SLA
    reason: str  # one sentence: why these values, or why the SLA cannot be met
    sla_p99_ms: float
    max_batch_size: int = 0
    knee_batch_size: int = 0  # where in-process throughput stops gaining
    preferred_batch_size: int = 0  # the knee when above 1; 0: no preferred size (Triton's default)
    max_queue_delay_us: int = 0
    kind: str = "KIND_CPU"
    instances: int = 1
    threads: int = 1  # intra-op threads per instance
    p99_at_knee_ms: float = 0.0
    throughput_per_instance: float = 0.0  # served samples/s of one instance at the knee
    throughput: float = 0.0  # samples/s of all instances of one server (the estimate used for cost)
    overhead_ms: float = 0.0  # per-execution serving overhead assumed on top of the in-process timings
    curves: Dict[str, List[Dict]] = field(default_factory=dict)  # threads -> swept curve

    def to_dict(self) -> Dict:
        return asdict(self)


def sweep_sizes(cap: int) -> List[int]:
    """1, 2, 4, ... up to ``cap`` (``cap`` itself included when it is not a power of two)."""
    if cap < 1:
        raise ValueError(f"the batch cap must be at least 1, got {cap}")
    sizes, b = [], 1
    while b < cap:
        sizes.append(b)
        b *= 2
    return sizes + [cap]


def served(point: Dict, overhead_ms: float) -> float:
    """Samples/s one instance serves at this point's batch size, counting the per-execution overhead."""
    return point["batch_size"] * 1000.0 / (point["p50_ms"] + overhead_ms)


def max_batch(curve: Sequence[Dict], sla_p99_ms: float, overhead_ms: float = 0.0) -> int:
    """Largest batch of the SLA-fitting prefix of ``curve``; 0 when even the first misses."""
    best = 0
    for point in sorted(curve, key=lambda p: p["batch_size"]):
        if point["p99_ms"] + overhead_ms > sla_p99_ms:
            break
        best = point["batch_size"]
    return best


def knee(curve: Sequence[Dict], limit: int, overhead_ms: float = 0.0, min_gain: float = MIN_GAIN) -> Dict:
    """Where served throughput stops gaining: the first batch ≤ ``limit`` whose next size adds < ``min_gain``."""
    points = sorted((p for p in curve if p["batch_size"] <= limit), key=lambda p: p["batch_size"])
    if not points:
        raise ValueError(f"no measured batch size ≤ {limit}")
    for here, bigger in zip(points, points[1:]):
        if served(bigger, overhead_ms) < (1 + min_gain) * served(here, overhead_ms):
            return here
    return points[-1]


def queue_delay_us(sla_p99_ms: float, p99_ms: float, cap_us: int, alone_ms: float = float("inf")) -> int:
    """Microseconds the dynamic batcher may hold a request: part of the SLA budget left, at most the
    time the request takes alone (``alone_ms``, p50 at batch 1) and ``cap_us``."""
    left_us = (sla_p99_ms - p99_ms) * 1000.0 * QUEUE_SHARE
    return int(max(0, min(cap_us, left_us, alone_ms * 1000.0)))


def tune_curve(curve: Sequence[Dict], sla_p99_ms: float, cap_us: int, overhead_ms: float = 0.0) -> Optional[Dict]:
    """Batching values of one curve, or None when the SLA is missed at the smallest batch."""
    mb = max_batch(curve, sla_p99_ms, overhead_ms)
    if mb == 0:
        return None
    k = knee(curve, mb)  # in-process: the overhead is amortized by queueing, not by a preferred size
    preferred = k["batch_size"] if k["batch_size"] > 1 else 0
    delay = queue_delay_us(sla_p99_ms, k["p99_ms"] + overhead_ms, cap_us,
                           min(curve, key=lambda p: p["batch_size"])["p50_ms"]) if preferred else 0
    return {"max_batch_size": mb, "knee_batch_size": k["batch_size"], "preferred_batch_size": preferred,
            "p99_at_knee_ms": k["p99_ms"], "throughput_per_instance": served(k, overhead_ms),
            "max_queue_delay_us": delay}


def tune(curves: Dict[int, Sequence[Dict]], sla_p99_ms: float, cores: int, gpu: bool = False,
         cap_us: int = 2000, overhead_ms: float = 0.0) -> Tuning:
    """Pick threads, instances and batching from ``{threads: curve}`` measured on one instance."""
    named = {str(t): list(c) for t, c in curves.items()}
    options = []
    for t, curve in curves.items():
        batching = tune_curve(curve, sla_p99_ms, cap_us, overhead_ms)
        if batching is None:
            continue
        instances = 1 if gpu else max(1, cores // max(1, t))
        options.append((instances * batching["throughput_per_instance"], t, instances, batching))
    if not options:
        fastest = min(min(c, key=lambda p: p["batch_size"])["p99_ms"] for c in curves.values() if c)
        return Tuning(False, f"serving.p99_ms={sla_p99_ms} cannot be met even at batch 1: the best p99 measured "
                             f"there is {fastest:.2f} ms (+ {overhead_ms} ms serving overhead)", sla_p99_ms,
                      overhead_ms=overhead_ms, curves=named)
    total, t, instances, b = max(options, key=lambda o: o[0])
    kind = "KIND_GPU" if gpu else "KIND_CPU"
    reason = (f"{instances} {kind} instance(s) × {t} thread(s): {total:.0f} samples/s at batch "
              f"{b['knee_batch_size']} (p99 {b['p99_at_knee_ms']:.2f} ms), the most of "
              f"{len(curves)} thread setting(s) measured")
    return Tuning(True, reason, sla_p99_ms, kind=kind, instances=instances, threads=t, throughput=total,
                  overhead_ms=overhead_ms, curves=named, **b)
