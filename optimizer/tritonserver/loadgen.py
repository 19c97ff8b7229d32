"""Load generation against a tritonserver on the loopback interface, and the statistics of its answers.

- ``p99_interval``: a distribution-free confidence interval for a latency quantile from order statistics
  (the ranks a binomial count puts around ``n × q``), so a p99 read from too few requests shows as such.
- ``open_loop``: requests sent at Poisson arrival times at a fixed rate, whether or not earlier ones
  have been answered (what real traffic does, unlike closed-loop workers that slow down with the
  server), bounded in count and in time; the send timestamps are kept to check the rate achieved.
- ``find_capacity``: steps the rate up and keeps the highest one served within the SLA, without a rejected
  request, at the rate asked."""

import asyncio
import functools
import math
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
CONFIDENCE = 0.95


def _binom_cdf(n: int, q: float) -> np.ndarray:
    """``cdf[k]`` = P(Binomial(n, q) ≤ k) for k = 0..n, from the log pmf (n of a few thousand)."""
    k = np.arange(n + 1)
    lgamma = np.vectorize(math.lgamma)
    log_pmf = lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1) + k * math.log(q) + (n - k) * math.log1p(-q)
    return np.minimum(1.0, np.cumsum(np.exp(log_pmf)))


@functools.lru_cache(maxsize=64)
def quantile_ranks(n: int, q: float = 0.99, confidence: float = CONFIDENCE) -> Tuple[Optional[int], Optional[int]]:
    """1-based ranks ``(l, u)`` of the sorted sample with P(x_(l) ≤ true q-quantile ≤ x_(u)) ≥ ``confidence``;
    ``None`` for a side the sample is too small to bound (e.g. the upper side of a p99 from 200 values)."""
    alpha = (1 - confidence) / 2
    cdf = _binom_cdf(n, q)  # P(x_(r) ≤ quantile) = P(B ≥ r) = 1 - cdf[r - 1]
    lows = [r for r in range(1, n + 1) if cdf[r - 1] <= alpha]
    highs = [r for r in range(1, n + 1) if cdf[r - 1] >= 1 - alpha]
    return (lows[-1] if lows else None), (highs[0] if highs else None)


def p99_interval(latencies_ms: Sequence[float], q: float = 0.99, confidence: float = CONFIDENCE) -> List[Optional[float]]:
    """``[low, high]`` milliseconds bracketing the true ``q``-quantile with ``confidence``; ``None`` where unbounded."""
    x = np.sort(np.asarray(latencies_ms, dtype=float))
    if len(x) == 0:
        return [None, None]
    lo, hi = quantile_ranks(len(x), q, confidence)
    return [round(float(x[lo - 1]), 3) if lo else None, round(float(x[hi - 1]), 3) if hi else None]


def is_rejection(error: str) -> bool:
    """The server's queue policy refused the request ('Exceeds maximum queue size', 'Request timeout expired'),
    as opposed to a broken request or answer."""
    e = error.lower()
    return "maximum queue size" in e or "timeout expired" in e


def check_loopback(url: str) -> None:
    """Load is only ever sent to a server on this machine."""
    host = url.rsplit(":", 1)[0]
    if host not in LOOPBACK:
        raise ValueError(f"load tests run against a local server only (127.0.0.1), not {url!r}")


def arrival_times(rate: float, count: int, seed: int = 0) -> np.ndarray:
    """Seconds from the start at which ``count`` Poisson arrivals at ``rate`` per second happen."""
    if rate <= 0 or count < 1:
        raise ValueError(f"need a positive rate and count, got {rate}, {count}")
    return np.cumsum(np.random.default_rng(seed).exponential(1.0 / rate, count))


def open_loop(url: str, model: str, payload: bytes, rate: float, max_requests: int, max_seconds: float,
              seed: int = 0, keep_times: bool = False) -> Dict:
    """Send ``payload`` (a serialized ModelInferRequest) at Poisson arrivals of ``rate``/s over gRPC.

    Bounded: at most ``max_requests`` sends, none after ``max_seconds``, and answers still missing
    ``max_seconds`` after the last send are cancelled and counted as errors. The record has the rate
    asked and the rate sent (sends ÷ the span of their timestamps), p50/p99 with the p99's interval,
    and the errors, of which ``rejected`` are the server's refusals (a full queue or a timed-out request);
    ``keep_times`` adds the send timestamps (seconds from the start) as ``sent_at``."""
    import grpc

    check_loopback(url)
    schedule = arrival_times(rate, max_requests, seed)
    schedule = schedule[schedule <= max_seconds]
    sent_at: List[float] = []
    latencies: List[float] = []
    errors: List[str] = []

    async def one(infer) -> None:
        start = time.perf_counter()
        try:
            await infer(payload)
            latencies.append(time.perf_counter() - start)
        except grpc.aio.AioRpcError as e:
            errors.append(e.details() or str(e.code()))

    async def run() -> float:
        async with grpc.aio.insecure_channel(url) as channel:
            infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
            tasks, t0 = [], time.perf_counter()
            for due in schedule:
                delay = t0 + due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                now = time.perf_counter() - t0
                if now > max_seconds:  # a late client does not stretch the level past its bound
                    break
                sent_at.append(now)
                tasks.append(asyncio.ensure_future(one(infer)))
            done, pending = await asyncio.wait(tasks, timeout=max_seconds) if tasks else (set(), set())
            for task in pending:
                task.cancel()
            errors.extend(["no answer in time"] * len(pending))
            return time.perf_counter() - t0

    elapsed = asyncio.run(run())
    record = summarize(rate, sent_at, latencies, errors, elapsed, schedule[:len(sent_at)])
    return {**record, "sent_at": [round(t, 6) for t in sent_at]} if keep_times else record


