"""``python -m optimizer.tritonserver.serve_check <model_repository>``: serve an emitted repository on a real
tritonserver (127.0.0.1), wait for READY, send the stored evaluation inputs over HTTP, compare the
answers with the reference outputs, and run a short bounded load test over gRPC.

Exit code 0 when every model answered within tolerance and its p99 met the SLA (``--sla-ms``, default the
``serving.p99_ms`` in its tuning.json; per tier with QoS tiers), 3 when the answers were right but a p99
missed its SLA, 1 for wrong answers or failed requests, 2 when no server is found."""

import argparse
import functools
import json
import shutil
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from optimizer.tritonserver.loadgen import is_rejection
from optimizer.tritonserver.loadtest import _infer_request, load_test

TOLERANCE = 1e-4  # same model file, same runtime, same batch size: only thread-order float differences


def _reference(model_dir: Path):
    """Stored inputs, the variant's answers at the batch size serve_check sends, and the tolerance the run
    measured (how much the same file's answers move between batch sizes)."""
    ref = np.load(model_dir / "reference.npz")
    inputs = {k[3:]: ref[k] for k in ref.files if k.startswith("in.")}
    outputs = {k[4:]: ref[k] for k in ref.files if k.startswith("out.")}
    return inputs, outputs, float(ref["tolerance"]) if "tolerance" in ref.files else TOLERANCE


def _tensors(module, arrays: Dict[str, np.ndarray]):
    out = []
    for name, a in arrays.items():
        t = module.InferInput(name, list(a.shape), module.np_to_triton_dtype(a.dtype))
        t.set_data_from_numpy(a)
        out.append(t)
    return out


def compare(url: str, model: str, inputs: Dict[str, np.ndarray], expected: Dict[str, np.ndarray],
            chunk: int) -> float:
    """Max |served - expected| over every output, sending the inputs over HTTP ``chunk`` samples at a time."""
    import tritonclient.http as http

    client = http.InferenceServerClient(url)
    try:
        n = len(next(iter(inputs.values())))
        step = chunk if chunk > 0 else n
        worst = 0.0
        for i in range(0, n, step):
            part = {k: np.ascontiguousarray(v[i:i + step]) for k, v in inputs.items()}
            result = client.infer(model, _tensors(http, part))
            for name, want in expected.items():
                got = result.as_numpy(name)
                if got is None or got.shape != want[i:i + step].shape:
                    raise ValueError(f"output {name!r}: got shape {None if got is None else got.shape}, "
                                     f"expected {want[i:i + step].shape}")
                worst = max(worst, float(np.max(np.abs(got - want[i:i + step]))))
        return worst
    finally:
        client.close()


def _slas(model_dir: Path, sla_p99_ms: Optional[float]) -> Dict:
    """The SLAs a model's load test is held to: ``--sla-ms`` (``source: given``), else tuning.json's
    ``serving.p99_ms``; with QoS tiers in tuning.json, each tier's p99 (tiers without one are not checked)."""
    path = model_dir / "tuning.json"
    tuning = json.loads(path.read_text()).get("tuning", {}) if path.exists() else {}
    tiers = {t["name"]: t for t in tuning.get("tiers") or []}
    if sla_p99_ms is None and "sla_p99_ms" not in tuning:
        return {"p99_ms": None, "source": "none", "tiers": {}}
    return {"p99_ms": sla_p99_ms if sla_p99_ms is not None else tuning["sla_p99_ms"],
            "source": "given" if sla_p99_ms is not None else f"{path}",
            "tiers": {n: {"priority": t["level"], "p99_ms": t["p99_ms"]} for n, t in tiers.items()}}


def _estimate(model_dir: Path) -> Optional[float]:
    """The in-process capacity estimate (samples/s) in tuning.json, where there is one."""
    path = model_dir / "tuning.json"
    return json.loads(path.read_text()).get("tuning", {}).get("throughput") if path.exists() else None


