"""The closed-loop load test serve_check runs on a served model: ``concurrency`` one-sample gRPC requests in
flight, bounded by count and time, with client-side percentiles (and their intervals), per QoS tier when
asked; plus the raw gRPC request encoding the open-loop generator (``loadgen.py``) sends too."""

import time
from typing import Callable, Dict, List, Optional

import numpy as np

from optimizer.tritonserver.loadgen import is_rejection


def infer_request(model: str, sample: Dict[str, np.ndarray], priority: int = 0) -> bytes:
    """A serialized gRPC ModelInferRequest carrying ``sample`` as raw tensor contents (and a priority level)."""
    from tritonclient.grpc import service_pb2
    from tritonclient.utils import np_to_triton_dtype

    request = service_pb2.ModelInferRequest(model_name=model)
    if priority:
        request.parameters["priority"].uint64_param = priority
    for name, a in sample.items():
        request.inputs.add(name=name, datatype=np_to_triton_dtype(a.dtype), shape=list(a.shape))
        request.raw_input_contents.append(np.ascontiguousarray(a).tobytes())
    return request.SerializeToString()


class _Tally:
    """What the closed-loop workers saw: each answered request's latency and tier, each error, each refusal's tier,
    and the CPU seconds used around the timed part."""

    def __init__(self):
        self.latencies: List[float] = []
        self.errors: List[str] = []
        self.tier_of: List[int] = []
        self.rejected_tier: List[int] = []  # the tier of each request the queue policy refused
        self.used: Dict[str, float] = {}

    def clear(self) -> None:
        for part in (self.latencies, self.errors, self.tier_of, self.rejected_tier):
            part.clear()


def _check(raw: bytes) -> None:
    """Refuse an answer without a non-empty tensor for each output."""
    from tritonclient.grpc import service_pb2

    response = service_pb2.ModelInferResponse.FromString(raw)
    if not response.outputs or len(response.raw_output_contents) != len(response.outputs) \
            or not all(response.raw_output_contents):
        raise ValueError(f"empty or incomplete answer: {len(response.raw_output_contents)} tensor(s) for "
                         f"{len(response.outputs)} output(s)")


