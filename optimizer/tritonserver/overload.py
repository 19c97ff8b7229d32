"""Overload check on the real server: does the emitted queue policy hold the SLA past capacity?

Run by the smoke test once it has measured a replica's capacity (``serve_check``'s open-loop search) and the
model has a queue policy: open-loop Poisson traffic at ``factor`` × that capacity for a few seconds. The p99 of
the admitted (answered) requests should stay within the SLA while the excess is rejected. The in-process
tuning cannot see what the server adds to a request under that load, so when the p99 misses, the run
shortens the queue policies from the measurement (``tune.tighten``), rewrites the config and probes again
on a fresh server; ``summary.json`` and tuning.md give both probes.

The load generator runs on the same machine as the server (loopback only), so what it costs the cores is
in the figures: on a dedicated server the real margin is larger. A ``stalls.StallWatch`` runs beside every
probe; a probe that misses while the host stalled is sent again before the re-tuning reads it (a stall of the
whole machine moves the p99 whatever the queue policy)."""

import shutil
from pathlib import Path
from typing import Callable, Dict, Optional, Tuple

from optimizer.tritonserver.loadtest import _infer_request

SEED = 7
MAX_RETUNES = 4  # re-tunes after the smoke test's probe (each re-probed on a fresh server)
STALL_RESENDS = 2  # a probe that missed while the host stalled is sent again, at most this often
LOW = 0.7  # a probe that held under this share of the SLA rejected more than it needed: the search goes on


def _client(args) -> Dict:
    """One tier's open-loop client, in its own process (``tiered``), started at the wall-clock ``start_at``."""
    import time

    from optimizer.tritonserver.loadgen import open_loop

    url, model, payload, rate, seconds, seed, start_at = args
    time.sleep(max(0.0, start_at - time.time()))
    return open_loop(url, model, payload, rate, int(rate * seconds * 1.2) + 10, seconds, seed=seed)


def tiered(url: str, model: str, payloads: Dict[str, bytes], rate: float, seconds: float,
           seed: int = SEED) -> Dict[str, Dict]:
    """``rate`` split evenly over the tiers, each tier's Poisson arrivals sent by its own process, as separate
    callers are (one client loop holding thousands of slow batch-tier requests delays the premium answers it
    reads: measured, 190-246 ms of client lag); one ``loadgen.open_loop`` record per tier."""
    import multiprocessing
    import time

    start_at = time.time() + 4.0  # spawning and importing the clients
    jobs = [(url, model, p, rate / len(payloads), seconds, seed + i, start_at) for i, p in enumerate(payloads.values())]
    with multiprocessing.get_context("spawn").Pool(len(jobs)) as pool:
        return dict(zip(payloads, pool.map(_client, jobs)))


def _within(p99: Optional[float], sla: Optional[float], margin: float = 0.0) -> bool:
    return sla is None or (p99 is not None and p99 <= sla * (1.0 - margin))


def _high(r: Dict) -> Optional[float]:
    """The upper end of a probe's p99 interval (the p99 itself when the sample is too small to bound it)."""
    high = (r.get("p99_ci_ms") or [None, None])[1]
    return high if high is not None else r["p99_ms"]


def probe(url: str, model: str, sample: Dict, sla_ms: float, capacity: float, factor: float, seconds: float,
          tiers: Optional[Dict] = None) -> Dict:
    """``factor`` × ``capacity`` one-sample requests/s for ``seconds`` (``loadgen.open_loop``); the record with
    ``within_sla`` (the admitted requests' p99 ≤ ``sla_ms``), ``with_margin`` (the p99's whole 95 % interval ≤ the
    SLA less ``tune.OVERLOAD_MARGIN``: what the re-tuning aims for) and ``rejected_share``. With QoS ``tiers``
    (``{name: {"priority", "p99_ms"}}``, as ``serve_check._slas`` gives them) the rate is split evenly over the
    tiers: ``tiers`` holds each tier's record, ``within_sla`` is every SLA tier within its own SLA, and the
    top-level figures are the tightest tier's (its SLA is the one the default policy was tuned for).
    ``host_stalls`` is what a ``stalls.StallWatch`` saw meanwhile."""
    from optimizer.tritonserver.stalls import StallWatch

    with StallWatch() as watch:
        r = _probe(url, model, sample, sla_ms, capacity, factor, seconds, tiers)
    r["host_stalls"] = watch.summary()
    return r


