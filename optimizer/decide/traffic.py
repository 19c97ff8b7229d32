"""A day's traffic profile (``serving.traffic``) -> the autoscaled replica schedule, its scale-up trigger and what it
saves against a fixed fleet sized for the peak. Pure functions; the only I/O is reading a profile's CSV.

The autoscaler is simulated every ``TICK_S`` (the HPA's sync period) over two days (the first settles it): it
wants ``ceil(rate ÷ (capacity × trigger))`` replicas; a replica it adds serves one cold start later; it removes
one a minute, only once ten cold starts (at least 300 s) wanted fewer (``kubernetes.behavior``). The trigger is
the share of a fleet's capacity at which scaling up must begin so that the new replica is ready before the load
exceeds the capacity already serving: the smallest ``rate(t) ÷ max rate over [t, t + cold start]`` (the
profile's steepest ramp over one cold start), at most ``serving.utilization``. Every tick of the day is checked:
the capacity of the ready replicas covers the rate (the SLA held), or the simulation raises."""

import bisect
import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from optimizer.recipe.traffic import DAY_S, check, read_csv

TICK_S = 15  # the HPA's sync period: how often the simulated autoscaler reads the load
DEFAULT_COLD_START_S = 60.0  # assumed when no smoke test measured the server's start to model ready


def diurnal(peak: float, trough: float, peak_hour: float) -> Callable[[float], float]:
    """A raised cosine over 24 hours: ``peak`` requests/s at ``peak_hour``, ``trough`` 12 hours away."""
    return lambda t: trough + (peak - trough) * (1.0 + math.cos(2 * math.pi * (t / 3600.0 - peak_hour) / 24.0)) / 2.0


def interpolated(points: Sequence[Tuple[float, float]]) -> Callable[[float], float]:
    """Linear between ``(seconds, rate)`` points sorted by time, periodic over the day."""
    times = [p[0] for p in points]

    def rate(t: float) -> float:
        t %= DAY_S
        i = bisect.bisect_right(times, t) - 1
        (t0, r0), (t1, r1) = points[i], points[(i + 1) % len(points)]
        span = (t1 - t0) % DAY_S or DAY_S
        return r0 + (r1 - r0) * ((t - t0) % DAY_S) / span
    return rate


def profile(t) -> Optional[Callable[[float], float]]:
    """Requests/s at a second of the day from a ``TrafficConfig`` (None for ``profile: none``), checked first."""
    check(t)
    if t.profile == "constant":
        return lambda _: float(t.rate)
    if t.profile == "diurnal":
        return diurnal(float(t.peak), float(t.trough), float(t.peak_hour))
    return interpolated(read_csv(t.csv)) if t.profile == "csv" else None


def trigger_share(rates: Sequence[float], lead_ticks: int) -> float:
    """The share of capacity at which scaling up must begin: min over t of rate(t) ÷ the highest rate within the
    next ``lead_ticks`` (periodic)."""
    n, worst = len(rates), 1.0
    for i, r in enumerate(rates):
        ahead = max(rates[(i + j) % n] for j in range(lead_ticks + 1))
        worst = min(worst, r / ahead)
    return worst


def simulate(rates: Sequence[float], capacity: float, trigger: float, cold_start_s: float) -> Dict[str, List[int]]:
    """Replicas running (``replicas``, they cost) and serving (``ready``) at every tick of the second of two days;
    AssertionError if the ready replicas' capacity falls below the rate at a tick (the SLA missed)."""
    n, lead = len(rates), math.ceil(cold_start_s / TICK_S)
    window, gap = math.ceil(max(300.0, 10.0 * cold_start_s) / TICK_S), math.ceil(60 / TICK_S)
    want = [max(1, math.ceil(r / (capacity * trigger) - 1e-9)) for r in rates]
    pods: List[int] = [-lead] * want[0]  # the tick each serves from, ascending
    last_down, out = -gap, {"replicas": [], "ready": []}
    for i in range(2 * n):
        desired = want[i % n]
        if desired > len(pods):
            pods += [i + lead] * (desired - len(pods))
        elif i - last_down >= gap and max(want[(i - j) % n] for j in range(window)) < len(pods):
            pods.pop()
            last_down = i
        ready = bisect.bisect_right(pods, i)
        if i >= n:
            if ready * capacity < rates[i % n] * (1 - 1e-9):
                raise AssertionError(f"SLA missed at {clock((i - n) * TICK_S)}: {ready} ready replicas × "
                                     f"{capacity:g}/s < {rates[i % n]:.1f} requests/s")
            out["replicas"].append(len(pods))
            out["ready"].append(ready)
    return out


