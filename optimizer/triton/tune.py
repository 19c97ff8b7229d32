"""Triton settings from a measured latency/throughput curve: pure functions, no I/O.

A *curve* is a list of points ``{"batch_size", "p50_ms", "p99_ms", ...}`` (what
``benchmark.summarize`` returns), one per swept batch size, for one instance at a given
number of intra-op threads. The in-process sweep does not see what a server adds to every
execution (request handling, tensor copies); ``overhead_ms`` stands for it. A point's *served
throughput* is ``batch / (p50 + overhead)`` samples/s (p50, not the mean: a busy machine's
stalls should not move the knee). The rules:

- ``max_batch_size``: the largest swept batch whose *queued worst case* fits the SLA: a request that
  arrives while an instance runs a batch of that size waits for it, then runs in a batch of that size
  itself, so ``2 × (p99 + overhead) ≤ SLA``; walking up from 1 and stopping at the first miss (a noisy
  fit beyond a miss is not trusted).
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
  the overhead: the estimate the cost model uses).
- overload protection (``default_queue_policy``): the *wait budget* is what the SLA leaves once a
  request's own execution (p99 at ``max_batch_size`` + overhead) is paid. A request that has waited
  that long can no longer meet the SLA, so ``default_timeout_microseconds`` is the wait budget and
  ``timeout_action: REJECT``; a server draining ``capacity`` samples/s empties a queue of
  ``capacity × wait budget`` one-sample requests within the budget, so that is ``max_queue_size``
  (at least ``max_batch_size``, so a full batch can form); a request past it is rejected at once
  instead of waiting for an answer that comes too late.
- overload check (only with a smoke test that measured the capacity): open-loop traffic at
  ``triton.overload_factor`` × the measured capacity on the real server. The admitted requests' p99 is
  their wait (at most the timeout) plus what the server adds beyond it under that load (execution slowed
  by the cores it shares with request handling, transport), which the in-process p99 cannot see. When
  that p99's interval is not within the SLA less ``OVERLOAD_MARGIN``, ``tighten`` takes the measured
  non-waiting part (p99 − wait budget) as the request's own time, gives each SLA tier
  ``SLA × (1 − OVERLOAD_MARGIN)`` minus it as the new wait budget (at least 1 ms; with tiers at least one
  running execution, and a tier that still misses there gets ``max_batch_size`` halved by ``halve_batch``:
  the execution it waits for and its own both get shorter), and sizes the queue from the measured
  capacity; the server re-checks the result (``retune.check_and_retune`` drives the search).
- QoS tiers: ``priority_levels`` = the number of tiers (level 1 the first, served first), one
  ``priority_queue_policy`` per level from that tier's SLA by the rule above; a tier without an SLA
  (``null``: batch traffic) gets neither a timeout nor a bound. The tightest tier's SLA sets
  ``max_batch_size``."""

from dataclasses import asdict, dataclass, field, replace
from typing import Dict, List, Optional, Sequence

from optimizer.tritonserver.expected import OVERLOAD_MARGIN  # what a probe holds by is what the re-tune aims for

MIN_GAIN = 0.1  # a doubling of the batch that adds less served throughput than this is not worth it
QUEUE_SHARE = 0.5  # share of the SLA budget left after compute given to the batcher's queue delay
MIN_WAIT_MS = 1.0  # shortest wait budget tighten sets (a timeout of 0 would mean none at all)


RETUNE_KEYS = ("own_under_load_ms", "overload_capacity_rps", "overload_margin", "batch_halved_from")