async def _drive(url: str, payloads: List[bytes], concurrency: int, max_requests: int, max_seconds: float,
                 counters: Optional[Callable[[], Dict[str, float]]], tally: _Tally):
    """A warm-up (not counted), then ``concurrency`` closed-loop workers until the count or the time runs out;
    ``(requests sent, seconds)``."""
    import asyncio

    import grpc

    sent = 0
    async with grpc.aio.insecure_channel(url) as channel:
        infer = channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")  # bytes in, bytes out

        async def worker(limit, t0):
            nonlocal sent
            while sent < limit and time.perf_counter() - t0 < max_seconds:
                sent += 1
                tier = sent % len(payloads)
                start = time.perf_counter()
                try:
                    _check(await infer(payloads[tier]))
                    tally.latencies.append(time.perf_counter() - start)
                    tally.tier_of.append(tier)
                except (grpc.aio.AioRpcError, ValueError) as e:
                    tally.errors.append(e.details() if isinstance(e, grpc.aio.AioRpcError) else str(e))
                    if is_rejection(tally.errors[-1]):
                        tally.rejected_tier.append(tier)

        warm = min(concurrency * 2, max_requests)  # warm-up, not counted
        await asyncio.gather(*(worker(warm, time.perf_counter()) for _ in range(concurrency)))
        tally.clear()
        before, client_cpu = counters() if counters else {}, time.process_time()
        sent, t0 = 0, time.perf_counter()
        await asyncio.gather(*(worker(max_requests, t0) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
        tally.used["client_cpu_s"] = time.process_time() - client_cpu
        after = counters() if counters else {}
        tally.used.update({k: after[k] - before[k] for k in after.keys() & before.keys()})
        return sent, elapsed


def load_test(url: str, model: str, sample: Dict[str, np.ndarray], concurrency: int, max_requests: int,
              max_seconds: float, counters: Optional[Callable[[], Dict[str, float]]] = None,
              tiers: Optional[Dict[str, int]] = None) -> Dict:
    """Keep ``concurrency`` one-sample gRPC requests in flight; bounded by count and time. Client-side numbers.

    The client shares the machine with the server, so it is kept lean: one asyncio loop, ``concurrency``
    closed-loop workers on one grpc.aio channel, the request serialized once. Every answer is parsed and
    must carry a non-empty tensor for each output. (tritonclient's ``async_infer`` costs ~1.4x the CPU
    per request; on 2 cores that time is taken from the server under test.) The record has the client's
    CPU per answered request; with ``counters`` (``Server.counters``, sampled around the timed part) also
    the server's, and the average batch the scheduler formed (samples per execution). With ``tiers``
    (name -> priority level) the requests cycle through the tiers, and each tier's p50/p99 is reported."""
    import asyncio

    from optimizer.tritonserver.loadgen import check_loopback

    check_loopback(url)
    names = list(tiers or {"": 0})
    payloads = [infer_request(model, sample, (tiers or {}).get(n, 0)) for n in names]
    tally = _Tally()
    sent, elapsed = asyncio.run(_drive(url, payloads, concurrency, max_requests, max_seconds, counters, tally))
    return _record(tally, concurrency, sent, elapsed, names, tiers)


def steady_level(run: Callable[..., Dict], concurrency: int, missed: Callable[[Dict], bool]) -> Dict:
    """One closed-loop level (``run(concurrency=...)``), watched for host stalls (``stalls``); a level that
    ``missed`` its SLA while the host stalled is sent again, at most ``stalls.RESENDS`` times, as the overload probe
    is: CPUs taken from every process for tens of milliseconds say nothing of the configuration.
    ``resent_after_stalls`` keeps what missed."""
    from optimizer.tritonserver.stalls import resend_while_stalled, watched

    return resend_while_stalled(lambda: watched(lambda: run(concurrency=concurrency)), missed,
                                ("p99_ms", "p99_ci_ms", "rejected", "host_stalls"))


def _record(tally: _Tally, concurrency: int, sent: int, elapsed: float, names: List[str],
            tiers: Optional[Dict[str, int]]) -> Dict:
    """The load test's JSON-ready record from what the workers saw."""
    ms = np.asarray(tally.latencies) * 1e3
    refused = np.asarray(tally.rejected_tier)
    errors, used = tally.errors, tally.used
    record = {"concurrency": concurrency, "requests": sent, "errors": len(errors), "rejected": len(refused),
              "seconds": round(elapsed, 3),
              "requests_per_s": round(len(tally.latencies) / elapsed, 1), **percentiles(ms, len(refused)),
              **({"first_error": errors[0], "error_kinds": sorted(set(errors))[:5]} if errors else {})}
    if tiers:
        which = np.asarray(tally.tier_of)
        record["tiers"] = {n: {"priority": tiers[n], "answered": int(np.sum(which == i)),
                               "rejected": int(np.sum(refused == i)),
                               **percentiles(ms[which == i], int(np.sum(refused == i)))} for i, n in enumerate(names)}
    for side in ("server", "client"):
        if tally.latencies and f"{side}_cpu_s" in used:
            record[f"{side}_cpu_ms_per_request"] = round(used[f"{side}_cpu_s"] * 1e3 / len(tally.latencies), 3)
    if used.get("executions"):
        record["avg_batch"] = round(used["inferences"] / used["executions"], 2)
    return record


def percentiles(ms: np.ndarray, rejected: int = 0) -> Dict:
    """p50, p99 and the p99's 95 % order-statistic interval (``None`` where too few requests bound it) of the
    answered requests; with ``rejected`` requests also ``p99_counting_rejected_ms``, the p99 with each refused
    request counted as a miss (infinitely late): ``None`` once more than 1 % were refused."""
    from optimizer.tritonserver.loadgen import p99_interval

    if not len(ms):
        return {"p50_ms": None, "p99_ms": None, "p99_ci_ms": [None, None],
                **({"p99_counting_rejected_ms": None} if rejected else {})}
    out = {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
           "p99_ci_ms": p99_interval(ms)}
    if rejected:
        every = np.percentile(np.concatenate([ms, np.full(rejected, np.inf)]), 99, method="higher")
        out["p99_counting_rejected_ms"] = round(float(every), 3) if np.isfinite(every) else None
    return out