def _rate(times: Sequence[float]) -> float:
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return round((len(times) - 1) / span, 1) if span > 0 else 0.0


def summarize(rate: float, sent_at: Sequence[float], latencies_s: Sequence[float], errors: Sequence[str],
              elapsed: float, scheduled: Optional[Sequence[float]] = None) -> Dict:
    """The record of one open-loop level. ``rate_scheduled`` is the rate of the Poisson draw itself (a short
    level's draw is off the rate asked by chance), ``rate_sent`` the rate of the actual sends, and
    ``send_lag_p99_ms`` how late the client sent (a client that cannot keep up falls behind its schedule)."""
    scheduled = sent_at if scheduled is None else scheduled
    lag = (np.asarray(sent_at) - np.asarray(scheduled)) * 1e3
    ms = np.asarray(latencies_s) * 1e3
    rejected = [e for e in errors if is_rejection(e)]
    return {"rate_asked": round(rate, 1), "requests": len(sent_at),
            "rate_scheduled": _rate(scheduled), "rate_sent": _rate(sent_at),
            "send_lag_p99_ms": round(float(np.percentile(lag, 99)), 3) if len(lag) else None,
            "answered": len(ms), "errors": len(errors), "rejected": len(rejected), "seconds": round(elapsed, 3),
            "p50_ms": round(float(np.percentile(ms, 50)), 3) if len(ms) else None,
            "p99_ms": round(float(np.percentile(ms, 99)), 3) if len(ms) else None,
            "p99_ci_ms": p99_interval(ms), **({"first_error": errors[0]} if errors else {})}


def level_ok(r: Dict, sla_ms: float, rate_tolerance: float = 0.1) -> Tuple[bool, str]:
    """Whether one open-loop level was served: no error, p99 within the SLA, the scheduled rate actually sent."""
    if r["errors"]:
        return False, f"{r['errors']} failed ({r['rejected']} rejected): {r.get('first_error')}"
    if r["p99_ms"] is None or r["p99_ms"] > sla_ms:
        return False, f"p99 {r['p99_ms']} ms > SLA {sla_ms} ms"
    if r["rate_sent"] < (1 - rate_tolerance) * r["rate_scheduled"]:
        return False, (f"the client sent only {r['rate_sent']}/s of the {r['rate_scheduled']}/s scheduled "
                       f"(client-bound)")
    return True, "served"


def find_capacity(url: str, model: str, payload: bytes, sla_ms: float, estimate: float,
                  fractions: Sequence[float] = (0.25, 0.5, 0.7, 0.85, 1.0, 1.2, 1.4), seconds: float = 2.0,
                  max_requests: int = 6000) -> Dict:
    """Step the open-loop rate through ``fractions`` of ``estimate`` (requests/s); the highest rate served
    (``level_ok``) before the first that is not is the measured capacity (0 when the first level fails).
    A level that misses is sent once more before it counts (one stall on a shared machine would otherwise
    end the search early: a 636/s step missed once where the server held 772/s a minute before). After a
    miss that follows a served step, the midpoint of the two is tried once (a finer figure)."""
    levels: List[Dict] = []

    def once(rate: float) -> bool:
        r = open_loop(url, model, payload, rate, min(max_requests, max(10, int(rate * seconds))), seconds,
                      seed=len(levels))
        ok, r["verdict"] = level_ok(r, sla_ms)
        levels.append(r)
        return ok

    def step(rate: float) -> bool:
        if once(rate):
            return True
        levels[-1]["verdict"] += "; sent again"
        return once(rate)

    capacity, why = 0.0, "every level served"
    for f in fractions:
        rate = estimate * f
        if not step(rate):
            why = f"at {rate:.0f}/s: {levels[-1]['verdict']}"
            if capacity and step((capacity + rate) / 2):
                capacity = (capacity + rate) / 2
            break
        capacity = rate
    return {"capacity_rps": round(capacity, 1), "sla_p99_ms": sla_ms, "estimate_rps": round(estimate, 1),
            "stopped": why, "levels": levels}