@dataclass(frozen=True)
class Tuning:
    """The tuned values and the numbers behind them (goes into summary.json and tuning.md)."""

    feasible: bool  # some batch size meets the SLA
    reason: str  # one sentence: why these values, or why the SLA cannot be met
    sla_p99_ms: float
    sla_set: bool = True  # false: no SLA was set, sla_p99_ms is the one every swept batch size meets (not a gate)
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
    p99_at_max_ms: float = 0.0  # in-process p99 at max_batch_size: a request's own worst execution
    queue_wait_budget_ms: float = 0.0  # SLA - (p99 at max_batch_size + overhead): how long a request may wait
    max_queue_size: int = 0  # default_queue_policy.max_queue_size; 0: unbounded (queue policy off)
    queue_timeout_us: int = 0  # default_queue_policy.default_timeout_microseconds; 0: none
    tiers: List[Dict] = field(default_factory=list)  # QoS tiers: name, level, p99_ms, max_queue_size, timeout_us
    default_priority_level: int = 0  # level of requests that name no priority (0: no tiers)
    curves: Dict[str, List[Dict]] = field(default_factory=dict)  # threads -> swept curve
    # set only by the overload check's re-tune (``tighten`` / ``halve_batch``); absent from to_dict until then
    own_under_load_ms: Optional[float] = None  # a request's own time under overload, measured on the server
    overload_capacity_rps: Optional[float] = None  # the measured capacity the queues were re-sized from
    overload_margin: Optional[float] = None  # share of the SLA kept free by the re-tuned wait
    batch_halved_from: Optional[int] = None  # max_batch_size as first tuned, once halved

    def to_dict(self) -> Dict:
        """JSON-ready, as tuning.json and summary.json give it (the re-tune's fields only once set)."""
        out = asdict(self)
        for key in RETUNE_KEYS:
            if out[key] is None:
                del out[key]
        return out


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


def worst_case_ms(point: Dict, overhead_ms: float = 0.0, queued: bool = True) -> float:
    """A request's worst latency at this batch size: its own execution (p99 + overhead), after waiting for
    one running execution of the same size when ``queued``."""
    return (2 if queued else 1) * (point["p99_ms"] + overhead_ms)


def open_sla(curves: Dict[int, Sequence[Dict]], overhead_ms: float = 0.0) -> float:
    """The SLA under which every swept batch size fits (no SLA set: tuning for throughput alone)."""
    return round(max(worst_case_ms(p, overhead_ms) for c in curves.values() for p in c) + 0.0005, 3)


def max_batch(curve: Sequence[Dict], sla_p99_ms: float, overhead_ms: float = 0.0, queued: bool = False) -> int:
    """Largest batch of the SLA-fitting prefix of ``curve``; 0 when even the first misses. ``queued``: the
    worst case counts one running execution the request waits for (the rule ``tune`` uses)."""
    best = 0
    for point in sorted(curve, key=lambda p: p["batch_size"]):
        if worst_case_ms(point, overhead_ms, queued) > sla_p99_ms:
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


def queue_policy(sla_p99_ms: Optional[float], own_ms: float, capacity: float, min_size: int) -> Dict:
    """``max_queue_size`` and timeout (µs) for requests with this SLA, given their own worst execution
    ``own_ms`` and the server's ``capacity`` (samples/s); no SLA (None): unbounded, no timeout."""
    if sla_p99_ms is None:
        return {"wait_budget_ms": None, "max_queue_size": 0, "timeout_us": 0}
    wait_ms = max(0.0, sla_p99_ms - own_ms)
    return {"wait_budget_ms": round(wait_ms, 3), "max_queue_size": max(min_size, int(capacity * wait_ms / 1000.0)),
            "timeout_us": int(wait_ms * 1000.0)}


def tier_policies(tiers: Dict[str, Optional[float]], own_ms: float, capacity: float, min_size: int) -> List[Dict]:
    """One entry per QoS tier, in priority order (level 1 first), with its queue policy."""
    return [{"name": name, "level": level, "p99_ms": sla, **queue_policy(sla, own_ms, capacity, min_size)}
            for level, (name, sla) in enumerate(tiers.items(), start=1)]