def _probe(url: str, model: str, sample: Dict, sla_ms: float, capacity: float, factor: float, seconds: float,
           tiers: Optional[Dict]) -> Dict:
    from optimizer.tritonserver.loadgen import open_loop
    from optimizer.triton.tune import OVERLOAD_MARGIN

    rate = factor * capacity
    if tiers:
        per = tiered(url, model, {n: _infer_request(model, sample, t["priority"]) for n, t in tiers.items()},
                      rate, seconds)
        for n, r in per.items():
            limit = tiers[n]["p99_ms"]
            r.update(sla_p99_ms=limit, within_sla=_within(r["p99_ms"], limit),
                     with_margin=_within(_high(r), limit, OVERLOAD_MARGIN))
        tight = min((n for n in tiers if tiers[n]["p99_ms"] is not None), key=lambda n: tiers[n]["p99_ms"])
        r = {**per[tight], "tier": tight, "tiers": per, "within_sla": all(x["within_sla"] for x in per.values()),
             "with_margin": all(x["with_margin"] for x in per.values())}
        sla_ms = tiers[tight]["p99_ms"]
    else:
        r = open_loop(url, model, _infer_request(model, sample), rate, int(rate * seconds * 1.2) + 10, seconds,
                      seed=SEED)
        r.update(within_sla=_within(r["p99_ms"], sla_ms), with_margin=_within(_high(r), sla_ms, OVERLOAD_MARGIN))
    r.update(factor=factor, capacity_rps=capacity, sla_p99_ms=sla_ms,
             rejected_share=round(r["rejected"] / max(r["requests"], 1), 3), unanswered=r["errors"] - r["rejected"])
    return r


def serve_and_probe(repository: Path, model: str, sla_ms: float, capacity: float, factor: float, seconds: float,
                    install=None) -> Dict:
    """Serve ``repository`` on a fresh server, warm it at a quarter of ``capacity`` for half a second, then
    ``probe`` (with the tiers in its tuning.json); a record with ``error`` instead when the server or the client
    failed."""
    from optimizer.tritonserver.loadgen import open_loop
    from optimizer.tritonserver.serve_check import _reference, _slas
    from optimizer.tritonserver.server import ServerError, serve

    server, _, tmp = serve(Path(repository), install)
    try:
        server.wait_ready(model)
        inputs, _, _ = _reference(Path(repository) / model)
        sample = {k: v[:1] for k, v in inputs.items()}
        open_loop(server.grpc_url, model, _infer_request(model, sample), capacity * 0.25, max(10, int(capacity * 0.25)),
                  0.5, seed=SEED + 1)
        return probe(server.grpc_url, model, sample, sla_ms, capacity, factor, seconds,
                     _slas(Path(repository) / model, None)["tiers"])
    except (ServerError, ValueError) as e:
        return {"error": str(e), "within_sla": False}
    except Exception as e:  # the client's own errors name the model and the cause
        return {"error": f"{type(e).__name__}: {e}", "within_sla": False}
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def _stalls(r: Dict) -> str:
    """What the stall watcher saw during a probe, and the probes sent again for it; '' when nothing."""
    from optimizer.tritonserver.stalls import stalled

    h = r.get("host_stalls")
    out = f"; the host stalled {h['count']}× (longest {h['max_ms']:.0f} ms)" if stalled(h) else ""
    for old in r.get("resent_after_stalls", []):
        out += (f"; sent again after a probe at p99 {old['p99_ms']} ms while the host stalled "
                f"{old['host_stalls']['count']}× (longest {old['host_stalls']['max_ms']:.0f} ms)")
    return out


def line(r: Optional[Dict]) -> str:
    """One line for tuning.md and the console."""
    if not r:
        return "not run"
    if r.get("error"):
        return f"failed: {r['error']}"
    return _line(r) + _stalls(r)


def _line(r: Dict) -> str:
    if r.get("tiers"):
        return (f"{sum(t['rate_sent'] for t in r['tiers'].values()):.0f}/s sent ({r['factor']}× "
                f"{r['capacity_rps']:.0f}/s, an equal share per tier) for {r['seconds']:.1f} s: "
                + "; ".join(f"{n}: p99 {t['p99_ms']} ms [95 %: {t['p99_ci_ms'][0]}–{t['p99_ci_ms'][1]}]"
                            + (f" {'within' if t['within_sla'] else 'OVER'} its SLA {t['sla_p99_ms']} ms"
                               if t["sla_p99_ms"] is not None else " (no SLA)")
                            + f", {100 * t['rejected'] / max(t['requests'], 1):.1f} % rejected, client lag p99 "
                              f"{t['send_lag_p99_ms']} ms"
                            for n, t in r["tiers"].items()))
    return (f"{r['rate_sent']:.0f}/s sent ({r['factor']}× {r['capacity_rps']:.0f}/s) for {r['seconds']:.1f} s: "
            f"admitted p99 {r['p99_ms']} ms [95 %: {r['p99_ci_ms'][0]}–{r['p99_ci_ms'][1]}] "
            f"{'within' if r['within_sla'] else 'OVER'} the SLA {r['sla_p99_ms']} ms, "
            f"{100 * r['rejected_share']:.1f} % rejected, client lag p99 {r['send_lag_p99_ms']} ms")


def _own(r: Dict) -> float:
    """A request's own time under overload from a probe: its admitted p99, less the wait its policy gave it. The
    p99 is the lower end of its 95 % interval when there is one (a short probe's p99 can spike; the re-probe
    catches a p99 still over)."""
    low = (r.get("p99_ci_ms") or [None])[0]
    return max(0.0, (low if low is not None else r["p99_ms"]) - (r["wait_budget_ms"] or 0.0))


