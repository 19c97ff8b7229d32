"""``python -m optimizer.tritonserver.serve_check <model_repository>``: serve an emitted repository on a real
tritonserver (127.0.0.1), wait for READY, send the stored evaluation inputs over HTTP, compare the
answers with the reference outputs, and run a short bounded load test over gRPC.

Exit code 0 when every model answered within tolerance and its p99 met the SLA (``--sla-ms``, default the
``serving.p99_ms`` in its tuning.json; per tier with QoS tiers), 3 when the answers were right but a p99
missed its SLA, 1 for wrong answers or failed requests, 2 when no server is found or a port it was given
(``--http-port``, ``--grpc-port``) is already in use."""

import argparse
import functools
import json
import math
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from optimizer.tritonserver.expected import Sla, read_sla, reference
from optimizer.tritonserver.loadgen import is_rejection
from optimizer.tritonserver.loadtest import infer_request, load_test, steady_level
from optimizer.tritonserver.overload import probe
from optimizer.tritonserver.serve_report import print_record

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


def sla_misses(name: str, m: Dict) -> List[str]:
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


@dataclass(frozen=True)
class Settings:
    """How hard ``check_repository`` checks: the closed-loop load levels, and the open-loop capacity search and
    overload probe when asked (``from_triton`` takes them from the recipe's ``triton`` section)."""

    concurrency: Sequence[int] = (1, 2, 4, 8)  # closed-loop load-test levels
    max_requests: int = 2000  # requests per level at most
    max_seconds: float = 10.0  # seconds per level at most
    capacity: bool = False  # find the highest open-loop rate served within the SLA
    capacity_seconds: float = 2.0  # seconds per open-loop rate step at most
    overload_factor: float = 0.0  # > 0: probe that multiple of the measured capacity (models with a queue policy)
    overload_seconds: float = 8.0  # seconds of overload traffic

    @classmethod
    def from_triton(cls, triton_cfg) -> "Settings":
        t = triton_cfg
        return cls(t.smoke_concurrency, t.smoke_requests, t.smoke_seconds, t.capacity_test, t.capacity_seconds,
                   t.overload_factor if t.overload_check else 0.0, t.overload_seconds)


def check_repository(repository: Path, settings: Settings = Settings(), sla_p99_ms: Optional[float] = None,
                     install=None, slas: Optional[Mapping[str, Sla]] = None, ports: Tuple[int, int] = (0, 0)) -> Dict:
    """Serve, check and load-test every model of ``repository``; a JSON-ready record with ``passed``
    (answers within tolerance, no failed request, every p99 within its SLA) and ``sla_missed``.

    Each model is held to ``slas[name]`` when given (the run that tuned it), else to the SLAs in its
    tuning.json (``sla_p99_ms`` overriding the default one). With ``settings.capacity``, each model's
    ``capacity``: the highest open-loop rate served within its SLA (``find_capacity``, rates stepped around
    the in-process estimate). With ``settings.overload_factor`` too, and a model with a queue policy, its
    ``overload``: ``overload.probe`` at that multiple of the measured capacity. ``ports``: the server's HTTP and
    gRPC ports, 0 for a free one."""
    from optimizer.tritonserver.server import ServerError, find_server, read_config, serve

    for cfg_path in sorted(Path(repository).glob("*/config.pbtxt")):
        read_config(cfg_path)  # a config that does not parse is named before any server is looked for
    install = install or find_server()
    record: Dict = {"passed": False, "server": install.description, "platform_swapped": not install.full,
                    "notes": [], "models": {}}
    server, notes, tmp = serve(Path(repository), install, ports=ports)
    record["notes"] = notes
    try:
        for cfg_path in sorted(Path(repository).glob("*/config.pbtxt")):
            config = read_config(cfg_path)
            sla = (slas or {}).get(config.name) or read_sla(cfg_path.parent, sla_p99_ms)
            record["models"][config.name] = check_model(server, config, cfg_path.parent, sla, settings)
        problems = _problems(record["models"], repository)
        misses = [x for n, m in record["models"].items() for x in sla_misses(n, m)]
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


def check_model(server, config, model_dir: Path, sla: Sla, settings: Settings) -> Dict:
    """One served model: its answers against the reference, the closed-loop load test against ``sla``, and
    the capacity search and overload probe when ``settings`` asks."""
    m: Dict = {"ready_seconds": round(server.wait_ready(config.name), 3)}
    inputs, expected, m["tolerance"] = reference(model_dir)
    m["max_abs_diff"] = compare(server.http_url, config.name, inputs, expected, config.max_batch_size)
    m["samples"] = len(next(iter(inputs.values())))
    one = {k: v[:1] if config.max_batch_size > 0 else v for k, v in inputs.items()}
    m["sla"] = sla.to_dict()
    tiers = {n: t.priority for n, t in sla.tiers.items()} or None
    run = functools.partial(load_test, server.grpc_url, config.name, one, max_requests=settings.max_requests,
                            max_seconds=settings.max_seconds, counters=functools.partial(server.counters, config.name),
                            tiers=tiers)
    m["load"] = [steady_level(run, c, lambda r: bool(sla_misses(config.name, {"sla": m["sla"], "load": [r]})))
                 for c in settings.concurrency]
    m["sla_p99_ms"] = sla.p99_ms
    m["within_sla"] = not sla_misses(config.name, m)
    if settings.capacity and sla.p99_ms is not None and sla.estimate:
        from optimizer.tritonserver.loadgen import find_capacity

        m["capacity"] = find_capacity(server.grpc_url, config.name, infer_request(config.name, one),
                                      sla.p99_ms, sla.estimate, seconds=settings.capacity_seconds)
        if settings.overload_factor > 0 and m["capacity"]["capacity_rps"] > 0 and _queue_policy(config):
            m["overload"] = probe(server.grpc_url, config.name, one, sla.p99_ms, m["capacity"]["capacity_rps"],
                                  settings.overload_factor, settings.overload_seconds, sla.tier_dicts())
    return m