def _sla_misses(name: str, m: Dict) -> List[str]:
    """One line per load level (and tier) whose p99 exceeds its SLA, with the p99's interval; requests the queue
    policy refused count as misses (a few in a thousand on a busy machine leave the p99 within the SLA)."""
    sla, out = m["sla"], []

    def miss(where: str, r: Dict, limit: Optional[float]) -> None:
        if limit is None:
            return
        if r["p99_ms"] is None or r["p99_ms"] > limit:
            lo, hi = r.get("p99_ci_ms", [None, None])
            out.append(f"{name}: p99 {r['p99_ms']} ms {where} exceeds the SLA {limit} ms (95 % interval {lo}–{hi} ms)")
        elif r.get("rejected") and (r["p99_counting_rejected_ms"] is None or r["p99_counting_rejected_ms"] > limit):
            every = r["p99_counting_rejected_ms"]
            out.append(f"{name}: {r['rejected']} request(s) {where} refused by the queue policy; counting them as misses "
                       f"the p99 is {f'{every} ms' if every is not None else 'a miss (over 1 % refused)'}, over the "
                       f"SLA {limit} ms")

    for r in m["load"]:
        if sla["tiers"]:
            for tier, t in r.get("tiers", {}).items():
                miss(f"for tier {tier} at concurrency {r['concurrency']}", t, sla["tiers"][tier]["p99_ms"])
        else:
            miss(f"at concurrency {r['concurrency']}", r, sla["p99_ms"])
    return out


def _queue_policy(config) -> bool:
    """Whether the config bounds its queue (the default policy or a priority level's)."""
    db = config.dynamic_batching
    return bool(db.default_queue_policy.max_queue_size or any(q.max_queue_size for q in db.priority_queue_policy.values()))