def default_level(tiers: Dict[str, Optional[float]], default_tier: str = "") -> int:
    """Priority level of requests that name none: ``default_tier``, else the last tier with an SLA."""
    names = list(tiers)
    if default_tier:
        return names.index(default_tier) + 1
    with_sla = [i for i, n in enumerate(names, start=1) if tiers[n] is not None]
    return with_sla[-1] if with_sla else len(names)


def tune_curve(curve: Sequence[Dict], sla_p99_ms: float, cap_us: int, overhead_ms: float = 0.0) -> Optional[Dict]:
    """Batching values of one curve, or None when the SLA is missed at the smallest batch."""
    mb = max_batch(curve, sla_p99_ms, overhead_ms, queued=True)
    if mb == 0:
        return None
    k = knee(curve, mb)  # in-process: the overhead is amortized by queueing, not by a preferred size
    preferred = k["batch_size"] if k["batch_size"] > 1 else 0
    delay = queue_delay_us(sla_p99_ms, k["p99_ms"] + overhead_ms, cap_us,
                           min(curve, key=lambda p: p["batch_size"])["p50_ms"]) if preferred else 0
    return {"max_batch_size": mb, "knee_batch_size": k["batch_size"], "preferred_batch_size": preferred,
            "p99_at_knee_ms": k["p99_ms"], "throughput_per_instance": served(k, overhead_ms),
            "max_queue_delay_us": delay, "p99_at_max_ms": next(p["p99_ms"] for p in curve if p["batch_size"] == mb)}


def tune(curves: Dict[int, Sequence[Dict]], sla_p99_ms: float, cores: int, gpu: bool = False,
         cap_us: int = 2000, overhead_ms: float = 0.0, queue_policy_on: bool = True, timeout_on: bool = True,
         tiers: Optional[Dict[str, Optional[float]]] = None, default_tier: str = "") -> Tuning:
    """Pick threads, instances, batching and queue policies from ``{threads: curve}`` measured on one instance.

    With ``tiers`` (name -> p99 ms or None, highest priority first) the tightest tier's SLA is the SLA."""
    tiers = dict(tiers or {})
    slas = {name: v for name, v in tiers.items() if v is not None}
    tightest = min(slas, key=slas.get) if slas else None
    sla_p99_ms = slas[tightest] if tightest else sla_p99_ms
    sla_name = (f"serving.tiers[{list(tiers).index(tightest)}].p99_ms={sla_p99_ms} (tier {tightest})" if tightest
                else f"serving.p99_ms={sla_p99_ms}")
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
        worst = worst_case_ms({"p99_ms": fastest}, overhead_ms)  # the rule max_batch applies, at batch 1
        return Tuning(False, f"{sla_name} cannot be met even at batch 1: a request may wait for one "
                             f"running execution, then runs its own, and the rule 2 × (p99 + overhead) ≤ SLA gives "
                             f"2 × ({fastest:.2f} + {overhead_ms}) = {worst:.2f} ms > {sla_p99_ms} ms (best batch-1 "
                             f"p99 measured, serving overhead)", sla_p99_ms, overhead_ms=overhead_ms, curves=named)
    total, t, instances, b = max(options, key=lambda o: o[0])
    kind = "KIND_GPU" if gpu else "KIND_CPU"
    reason = (f"{instances} {kind} instance(s) × {t} thread(s): {total:.0f} samples/s at batch "
              f"{b['knee_batch_size']} (p99 {b['p99_at_knee_ms']:.2f} ms), the most of "
              f"{len(curves)} thread setting(s) measured")
    own = b["p99_at_max_ms"] + overhead_ms
    policy = queue_policy(sla_p99_ms, own, total, b["max_batch_size"])
    queue: Dict = {"queue_wait_budget_ms": policy["wait_budget_ms"]}
    if queue_policy_on:
        queue.update(max_queue_size=policy["max_queue_size"], queue_timeout_us=policy["timeout_us"] if timeout_on else 0)
        if tiers:
            queue["tiers"] = [{**x, "timeout_us": x["timeout_us"] if timeout_on else 0}
                              for x in tier_policies(tiers, own, total, b["max_batch_size"])]
    elif tiers:  # priorities without bounds or timeouts
        queue["tiers"] = [{"name": n, "level": i, "p99_ms": v, "wait_budget_ms": None, "max_queue_size": 0,
                           "timeout_us": 0} for i, (n, v) in enumerate(tiers.items(), start=1)]
    return Tuning(True, reason, sla_p99_ms, kind=kind, instances=instances, threads=t, throughput=total,
                  overhead_ms=overhead_ms, curves=named, **b, **queue,
                  default_priority_level=default_level(tiers, default_tier) if tiers else 0)


