"""Overload check on the real server: does the emitted queue policy hold the SLA past capacity?

Run by the smoke test once it has measured a replica's capacity (``serve_check``'s open-loop search) and the
model has a queue policy: open-loop Poisson traffic at ``factor`` × that capacity for a few seconds. The p99 of
the admitted (answered) requests should stay within the SLA while the excess is rejected. The in-process
tuning cannot see what the server adds to a request under that load, so when the p99 misses, the Triton target
re-tunes the queue policies from the measurement (``optimizer.triton.retune``), rewrites the config and probes
again on a fresh server (``serve_and_probe``); ``summary.json`` and tuning.md give every probe.

The load generator runs on the same machine as the server (loopback only), so what it costs the cores is
in the figures: on a dedicated server the real margin is larger. A ``stalls.StallWatch`` runs beside every
probe; a probe that misses while the host stalled is sent again before the re-tuning reads it (a stall of the
whole machine moves the p99 whatever the queue policy)."""

import shutil
from pathlib import Path
from typing import Dict, Optional

from optimizer.tritonserver.expected import OVERLOAD_MARGIN, Sla, reference
from optimizer.tritonserver.loadtest import infer_request

SEED = 7


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


def within(p99: Optional[float], sla: Optional[float], margin: float = 0.0) -> bool:
    return sla is None or (p99 is not None and p99 <= sla * (1.0 - margin))


def high(r: Dict) -> Optional[float]:
    """The upper end of a probe's p99 interval (the p99 itself when the sample is too small to bound it)."""
    high = (r.get("p99_ci_ms") or [None, None])[1]
    return high if high is not None else r["p99_ms"]


def probe(url: str, model: str, sample: Dict, sla_ms: float, capacity: float, factor: float, seconds: float,
          tiers: Optional[Dict] = None) -> Dict:
    """``factor`` × ``capacity`` one-sample requests/s for ``seconds`` (``loadgen.open_loop``); the record with
    ``within_sla`` (the admitted requests' p99 ≤ ``sla_ms``), ``with_margin`` (the p99's whole 95 % interval ≤ the
    SLA less ``OVERLOAD_MARGIN``: what the re-tuning aims for) and ``rejected_share``. With QoS ``tiers``
    (``{name: {"priority", "p99_ms"}}``, as ``Sla.tier_dicts`` gives them) the rate is split evenly over the
    tiers: ``tiers`` holds each tier's record, ``within_sla`` is every SLA tier within its own SLA, and the
    top-level figures are the tightest tier's (its SLA is the one the default policy was tuned for).
    ``host_stalls`` is what a ``stalls.StallWatch`` saw meanwhile."""
    from optimizer.tritonserver.stalls import watched

    return watched(lambda: _probe(url, model, sample, sla_ms, capacity, factor, seconds, tiers))


def _probe(url: str, model: str, sample: Dict, sla_ms: float, capacity: float, factor: float, seconds: float,
           tiers: Optional[Dict]) -> Dict:
    from optimizer.tritonserver.loadgen import open_loop

    rate = factor * capacity
    if tiers:
        per = tiered(url, model, {n: infer_request(model, sample, t["priority"]) for n, t in tiers.items()},
                      rate, seconds)
        for n, r in per.items():
            limit = tiers[n]["p99_ms"]
            r.update(sla_p99_ms=limit, within_sla=within(r["p99_ms"], limit),
                     with_margin=within(high(r), limit, OVERLOAD_MARGIN))
        tight = min((n for n in tiers if tiers[n]["p99_ms"] is not None), key=lambda n: tiers[n]["p99_ms"])
        r = {**per[tight], "tier": tight, "tiers": per, "within_sla": all(x["within_sla"] for x in per.values()),
             "with_margin": all(x["with_margin"] for x in per.values())}
        sla_ms = tiers[tight]["p99_ms"]
    else:
        r = open_loop(url, model, infer_request(model, sample), rate, int(rate * seconds * 1.2) + 10, seconds,
                      seed=SEED)
        r.update(within_sla=within(r["p99_ms"], sla_ms), with_margin=within(high(r), sla_ms, OVERLOAD_MARGIN))
    r.update(factor=factor, capacity_rps=capacity, sla_p99_ms=sla_ms,
             rejected_share=round(r["rejected"] / max(r["requests"], 1), 3), unanswered=r["errors"] - r["rejected"])
    return r


def serve_and_probe(repository: Path, model: str, sla: Sla, capacity: float, factor: float, seconds: float,
                    install=None) -> Dict:
    """Serve ``repository`` on a fresh server, warm it at a quarter of ``capacity`` for half a second, then
    ``probe`` at ``sla``'s p99 (and its tiers); a record with ``error`` instead when the server or the client
    failed."""
    from optimizer.tritonserver.loadgen import open_loop
    from optimizer.tritonserver.server import ServerError, serve

    server, _, tmp = serve(Path(repository), install)
    try:
        server.wait_ready(model)
        inputs, _, _ = reference(Path(repository) / model)
        sample = {k: v[:1] for k, v in inputs.items()}
        open_loop(server.grpc_url, model, infer_request(model, sample), capacity * 0.25, max(10, int(capacity * 0.25)),
                  0.5, seed=SEED + 1)
        return probe(server.grpc_url, model, sample, sla.p99_ms, capacity, factor, seconds, sla.tier_dicts())
    except (ServerError, ValueError) as e:
        return {"error": str(e), "within_sla": False}
    except Exception as e:  # the client's own errors name the model and the cause
        return {"error": f"{type(e).__name__}: {e}", "within_sla": False}
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def stall_notes(r: Dict) -> str:
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
    return _line(r) + stall_notes(r)


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