def check_repository(repository: Path, triton_cfg=None, sla_p99_ms: Optional[float] = None,
                     concurrency: Sequence[int] = (1, 2, 4, 8), max_requests: int = 2000,
                     max_seconds: float = 10.0, install=None, capacity: bool = False,
                     capacity_seconds: float = 2.0, overload_factor: float = 0.0, overload_seconds: float = 8.0) -> Dict:
    """Serve, check and load-test every model of ``repository``; a JSON-ready record with ``passed``
    (answers within tolerance, no failed request, every p99 within its SLA) and ``sla_missed``. With
    ``capacity``, each model's ``capacity``: the highest open-loop rate served within its SLA (``find_capacity``,
    rates stepped around the in-process estimate in tuning.json). With ``overload_factor`` too, and a model with a
    queue policy, its ``overload``: ``overload.probe`` at that multiple of the measured capacity."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    from optimizer.tritonserver.server import ServerError, find_server, serve

    if triton_cfg is not None:
        concurrency, max_requests = triton_cfg.smoke_concurrency, triton_cfg.smoke_requests
        max_seconds = triton_cfg.smoke_seconds
        capacity, capacity_seconds = triton_cfg.capacity_test, triton_cfg.capacity_seconds
        overload_factor = triton_cfg.overload_factor if triton_cfg.overload_check else 0.0
        overload_seconds = triton_cfg.overload_seconds
    install = install or find_server()
    record: Dict = {"passed": False, "server": install.description, "platform_swapped": not install.full,
                    "notes": [], "models": {}}
    server, notes, tmp = serve(Path(repository), install)
    record["notes"] = notes
    try:
        for cfg_path in sorted(Path(repository).glob("*/config.pbtxt")):
            config = text_format.Parse(cfg_path.read_text(), mc.ModelConfig())
            m: Dict = {"ready_seconds": round(server.wait_ready(config.name), 3)}
            record["models"][config.name] = m
            inputs, expected, m["tolerance"] = _reference(cfg_path.parent)
            m["max_abs_diff"] = compare(server.http_url, config.name, inputs, expected, config.max_batch_size)
            m["samples"] = len(next(iter(inputs.values())))
            one = {k: v[:1] if config.max_batch_size > 0 else v for k, v in inputs.items()}
            m["sla"] = _slas(cfg_path.parent, sla_p99_ms)
            tiers = {n: t["priority"] for n, t in m["sla"]["tiers"].items()} or None
            m["load"] = [load_test(server.grpc_url, config.name, one, c, max_requests, max_seconds,
                                   functools.partial(server.counters, config.name), tiers) for c in concurrency]
            m["sla_p99_ms"] = m["sla"]["p99_ms"]
            m["within_sla"] = not _sla_misses(config.name, m)
            estimate = _estimate(cfg_path.parent)
            if capacity and m["sla_p99_ms"] is not None and estimate:
                from optimizer.tritonserver.loadgen import find_capacity

                m["capacity"] = find_capacity(server.grpc_url, config.name, _infer_request(config.name, one),
                                              m["sla_p99_ms"], estimate, seconds=capacity_seconds)
                if overload_factor > 0 and m["capacity"]["capacity_rps"] > 0 and _queue_policy(config):
                    from optimizer.tritonserver.overload import probe

                    m["overload"] = probe(server.grpc_url, config.name, one, m["sla_p99_ms"],
                                          m["capacity"]["capacity_rps"], overload_factor, overload_seconds,
                                          m["sla"]["tiers"])
        problems = [f"{n}: max diff {m['max_abs_diff']:.3g} > {m['tolerance']:.3g}" for n, m in record["models"].items()
                    if m["max_abs_diff"] > m["tolerance"]]
        problems += [f"{n}: {r['errors'] - r['rejected']} failed requests at concurrency {r['concurrency']} "
                     f"({next(e for e in r['error_kinds'] if not is_rejection(e))})"
                     for n, m in record["models"].items() for r in m["load"] if r["errors"] > r["rejected"]]
        problems += [f"{n}: {r['rejected']} requests refused at concurrency {r['concurrency']} and no SLA to judge "
                     f"them by ({r['first_error']})" for n, m in record["models"].items() for r in m["load"]
                     if r["rejected"] and m["sla"]["p99_ms"] is None]
        if not record["models"]:
            problems.append(f"no model directory with a config.pbtxt under {repository}")
        misses = [x for n, m in record["models"].items() for x in _sla_misses(n, m)]
        record["sla_missed"] = bool(misses) and not problems
        problems += misses
        record["passed"], record["error"] = not problems, "; ".join(problems) or None
    except (ServerError, ValueError) as e:
        record["error"] = str(e)
    except Exception as e:  # the client's own errors (InferenceServerException) name the model and the cause
        record["error"] = f"{type(e).__name__}: {e}"
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return record


def _print(record: Dict) -> None:
    print(f"server: {record['server']}")
    for note in record["notes"]:
        print(f"note: {note}")
    for name, m in record["models"].items():
        print(f"{name}: READY in {m['ready_seconds']:.2f} s; max |diff| vs reference "
              f"{m.get('max_abs_diff', float('nan')):.3g} over {m.get('samples', 0)} samples")
        if m.get("sla", {}).get("p99_ms") is not None:
            print(f"  SLA: p99 ≤ {m['sla']['p99_ms']} ms ({'--sla-ms' if m['sla']['source'] == 'given' else 'from ' + m['sla']['source']})"
                  + "".join(f"; {n} ≤ {t['p99_ms']} ms" for n, t in m["sla"]["tiers"].items() if t["p99_ms"]))
        for r in m.get("load", []):
            lo, hi = r.get("p99_ci_ms", [None, None])
            print(f"  concurrency {r['concurrency']:>2}: {r['requests_per_s']:>8.1f} req/s  "
                  f"p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms [95 %: {lo}–{hi}]  "
                  f"({r['requests']} requests, {r['errors']} errors)"
                  + (f"; average batch {r['avg_batch']}" if "avg_batch" in r else "")
                  + (f"; CPU per request: server {r['server_cpu_ms_per_request']} ms, client "
                     f"{r['client_cpu_ms_per_request']} ms" if "server_cpu_ms_per_request" in r else ""))
            for n, t in r.get("tiers", {}).items():
                print(f"    tier {n} (priority {t['priority']}): p50 {t['p50_ms']} ms  p99 {t['p99_ms']} ms "
                      f"[95 %: {t['p99_ci_ms'][0]}–{t['p99_ci_ms'][1]}]  ({t['answered']} answered)")
        if "capacity" in m:
            c = m["capacity"]
            print(f"  capacity (open loop, Poisson arrivals): {c['capacity_rps']} requests/s within p99 ≤ "
                  f"{c['sla_p99_ms']} ms (in-process estimate {c['estimate_rps']}/s); stopped: {c['stopped']}")
            for r in c["levels"]:
                print(f"    {r['rate_asked']:>8.1f}/s asked, {r['rate_sent']:>8.1f}/s sent: p99 {r['p99_ms']} ms, "
                      f"{r['errors']} errors ({r['rejected']} rejected) — {r['verdict']}")
        if "overload" in m:
            from optimizer.tritonserver.overload import line

            print(f"  overload: {line(m['overload'])}")
    print("passed" if record["passed"] else
          f"{'SLA MISSED' if record.get('sla_missed') else 'FAILED'}: {record['error']}")


def main(argv: Optional[List[str]] = None) -> int:
    from optimizer.errors import OptimizerError

    p = argparse.ArgumentParser(prog="python -m optimizer.tritonserver.serve_check", description=__doc__.splitlines()[0])
    p.add_argument("repository", type=Path, help="the emitted model_repository directory")
    p.add_argument("--concurrency", default="1,2,4,8", help="load-test concurrency levels, comma-separated")
    p.add_argument("--requests", type=int, default=2000, help="requests per concurrency level at most (a p99 "
                   "needs 368 for its interval to have an upper bound)")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds per concurrency level at most")
    p.add_argument("--sla-ms", type=float, default=None, help="p99 SLA to check the load test against "
                   "(default: serving.p99_ms from each model's tuning.json; with QoS tiers there, each tier is held to "
                   "its own SLA)")
    p.add_argument("--capacity", action="store_true", help="also find the highest open-loop (Poisson) rate served "
                   "within the SLA, stepping around the in-process estimate in tuning.json")
    p.add_argument("--capacity-seconds", type=float, default=2.0, help="seconds per open-loop rate step at most")
    p.add_argument("--overload", type=float, default=0.0, metavar="FACTOR", help="with --capacity: also send FACTOR × "
                   "the measured capacity and report the admitted requests' p99 and the share rejected (e.g. 1.5)")
    p.add_argument("--overload-seconds", type=float, default=8.0, help="seconds of overload traffic")
    p.add_argument("--json", type=Path, default=None, help="also write the record to this file")
    a = p.parse_args(argv)
    if not a.repository.is_dir():
        print(f"error: {a.repository} is not a directory", file=sys.stderr)
        return 2
    if a.overload and not a.capacity:
        print("error: --overload needs --capacity (the overload rate is a multiple of the measured capacity)",
              file=sys.stderr)
        return 2
    try:
        record = check_repository(a.repository, None, a.sla_ms, [int(c) for c in a.concurrency.split(",")],
                                  a.requests, a.seconds, capacity=a.capacity, capacity_seconds=a.capacity_seconds,
                                  overload_factor=a.overload, overload_seconds=a.overload_seconds)
    except OptimizerError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    _print(record)
    if a.json:
        a.json.write_text(json.dumps(record, indent=2))
    return 0 if record["passed"] else 3 if record.get("sla_missed") else 1


if __name__ == "__main__":
    sys.exit(main())