def _problems(models: Dict[str, Dict], repository: Path) -> List[str]:
    """Wrong answers, failed requests, refusals with no SLA to judge them by, or no model at all."""
    problems = [f"{n}: max diff {m['max_abs_diff']:.3g} > {m['tolerance']:.3g}" for n, m in models.items()
                if m["max_abs_diff"] > m["tolerance"]]
    problems += [f"{n}: {r['errors'] - r['rejected']} failed requests at concurrency {r['concurrency']} "
                 f"({next(e for e in r['error_kinds'] if not is_rejection(e))})"
                 for n, m in models.items() for r in m["load"] if r["errors"] > r["rejected"]]
    problems += [f"{n}: {r['rejected']} requests refused at concurrency {r['concurrency']} and no SLA to judge "
                 f"them by ({r['first_error']})" for n, m in models.items() for r in m["load"]
                 if r["rejected"] and m["sla"]["p99_ms"] is None]
    if not models:
        problems.append(f"no model directory with a config.pbtxt under {repository}")
    return problems


def counts(text: str) -> List[int]:
    """``--concurrency``: comma-separated counts of at least 1."""
    try:
        values = [int(c) for c in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of counts ≥ 1 (e.g. 1,2,4,8)")
    return values


def positive(kind: type) -> Callable[[str], Any]:
    """An argparse type: a finite number above 0."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = float("nan")
        if not (math.isfinite(value) and value > 0):
            raise argparse.ArgumentTypeError(f"{text!r} is not a positive {kind.__name__}")
        return value
    return parse


def port(text: str) -> int:
    """``--http-port`` / ``--grpc-port``: a TCP port, 0 for a free one."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (0 to 65535; 0 picks a free one)")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m optimizer.tritonserver.serve_check", description=__doc__.splitlines()[0])
    p.add_argument("repository", type=Path, help="the emitted model_repository directory")
    p.add_argument("--concurrency", type=counts, default=[1, 2, 4, 8],
                   help="load-test concurrency levels, comma-separated")
    p.add_argument("--requests", type=positive(int), default=2000, help="requests per concurrency level at most (a p99 "
                   "needs 368 for its interval to have an upper bound)")
    p.add_argument("--seconds", type=positive(float), default=10.0, help="seconds per concurrency level at most")
    p.add_argument("--sla-ms", type=positive(float), default=None, help="p99 SLA to check the load test against "
                   "(default: serving.p99_ms from each model's tuning.json; with QoS tiers there, each tier is held to "
                   "its own SLA)")
    p.add_argument("--capacity", action="store_true", help="also find the highest open-loop (Poisson) rate served "
                   "within the SLA, stepping around the in-process estimate in tuning.json")
    p.add_argument("--capacity-seconds", type=positive(float), default=2.0,
                   help="seconds per open-loop rate step at most")
    p.add_argument("--overload", type=float, default=0.0, metavar="FACTOR", help="with --capacity: also send FACTOR × "
                   "the measured capacity and report the admitted requests' p99 and the share rejected (e.g. 1.5)")
    p.add_argument("--overload-seconds", type=positive(float), default=8.0, help="seconds of overload traffic")
    p.add_argument("--http-port", type=port, default=0, help="the server's HTTP port on 127.0.0.1 (default: a free one)")
    p.add_argument("--grpc-port", type=port, default=0, help="the server's gRPC port on 127.0.0.1 (default: a free one)")
    p.add_argument("--json", type=Path, default=None, help="also write the record to this file")
    p.error = lambda message: sys.exit(print(f"error: {message}", file=sys.stderr) or 2)  # one line, exit 2
    return p


def _refusal(a: argparse.Namespace) -> Optional[str]:
    """Why the command line cannot be served, before anything starts: no repository, or a port someone holds."""
    from optimizer.tritonserver.server import port_taken

    if not a.repository.is_dir():
        return f"{a.repository} is not a directory"
    if a.overload and not a.capacity:
        return "--overload needs --capacity (the overload rate is a multiple of the measured capacity)"
    if a.http_port and a.http_port == a.grpc_port:
        return f"--http-port and --grpc-port are both {a.http_port}; give them different ports"
    for flag, number in (("--http-port", a.http_port), ("--grpc-port", a.grpc_port)):
        if number and port_taken(number):
            return (f"port {number} on 127.0.0.1 ({flag}) is already in use; stop what holds it or choose another "
                    f"with {flag} (0 picks a free one)")
    return None


def main(argv: Optional[List[str]] = None) -> int:
    from optimizer.errors import OptimizerError

    a = _parser().parse_args(argv)
    why = _refusal(a)
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2
    try:
        settings = Settings(a.concurrency, a.requests, a.seconds, a.capacity,
                            a.capacity_seconds, a.overload, a.overload_seconds)
        record = check_repository(a.repository, settings, a.sla_ms, ports=(a.http_port, a.grpc_port))
    except OptimizerError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    print_record(record)
    if a.json:
        a.json.write_text(json.dumps(record, indent=2))
    return 0 if record["passed"] else 3 if record.get("sla_missed") else 1


if __name__ == "__main__":
    sys.exit(main())