def check_and_retune(smoke: Dict, name: str, values: Dict, rewrite: Callable[[Dict], None], repository: Path,
                     seconds: float) -> Tuple[Optional[Dict], Dict]:
    """``(record, values)`` after the smoke test: the overload probes of ``name`` and the values in force.

    A probe *holds* for this search when its p99's 95 % interval is within the SLA less ``tune.OVERLOAD_MARGIN`` (a
    short probe that holds at 49 ms of a 50 ms SLA misses in the next 8 s as often as not; one at 43.6 ms whose
    interval reached 45.9 ms was followed by 47-52 ms). A probe that does not hold while
    the host stalled (``stalls``) is sent again on a fresh server, at most ``STALL_RESENDS`` times, before it
    counts. The smoke test's probe ran on the policies as first tuned. When it did not hold, the policies are
    re-derived (``tune.tighten``), written with ``rewrite(values)`` and probed again on a fresh server, at
    most ``MAX_RETUNES`` times. Until one holds, the wait budget comes from the request's own time the last
    probe showed; once one held and one with a longer wait missed, it is halfway between the two (the
    server's behaviour past capacity is not smooth enough for the formula: a wait 10 ms longer can turn a
    35 ms p99 into 73 ms). With QoS tiers, once a tier misses at the shortest wait it may have (one running
    execution), ``tune.halve_batch`` halves ``max_batch_size`` instead. It stops once a probe held with at
    least ``LOW`` × the SLA (little left to gain). The held values with the largest batch and the longest wait
    (fewest rejections) stay in force, else those within the SLA at all, else those whose p99 came closest;
    ``held`` says whether the ones in force kept the SLA."""
    from optimizer.tritonserver.stalls import stalled
    from optimizer.triton.tune import OVERLOAD_MARGIN, halve_batch, tighten

    first = ((smoke or {}).get("models", {}).get(name) or {}).get("overload")
    if not first:
        return None, values

    def entry(v: Dict, r: Dict) -> Dict:
        return {"timeout_us": v.get("queue_timeout_us"), "max_queue_size": v.get("max_queue_size"),
                "wait_budget_ms": v.get("queue_wait_budget_ms"), "max_batch_size": v.get("max_batch_size"), **r}

    sla, cap = first["sla_p99_ms"], first["capacity_rps"]
    good = lambda p: p.get("with_margin", p["within_sla"])  # noqa: E731 - held with the margin to spare

    def steady(r: Dict) -> Dict:
        """``r``, or the probe sent again (on the values now written) when ``r`` missed while the host stalled."""
        resent = []
        while not good(r) and stalled(r.get("host_stalls")) and len(resent) < STALL_RESENDS:
            resent.append({k: r.get(k) for k in ("p99_ms", "p99_ci_ms", "host_stalls")})
            r = serve_and_probe(repository, name, sla, cap, first["factor"], seconds)
        return {**r, "resent_after_stalls": resent} if resent else r

    tried = [(values, entry(values, steady(first)))]
    for _ in range(MAX_RETUNES if not good(tried[0][1]) else 0):
        current, last = tried[-1]
        if last.get("error") or last.get("p99_ms") is None or (good(last) and last["p99_ms"] >= LOW * sla):
            break
        same = [p for _, p in tried if p["max_batch_size"] == current.get("max_batch_size")]
        held = [p["wait_budget_ms"] for p in same if good(p)]
        if held:
            longest = max(held)
            missed = min((p["wait_budget_ms"] for p in same if not good(p) and p["wait_budget_ms"] > longest),
                         default=None)
            if missed is None:  # nothing longer missed: no bracket to halve
                break
            own = sla * (1 - OVERLOAD_MARGIN) - (longest + missed) / 2
        else:
            own = _own(last)
        new = tighten(current, own, cap)
        if any(new["queue_wait_budget_ms"] == p["wait_budget_ms"] for p in same):  # the shortest wait was probed
            new = halve_batch(current) if current.get("tiers") and not held else None
            if new is None:
                break
        rewrite(new)
        tried.append((new, entry(new, steady(serve_and_probe(repository, name, sla, cap, first["factor"], seconds)))))
    for ok in (good, lambda p: p["within_sla"]):  # held with the margin, else within the SLA at all
        held = [i for i, (_, p) in enumerate(tried) if ok(p)]
        if held:
            final = max(held, key=lambda i: (tried[i][1]["max_batch_size"] or 0, tried[i][1]["wait_budget_ms"] or 0.0))
            break
    else:  # none held: the policies whose p99 came closest
        final = min(range(len(tried)), key=lambda i: tried[i][1].get("p99_ms") or float("inf"))
    if final != len(tried) - 1:
        rewrite(tried[final][0])  # back to the held values with the longest wait
    return ({"factor": first["factor"], "probes": [p for _, p in tried], "held": bool(tried[final][1]["within_sla"]),
             "in_force": final},
            tried[final][0])