def tighten(values: Tuning, own_ms: float, capacity: float, margin: float = OVERLOAD_MARGIN) -> Tuning:
    """``values`` with the queue policies re-derived for a request's own time under overload ``own_ms``
    (measured on the server: an admitted p99 less the wait it was given): each SLA gets
    ``SLA × (1 − margin) − own_ms`` as its wait (at least ``MIN_WAIT_MS``), and a queue the measured
    ``capacity`` (requests/s) drains within it. A policy without a timeout keeps none.

    With QoS tiers the wait is at least one running execution (p99 at ``max_batch_size`` + overhead): a tier
    whose requests time out before an instance frees up loses every slot to the tiers below it, which wait
    without a timeout (measured: a 1 ms premium timeout had 70 % of premium requests rejected while the batch
    tier was served in full)."""
    mb = values.max_batch_size or 1
    floor = MIN_WAIT_MS
    if values.tiers:
        floor = max(floor, (values.p99_at_max_ms or 0.0) + (values.overhead_ms or 0.0))

    def policy(sla: Optional[float], timed: bool) -> Dict:
        if sla is None:
            return {"wait_budget_ms": None, "max_queue_size": 0, "timeout_us": 0}
        wait = max(floor, sla * (1.0 - margin) - own_ms)
        return {"wait_budget_ms": round(wait, 3), "max_queue_size": max(mb, int(capacity * wait / 1000.0)),
                "timeout_us": int(wait * 1000.0) if timed else 0}

    p = policy(values.sla_p99_ms, bool(values.queue_timeout_us))
    tiers = [{**t, **policy(t["p99_ms"], bool(t.get("timeout_us")))} if t.get("max_queue_size") else dict(t)
             for t in values.tiers]
    return replace(values, queue_wait_budget_ms=p["wait_budget_ms"], max_queue_size=p["max_queue_size"],
                   queue_timeout_us=p["timeout_us"], own_under_load_ms=round(own_ms, 3),
                   overload_capacity_rps=capacity, overload_margin=margin, tiers=tiers)


def halve_batch(values: Tuning) -> Optional[Tuning]:
    """``values`` with ``max_batch_size`` halved (the largest swept size at most half of it), the queue
    policies unchanged: the QoS tiers' lever once a tier misses its SLA at the shortest wait it may have (one
    running execution), as a request there waits for one execution and then runs in its own, and both are
    shorter with a smaller batch. ``p99_at_max_ms`` comes from the curve of the tuned thread count, the knee and
    a preferred size are capped at the new size, and ``batch_halved_from`` keeps the old one. None at batch 1 or
    without a curve."""
    mb = values.max_batch_size or 0
    curve = values.curves.get(str(values.threads))
    smaller = [p for p in curve or [] if p["batch_size"] <= mb // 2]
    if not smaller:
        return None
    point = max(smaller, key=lambda p: p["batch_size"])
    size = point["batch_size"]
    out = replace(values, max_batch_size=size, p99_at_max_ms=point["p99_ms"],
                  knee_batch_size=min(values.knee_batch_size or size, size),
                  batch_halved_from=values.batch_halved_from or mb)
    if (values.preferred_batch_size or 0) > size:
        out = replace(out, preferred_batch_size=size if size > 1 else 0,
                      max_queue_delay_us=values.max_queue_delay_us if size > 1 else 0)
    return out
