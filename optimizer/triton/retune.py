"""The overload check's re-tune: when the smoke test's overload probe (``tritonserver.overload``) did not hold,
shorten the queue policies from what the server showed (``tune.tighten``, ``tune.halve_batch``), rewrite the
config and probe again on a fresh server, and keep the values that held best.

A probe *holds* for this search when its p99's 95 % interval is within the SLA less ``OVERLOAD_MARGIN`` (a short
probe that holds at 49 ms of a 50 ms SLA misses in the next 8 s as often as not; one at 43.6 ms whose interval
reached 45.9 ms was followed by 47-52 ms). A probe that does not hold while the host stalled
(``tritonserver.stalls``) is sent again on a fresh server, at most ``STALL_RESENDS`` times, before it counts."""

import functools
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from optimizer.triton.tune import OVERLOAD_MARGIN, Tuning, halve_batch, tighten
from optimizer.tritonserver import overload
from optimizer.tritonserver.expected import Sla
from optimizer.tritonserver.stalls import RESENDS as STALL_RESENDS, resend_while_stalled  # noqa: F401 (tests)

MAX_RETUNES = 4  # re-tunes after the smoke test's probe (each re-probed on a fresh server)
LOW = 0.7  # a probe that held under this share of the SLA rejected more than it needed: the search goes on

Tried = List[Tuple[Tuning, Dict]]  # the values probed, each with its probe record


def good(p: Dict) -> bool:
    """Held with the margin to spare (``within_sla`` for a probe that has no ``with_margin``)."""
    return p.get("with_margin", p["within_sla"])


def own_time(r: Dict) -> float:
    """A request's own time under overload from a probe: its admitted p99, less the wait its policy gave it. The
    p99 is the lower end of its 95 % interval when there is one (a short probe's p99 can spike; the re-probe
    catches a p99 still over)."""
    low = (r.get("p99_ci_ms") or [None])[0]
    return max(0.0, (low if low is not None else r["p99_ms"]) - (r["wait_budget_ms"] or 0.0))


def _entry(v: Tuning, r: Dict) -> Dict:
    """A probe record with the policies it ran with."""
    return {"timeout_us": v.queue_timeout_us, "max_queue_size": v.max_queue_size,
            "wait_budget_ms": v.queue_wait_budget_ms, "max_batch_size": v.max_batch_size, **r}


class _Prober:
    """Probes ``name`` in ``repository`` on a fresh server, sending again a probe that missed while the host
    stalled."""

    def __init__(self, repository: Path, name: str, sla: Sla, first: Dict, seconds: float):
        self.repository, self.name, self.sla, self.seconds = repository, name, sla, seconds
        self.capacity, self.factor = first["capacity_rps"], first["factor"]

    def probe(self) -> Dict:
        return self.steady(overload.serve_and_probe(self.repository, self.name, self.sla, self.capacity, self.factor,
                                                    self.seconds))

    def steady(self, r: Dict) -> Dict:
        """``r``, or the probe sent again (on the values now written) when ``r`` missed while the host stalled."""
        send = functools.partial(overload.serve_and_probe, self.repository, self.name, self.sla, self.capacity,
                                 self.factor, self.seconds)
        return resend_while_stalled(send, lambda p: not good(p), ("p99_ms", "p99_ci_ms", "host_stalls"), first=r)


def next_values(tried: Tried, sla_ms: float, capacity: float) -> Optional[Tuning]:
    """The values to probe next, or None when the search is over. Until one held, the wait budget comes from the
    request's own time the last probe showed; once one held and one with a longer wait missed, it is halfway
    between the two (a wait 10 ms longer can turn a 35 ms p99 into 73 ms). With QoS tiers, once a tier misses
    at the shortest wait it may have, the batch is halved instead."""
    current, last = tried[-1]
    if last.get("error") or last.get("p99_ms") is None or (good(last) and last["p99_ms"] >= LOW * sla_ms):
        return None
    same = [p for _, p in tried if p["max_batch_size"] == current.max_batch_size]
    held = [p["wait_budget_ms"] for p in same if good(p)]
    if held:
        longest = max(held)
        missed = min((p["wait_budget_ms"] for p in same if not good(p) and p["wait_budget_ms"] > longest),
                     default=None)
        if missed is None:  # nothing longer missed: no bracket to halve
            return None
        own = sla_ms * (1 - OVERLOAD_MARGIN) - (longest + missed) / 2
    else:
        own = own_time(last)
    new = tighten(current, own, capacity)
    if any(new.queue_wait_budget_ms == p["wait_budget_ms"] for p in same):  # the shortest wait was probed
        return halve_batch(current) if current.tiers and not held else None
    return new


def in_force(tried: Tried) -> int:
    """Which probed values stay: the held ones with the largest batch and the longest wait (fewest rejections),
    else those within the SLA at all, else those whose p99 came closest."""
    for ok in (good, lambda p: p["within_sla"]):
        held = [i for i, (_, p) in enumerate(tried) if ok(p)]
        if held:
            return max(held, key=lambda i: (tried[i][1]["max_batch_size"] or 0, tried[i][1]["wait_budget_ms"] or 0.0))
    return min(range(len(tried)), key=lambda i: tried[i][1].get("p99_ms") or float("inf"))


def check_and_retune(smoke: Dict, name: str, values: Tuning, rewrite: Callable[[Tuning], None], repository: Path,
                     seconds: float, sla: Sla) -> Tuple[Optional[Dict], Tuning]:
    """``(record, values)`` after the smoke test: the overload probes of ``name`` and the values in force.

    The smoke test's probe ran on the policies as first tuned. When it did not hold, the policies are
    re-derived (``next_values``), written with ``rewrite(values)`` and probed again on a fresh server, at most
    ``MAX_RETUNES`` times. It stops once a probe held with at least ``LOW`` × the SLA (little left to gain).
    ``in_force`` picks the values that stay (written back when they are not the last probed); ``held`` says
    whether they kept the SLA."""
    first = ((smoke or {}).get("models", {}).get(name) or {}).get("overload")
    if not first:
        return None, values
    prober = _Prober(repository, name, sla, first, seconds)
    tried: Tried = [(values, _entry(values, prober.steady(first)))]
    for _ in range(MAX_RETUNES if not good(tried[0][1]) else 0):
        new = next_values(tried, first["sla_p99_ms"], first["capacity_rps"])
        if new is None:
            break
        rewrite(new)
        tried.append((new, _entry(new, prober.probe())))
    final = in_force(tried)
    if final != len(tried) - 1:
        rewrite(tried[final][0])  # back to the held values with the longest wait
    return ({"factor": first["factor"], "probes": [p for _, p in tried], "held": bool(tried[final][1]["within_sla"]),
             "in_force": final},
            tried[final][0])