def clock(seconds: float) -> str:
    s = int(round(seconds)) % DAY_S
    return f"{s // 3600:02d}:{s // 60 % 60:02d}"


def covering(rates: Sequence[float], per_replica: float, share: float = 0.95) -> int:
    """The fewest replicas (each serving ``per_replica`` requests/s) that serve ``share`` of the day's requests."""
    total, n = sum(rates), 1
    while sum(min(r, n * per_replica) for r in rates) < share * total:
        n += 1
    return n


def recommend(rate: Callable[[float], float], capacity: float, utilization: float = 0.7,
              cold_start_s: Optional[float] = None, step_minutes: float = 60.0,
              price_per_hour: Optional[float] = None, sla_ms: Optional[float] = None) -> Dict:
    """The scaling recommendation for a day of ``rate`` (requests/s at a second of the day) on replicas serving
    ``capacity`` requests/s each within the p99 SLA: schedule, trigger, 95 % replicas, cost against a fixed fleet."""
    if capacity <= 0 or not 0 < utilization <= 1:
        raise ValueError(f"need capacity > 0 and 0 < utilization <= 1, got {capacity}, {utilization}")
    cold = DEFAULT_COLD_START_S if cold_start_s is None else float(cold_start_s)
    rates = [rate(i * TICK_S) for i in range(DAY_S // TICK_S)]
    share = trigger_share(rates, math.ceil(cold / TICK_S))
    trigger = min(utilization, share)
    sim = simulate(rates, capacity, trigger, cold)
    peak_at = max(range(len(rates)), key=rates.__getitem__)
    fixed = max(1, math.ceil(max(rates) / (capacity * utilization) - 1e-9))
    per = int(round(step_minutes * 60 / TICK_S))
    schedule = [{"time": clock(s * TICK_S), "rate": round(max(rates[s:s + per]), 1),
                 "needed": max(1, math.ceil(max(rates[s:s + per]) / (capacity * utilization) - 1e-9)),
                 "replicas": max(sim["replicas"][s:s + per])} for s in range(0, len(rates), per)]
    hours = sum(sim["replicas"]) * TICK_S / 3600.0
    requests = sum(rates) * TICK_S
    out = {"profile_peak_rps": round(max(rates), 1), "profile_trough_rps": round(min(rates), 1),
           "requests_per_day": round(requests), "capacity_rps": capacity, "utilization": utilization,
           "sla_p99_ms": sla_ms, "cold_start_s": cold, "cold_start_assumed": cold_start_s is None,
           "min_replicas": min(sim["replicas"]), "max_replicas": max(sim["replicas"]),
           "replicas_95": covering(rates, capacity * utilization), "peak_time": clock(peak_at * TICK_S),
           "trigger": round(share, 3), "trigger_used": round(trigger, 3), "sla_held": True,
           "fixed_replicas": fixed, "replica_hours": round(hours, 2), "fixed_replica_hours": fixed * 24.0,
           "saving": round(1.0 - hours / (fixed * 24.0), 4), "schedule": schedule}
    if price_per_hour is not None:
        out.update(cost_per_day=round(hours * price_per_hour, 4), fixed_cost_per_day=round(fixed * 24 * price_per_hour, 4),
                   cost_per_million=round(hours * price_per_hour / requests * 1e6, 6),
                   fixed_cost_per_million=round(fixed * 24 * price_per_hour / requests * 1e6, 6))
    if share < utilization:
        out["warning"] = (f"the profile ramps faster than a replica can start: the load grows by up to "
                          f"{pct(1 / share - 1)} within one cold start ({cold:g} s), more than the {pct(1 / utilization - 1)} "
                          f"headroom of serving.utilization {pct(utilization)}; the autoscaler must target {pct(share)}, "
                          f"or raise min_replicas ahead of the ramp on a schedule")
    out["recommendation"] = sentence(out)
    return out


def pct(share: float) -> str:
    """A share as whole percent, rounded down (a trigger of 99.8 % is not 100 %)."""
    return f"{math.floor(share * 100 + 1e-9):.0f} %"


def ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def sentence(r: Dict) -> str:
    """The recommendation in words, from ``recommend``'s figures."""
    sla = (f"within the p99 SLA of {r['sla_p99_ms']:g} ms" if r.get("sla_p99_ms") else
           f"at {r['capacity_rps']:.0f} requests/s per replica (no p99 SLA set)")
    low, high = r["replicas_95"], r["max_replicas"]
    peak = (f"a {ordinal(high)} covers" if high == low + 1 else f"{high} cover" if high > low else "they cover")
    cold = f"the cold start of {r['cold_start_s']:g} s" + (" (assumed: not measured)" if r["cold_start_assumed"] else "")
    share, target = pct(r["trigger"]), pct(r["utilization"])
    when = (f"at {share} of capacity" if r["trigger"] < r["utilization"] else
            f"by {share} of capacity (serving.utilization's {target} target starts it earlier)")
    text = (f"{low} replica{'s' * (low != 1)} serve{'s' * (low == 1)} 95 % of the day's traffic {sla}; {peak} the peak "
            f"of {r['profile_peak_rps']:g} requests/s at {r['peak_time']}; with {cold} the scale-up must begin {when}")
    cost = (f"${r['cost_per_day']:.2f}/day (${r['cost_per_million']:.4f} per 1M requests) against "
            f"${r['fixed_cost_per_day']:.2f}" if "cost_per_day" in r else
            f"{r['replica_hours']:g} replica-hours/day against {r['fixed_replica_hours']:g}")
    return (f"{text}. Autoscaled between {r['min_replicas']} and {high} replicas it costs {cost} for a fixed fleet "
            f"of {r['fixed_replicas']}: {pct(abs(r['saving']))} {'less' if r['saving'] >= 0 else 'more'}" + (f". Warning: {r['warning']}" if "warning" in r else ""))


def for_run(cfg, capacity: Optional[float], cold_start_s: Optional[float], sla_ms: Optional[float]) -> Dict:
    """The summary's ``scaling`` block for ``serving.traffic`` (empty for ``profile: none`` or no capacity)."""
    rate = profile(cfg.serving.traffic)
    if rate is None or not capacity or capacity <= 0:
        return {}
    return {"profile": cfg.serving.traffic.profile,
            **recommend(rate, capacity, cfg.serving.utilization, cold_start_s, cfg.serving.traffic.step_minutes,
                        cfg.hardware.price_per_hour, sla_ms)}


def manifest_replicas(cost: Dict, scaling: Dict) -> Dict:
    """``cost`` with the manifests' replica range from the traffic profile where there is one: min = the trough's
    replicas (the trigger starts every ramp's replicas in time, so more at night buys nothing), max = the peak's;
    the autoscaler's target utilisation is the trigger (below ``serving.utilization`` when the profile ramps fast)."""
    if not scaling:
        return cost
    return {**cost, "min_replicas": scaling["min_replicas"], "max_replicas": scaling["max_replicas"],
            "trigger_used": scaling["trigger_used"],
            "replicas_from": f"serving.traffic ({scaling['profile']}): the trough's and the peak's replicas"}
