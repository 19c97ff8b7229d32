"""Overload and QoS tiers on the real Triton server: does the emitted queue policy keep the SLA past capacity?

In one run, on the smoke-test server (``optimizer.tritonserver.server``, 127.0.0.1 only):

1. the emitted repository of ``python -m optimizer recipe=int8`` (or ``--repo``) for ``--model``: ``heavy`` (default),
   a CNN on 3x64x64 images from ``experiments/overload_model.py`` that costs about ten times the built-in model per
   sample, so the overload needs a tenth of the requests and the Python load generator, which shares the cores
   with the server, stays off the critical path; or ``builtin``, the built-in digits model (about 4,000
   requests/s: at 1.5x the generator itself runs tens of ms behind its schedule);
   The run has ``triton.smoke_test=true``: its smoke test measures one replica's capacity (open loop) and runs the
   overload check, which re-tunes the queue policy on the server when its p99 misses (tuning.md: *Overload
   check*); the benchmark prints those probes;
2. one replica's capacity as the run measured it (tuning.json), printed beside the in-process estimate; with a
   ``--repo`` that has none, measured here with the product's open-loop search
   (``optimizer.tritonserver.loadgen.find_capacity``, the SLA from tuning.json);
3. overload: open-loop Poisson traffic at ``--factor`` (1.5) × the measured capacity, for ``--seconds``, to
   (a) the emitted config with its queue policy and (b) the same model with ``default_queue_policy`` removed,
   alternating a b a b ...; for each the p99 of the ADMITTED (answered) requests with its 95 % interval, the
   rejection rate, and whether the p99 is within the SLA;
4. tiers: a repository emitted with ``serving.tiers=[{name:premium,p99_ms:50},{name:batch}]`` (or
   ``--tiers-repo``), the same rate, half premium and half batch, each tier from its own client process: p99 and
   rejections per tier, and whether the premium p99 is within its SLA.

A stall watcher (``optimizer.tritonserver.stalls``) runs beside every round; a round of (a) or of the tiers that misses
while the host stalled is run again, at most twice, and both are printed (the host's stalls move a p99 whatever
the configuration). The load average is printed before and after each phase. Everything is written under a
temporary directory (``--json FILE`` also writes the record there).

    python experiments/bench_overload.py [--model heavy|builtin] [--repo DIR] [--tiers-repo DIR] [--rounds 3] [--seconds 8] [--json FILE]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Dict, List, Optional, Tuple


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FAST = ["benchmark.batch_sizes=[1,8]", "benchmark.min_repeats=20", "benchmark.max_seconds=0.5",
        "tracking.enabled=false", "triton.smoke_test=true"]  # the smoke test measures capacity, checks overload
TIERS = "serving.tiers=[{name:premium,p99_ms:50},{name:batch}]"
MODELS = {
    "builtin": [],
    # a user's factories; no labels, so the task is nearest-neighbour agreement, which on 128 random images
    # says little: the parity gate (cosine >= 0.99) still applies
    "heavy": ["model.source=experiments.overload_model:cnn", "data.source=experiments.overload_model:images",
              "constraints.max_accuracy_drop=null"],
}


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def phase(title: str) -> None:
    print(f"\n== {title} ({load()})", flush=True)


def emitted_repository(work: Path, name: str, *overrides: str) -> Path:
    """Run the int8 recipe (cached artifacts are reused) and return its model_repository."""
    out = work / name
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    code = subprocess.run([sys.executable, "-m", "optimizer", "recipe=int8", *FAST, *overrides, f"hydra.run.dir={out}"],
                          cwd=ROOT, stdout=subprocess.DEVNULL, env=env).returncode
    if code not in (0, 3):  # 3: a gate (e.g. the smoke test's SLA at a concurrency level); the repository is there
        raise SystemExit(f"python -m optimizer exited {code} for {name}")
    return out / "model_repository"


def without_queue_policy(repository: Path, into: Path) -> Path:
    """A copy of ``repository`` whose config.pbtxt has no ``default_queue_policy`` (Triton's unbounded queue)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    shutil.copytree(repository, into)
    for path in into.glob("*/config.pbtxt"):
        c = text_format.Parse(path.read_text(), mc.ModelConfig())
        c.dynamic_batching.ClearField("default_queue_policy")
        path.write_text(text_format.MessageToString(c))
    return into


def model_of(repository: Path):
    """(name, directory, one-sample inputs, config) of the repository's single model."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    from optimizer.tritonserver.expected import reference

    (cfg_path,) = sorted(repository.glob("*/config.pbtxt"))
    config = text_format.Parse(cfg_path.read_text(), mc.ModelConfig())
    inputs, _, _ = reference(cfg_path.parent)
    one = {k: v[:1] if config.max_batch_size > 0 else v for k, v in inputs.items()}
    return config.name, cfg_path.parent, one, config


class Served:
    """A tritonserver on 127.0.0.1 serving ``repository``, READY, stopped on exit; with Triton's latency summaries
    on (``--metrics-config=summary_latencies=true``, loopback only), so the server's own p99 can be read."""

    def __init__(self, repository: Path, model: str):
        from optimizer.tritonserver.server import Server, find_server, free_port, server_args, stage

        install = find_server()
        self.tmp = Path(tempfile.mkdtemp(prefix="bench_overload-triton-"))
        stage(repository, install, self.tmp / "repository")
        self.metrics_port = free_port()
        self.server = Server(self.tmp / "repository", install, self.tmp / "tritonserver.log",
                             [*server_args(self.tmp / "repository", install), "--allow-metrics=true",
                              "--metrics-address=127.0.0.1", f"--metrics-port={self.metrics_port}",
                              "--metrics-config=summary_latencies=true", "--allow-gpu-metrics=false",
                              "--allow-cpu-metrics=false"])
        self.model = model

    def __enter__(self):
        try:
            self.server.wait_ready(self.model)
        except Exception:
            self.__exit__()
            raise
        return self

    def server_p99(self) -> Dict[str, Optional[float]]:
        """Triton's own p99 (ms) since start of successful requests: end to end in the server, and queueing."""
        import re
        import urllib.request

        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).read().decode()
        out: Dict[str, Optional[float]] = {}
        for key, metric in (("request", "nv_inference_request_summary_us"), ("queue", "nv_inference_queue_summary_us")):
            m = re.search(rf'^{metric}{{model="{self.model}",version="\d+",quantile="0.99"}} (\S+)$', text, re.M)
            out[key] = round(float(m.group(1)) / 1e3, 3) if m and m.group(1) != "nan" else None
        return out

    def __exit__(self, *exc) -> None:
        self.server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def print_overload_check(recorded: Dict) -> None:
    """The probes of the run's own overload check (tuning.json), the one in force marked."""
    from optimizer.tritonserver.overload import line

    check = recorded.get("overload") or {}
    for i, r in enumerate(check.get("probes", [])):
        print(f"  the run's overload check, {'as first tuned' if i == 0 else f're-tune {i}'} (timeout "
              f"{r['timeout_us']} us, max_queue_size {r['max_queue_size']}, max_batch_size "
              f"{r.get('max_batch_size')}): {line(r)}" + (" <- in force" if i == check["in_force"] else ""))


RERUNS = 2  # a target round that missed while the host stalled is run again, at most this often


def watched(run, missed) -> Dict:
    """``run()`` under a stall watcher, run again (at most ``RERUNS`` times) while ``missed(record)`` and the host
    stalled; the record has ``host_stalls`` and, when it was run again, ``reruns`` (the earlier records)."""
    from optimizer.tritonserver.stalls import StallWatch, stalled

    earlier: List[Dict] = []
    while True:
        with StallWatch() as watch:
            r = run()
        r["host_stalls"] = watch.summary()
        if not (missed(r) and stalled(r["host_stalls"])) or len(earlier) == RERUNS:
            return {**r, "reruns": earlier}
        print(f"      (missed while the host stalled {stalls(r)}: run again)", flush=True)
        earlier.append(r)


def stalls(r: Dict) -> str:
    h = r.get("host_stalls") or {}
    return f"{h.get('count')}× ≥ {h.get('threshold_ms')} ms, longest {h.get('max_ms')} ms" if h.get("count") else "none"


def verdict(r: Dict, sla_ms: float) -> str:
    lo, hi = r["p99_ci_ms"]
    if r["p99_ms"] is None:
        return "no answer"
    if r["p99_ms"] > sla_ms:
        return f"p99 OVER the SLA {sla_ms} ms" + (" (the whole interval above it)" if lo is not None and lo > sla_ms else "")
    return f"p99 within the SLA {sla_ms} ms" + ("" if hi is not None and hi <= sla_ms else " (interval reaches past it)")


def line(label: str, r: Dict, sla_ms: Optional[float]) -> str:
    n = max(r["requests"], 1)
    lo, hi = r["p99_ci_ms"]
    return (f"{label}: {r['rate_sent']:.0f}/s sent ({r['requests']} requests, client lag p99 {r['send_lag_p99_ms']} ms), "
            f"{r['answered']} admitted: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms [95 %: {lo}–{hi}]; "
            f"rejected {r['rejected']} ({100 * r['rejected'] / n:.1f} %), unanswered/other errors "
            f"{r['errors'] - r['rejected']}" + (f" — {verdict(r, sla_ms)}" if sla_ms else " — no SLA"))


LABELS = {"a": "(a) with queue policy", "b": "(b) no queue policy  "}


@dataclass(frozen=True)
class Traffic:
    """The offered load of the overload and tier rounds: one replica's capacity, the rate sent, seconds per round."""

    capacity: float
    rate: float
    seconds: float


def parse_args() -> argparse.Namespace:
    """The command line (see the module's docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=sorted(MODELS), default="heavy",
                   help="the model to emit when no --repo is given (see the module's docstring)")
    p.add_argument("--repo", type=Path, default=None, help="an emitted model_repository (default: emit one)")
    p.add_argument("--tiers-repo", type=Path, default=None,
                   help=f"an emitted model_repository with two tiers (default: emit one with {TIERS})")
    p.add_argument("--rounds", type=int, default=3, help="a/b alternations of the overload target")
    p.add_argument("--factor", type=float, default=1.5, help="offered rate ÷ measured capacity")
    p.add_argument("--seconds", type=float, default=8.0, help="seconds of traffic per overload level")
    p.add_argument("--capacity-seconds", type=float, default=2.0, help="seconds per capacity-search step")
    p.add_argument("--json", type=Path, default=None, help="also write the record to this file")
    return p.parse_args()


def emit_repositories(a: argparse.Namespace, work: Path) -> Tuple[Path, Path, Path]:
    """Phase 1: the plain and the tiered repositories (given or emitted), and the plain one without queue policy."""
    phase("1. emitted repositories")
    plain = a.repo or emitted_repository(work, "plain", *MODELS[a.model])
    tiered = a.tiers_repo or emitted_repository(work, "tiers", *MODELS[a.model], TIERS)
    bare = without_queue_policy(plain, work / "no_queue_policy")
    return plain, tiered, bare


def describe_model(plain: Path) -> Tuple[str, Path, Dict, float, float]:
    """Print the plain repository's model, its serving config and its SLA; return (name, directory, one-sample
    inputs, SLA p99 ms, in-process estimate)."""
    from optimizer.tritonserver.expected import read_sla

    model, model_dir, one, config = model_of(plain)
    db = config.dynamic_batching
    qp = db.default_queue_policy
    sla, estimate = read_sla(model_dir).p99_ms, read_sla(model_dir).estimate
    print(f"{model}: max_batch_size {config.max_batch_size}, preferred {list(db.preferred_batch_size)}, "
          f"{sum(g.count for g in config.instance_group)} instance(s); queue policy max_queue_size "
          f"{qp.max_queue_size}, timeout {qp.default_timeout_microseconds} us; SLA p99 {sla} ms (tuning.json); "
          f"in-process estimate {estimate}/s")
    print(f"({load()})")
    return model, model_dir, one, sla, estimate


def measure_capacity(a: argparse.Namespace, plain: Path, model: str, payload, sla: float, estimate: float,
                     recorded: Dict) -> Dict:
    """One replica's capacity: as the run's smoke test measured it (tuning.json), else searched here; its levels
    printed."""
    from optimizer.tritonserver.loadgen import find_capacity

    measured = (recorded.get("capacity") or {}).get("measured")
    if measured:
        cap = {"capacity_rps": measured, "levels": [], "stopped": "as the run's smoke test measured it (tuning.json)"}
    else:
        with Served(plain, model) as served:
            cap = find_capacity(served.server.grpc_url, model, payload, sla, estimate, seconds=a.capacity_seconds)
    for r in cap["levels"]:
        print(f"  {r['rate_asked']:>8.1f}/s asked, {r['rate_sent']:>8.1f}/s sent: p99 {r['p99_ms']} ms, "
              f"{r['errors']} errors ({r['rejected']} rejected) — {r['verdict']}")
    return cap


def overload_traffic(a: argparse.Namespace, cap: Dict, sla: float, estimate: float) -> Traffic:
    """Print the measured capacity beside the estimate; the overload rate is ``--factor`` times it (the lowest
    level tried when no level was served)."""
    capacity = cap["capacity_rps"]
    print(f"measured capacity {capacity}/s within p99 ≤ {sla} ms  vs  in-process estimate {estimate}/s "
          f"({capacity / estimate:.2f}× the estimate); stopped: {cap['stopped']}")
    if not capacity:
        capacity = cap["levels"][0]["rate_asked"]
        print(f"NOTE: no level was served; the overload uses the lowest level tried, {capacity}/s, as capacity")
    rate = a.factor * capacity
    print(f"({load()})")
    return Traffic(capacity, rate, a.seconds)


def overload_round(repository: Path, model: str, payload, sla: float, traffic: Traffic, rnd: int) -> Dict:
    """One overload round on a fresh server: a short warm-up (~1 %), then ``traffic.rate`` for ``traffic.seconds``."""
    from optimizer.tritonserver.loadgen import open_loop

    with Served(repository, model) as served:
        url = served.server.grpc_url
        open_loop(url, model, payload, traffic.capacity * 0.25, int(traffic.capacity), 0.5, seed=99)  # warm, ~1 %
        before = load()
        r = open_loop(url, model, payload, traffic.rate, int(traffic.rate * traffic.seconds * 1.2) + 10,
                      traffic.seconds, seed=rnd)
        r["server_p99_ms"] = served.server_p99()
    r["within_sla"] = r["p99_ms"] is not None and r["p99_ms"] <= sla
    r["load"] = f"{before} → {load()}"
    return r


def run_overload(a: argparse.Namespace, repos: Dict[str, Path], model: str, payload, sla: float,
                 traffic: Traffic) -> Dict[str, List[Dict]]:
    """Phase 3: (a) the emitted queue policy and (b) none, alternating, ``--rounds`` times; each round printed,
    then both targets over the rounds."""
    phase(f"3. overload: {a.factor}× capacity = {traffic.rate:.0f}/s for {a.seconds} s, (a) emitted queue policy "
          f"vs (b) none, alternating, {a.rounds} round(s)")
    runs: Dict[str, List[Dict]] = {"a": [], "b": []}
    for rnd in range(a.rounds):
        for k in ("a", "b"):
            r = watched(partial(overload_round, repos[k], model, payload, sla, traffic, rnd),
                        lambda r: k == "a" and not r["within_sla"])
            runs[k].append(r)
            sp = r["server_p99_ms"]
            print(f"round {rnd + 1} {line(LABELS[k], r, sla)}  [{r['load']}; host stalls: {stalls(r)}]\n"
                  f"        server-side p99 of the answered (Triton's summary): {sp['request']} ms, of which "
                  f"queueing p99 {sp['queue']} ms", flush=True)
    print_overload_rounds(runs, sla)
    return runs


def print_overload_rounds(runs: Dict[str, List[Dict]], sla: float) -> None:
    """Per target, the p99s and rejection rates over the rounds and how many rounds were within the SLA."""
    for k in ("a", "b"):
        rs = runs[k]
        p99s = [r["p99_ms"] for r in rs if r["p99_ms"] is not None]
        rej = [r["rejected"] / max(r["requests"], 1) for r in rs]
        print(f"{LABELS[k]}: p99 of admitted {', '.join(f'{x:.1f}' for x in p99s)} ms over rounds (server-side "
              f"{', '.join(str(r['server_p99_ms']['request']) for r in rs)} ms); rejection "
              f"rate {', '.join(f'{100 * x:.1f} %' for x in rej)}; within SLA {sla} ms in "
              f"{sum(r['within_sla'] for r in rs)}/{len(rs)} rounds")


def print_tiers_config(t_config) -> None:
    """The tiered model's priority levels and each level's queue policy."""
    tdb = t_config.dynamic_batching
    print(f"tiers config: priority_levels {tdb.priority_levels}, default level {tdb.default_priority_level}, "
          + "; ".join(f"level {lvl}: max_queue_size {q.max_queue_size}, timeout {q.default_timeout_microseconds} us"
                      for lvl, q in sorted(tdb.priority_queue_policy.items()))
          + f"; max_batch_size {t_config.max_batch_size}")


def tier_round(tiered: Path, t_model: str, payloads: Dict, premium: str, t_sla: Dict, traffic: Traffic,
               rnd: int) -> Dict:
    """One tiers round on a fresh server (no batch-tier backlog from the round before): each tier from its own
    client process, each tier's p99 against its SLA."""
    from optimizer.tritonserver import overload
    from optimizer.tritonserver.loadgen import open_loop

    with Served(tiered, t_model) as served:
        server = served.server
        open_loop(server.grpc_url, t_model, payloads[premium], traffic.capacity * 0.25, int(traffic.capacity), 0.5,
                  seed=99)
        before = load()
        per = overload.tiered(server.grpc_url, t_model, payloads, traffic.rate, traffic.seconds, seed=100 * rnd)
        for n, r in per.items():
            r["within_sla"] = (t_sla["tiers"][n]["p99_ms"] is None
                               or (r["p99_ms"] is not None and r["p99_ms"] <= t_sla["tiers"][n]["p99_ms"]))
        return {"tiers": per, "server_p99_ms": served.server_p99(), "load": f"{before} → {load()}"}


def run_tiers(a: argparse.Namespace, tiered: Path, traffic: Traffic) -> Tuple[List[Dict], int, int]:
    """Phase 4: half premium, half batch at the overload rate, ``--rounds`` times; returns (the rounds, rounds with
    the premium p99 within its SLA, rounds run again after a stall)."""
    from optimizer.tritonserver.expected import read_sla
    from optimizer.tritonserver.loadtest import infer_request

    phase(f"4. tiers: {traffic.rate:.0f}/s ({a.factor}× capacity), half premium half batch, {a.seconds} s")
    t_model, t_dir, t_one, t_config = model_of(tiered)
    t_sla = read_sla(t_dir).to_dict()
    levels = {n: t["priority"] for n, t in t_sla["tiers"].items()}
    print_overload_check(json.loads((t_dir / "tuning.json").read_text()))
    print_tiers_config(t_config)
    payloads = {n: infer_request(t_model, t_one, lvl) for n, lvl in levels.items()}
    tier_runs = []
    premium = next(iter(levels))
    for rnd in range(a.rounds):
        rec = watched(partial(tier_round, tiered, t_model, payloads, premium, t_sla, traffic, rnd),
                      lambda rec: not rec["tiers"][premium]["within_sla"])
        per = rec["tiers"]
        tier_runs.append({**per, "host_stalls": rec["host_stalls"], "reruns": rec["reruns"]})
        for n, r in per.items():
            print(f"round {rnd + 1} tier {n:<8} (level {levels[n]}): "
                  f"{line('', r, t_sla['tiers'][n]['p99_ms'])[2:]}", flush=True)
        sp = rec["server_p99_ms"]
        print(f"  [{rec['load']}; host stalls: {stalls(rec)}]; server-side p99 of the answered, both tiers "
              f"(Triton's summary): {sp['request']} ms, queueing p99 {sp['queue']} ms", flush=True)
    ok = sum(per[premium]["within_sla"] for per in tier_runs)
    rerun = sum(len(per["reruns"]) for per in tier_runs)
    print(f"premium p99 within its SLA {t_sla['tiers'][premium]['p99_ms']} ms in {ok}/{len(tier_runs)} rounds "
          f"({rerun} round(s) run again after a miss while the host stalled)")
    return tier_runs, ok, rerun


def print_summary(a: argparse.Namespace, traffic: Traffic, estimate: float, runs: Dict[str, List[Dict]],
                  tiers: Tuple[List[Dict], int, int], t_start: float) -> None:
    """The last line: capacity against the estimate, rounds within (a) and over (b) the SLA, the premium tier."""
    tier_runs, ok, rerun = tiers
    a_ok = sum(r["within_sla"] for r in runs["a"])
    b_miss = sum(not r["within_sla"] for r in runs["b"])
    print(f"\nSUMMARY: capacity {traffic.capacity}/s measured vs {estimate}/s estimated; at {a.factor}× capacity "
          f"(a) queue policy within SLA in {a_ok}/{a.rounds} rounds, (b) no policy over the SLA in "
          f"{b_miss}/{a.rounds} rounds; premium tier within its SLA in {ok}/{len(tier_runs)} rounds; "
          f"{sum(len(r['reruns']) for r in runs['a']) + rerun} round(s) run again after a stall; "
          f"{time.perf_counter() - t_start:.0f} s total ({load()})")


def main() -> None:
    a = parse_args()

    from optimizer.tritonserver.loadtest import infer_request

    t_start = time.perf_counter()
    record: Dict = {"load_start": os.getloadavg()}
    print(f"bench_overload: {os.cpu_count()} CPUs, model {a.model if not a.repo else a.repo}, {load()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_overload-") as tmp:
        plain, tiered, bare = emit_repositories(a, Path(tmp))
        model, model_dir, one, sla, estimate = describe_model(plain)
        recorded = json.loads((model_dir / "tuning.json").read_text())
        print_overload_check(recorded)
        print(f"({load()})")

        phase("2. capacity of one replica (open loop, Poisson; the product's find_capacity)")
        payload = infer_request(model, one)
        cap = measure_capacity(a, plain, model, payload, sla, estimate, recorded)
        record["capacity"] = cap
        traffic = overload_traffic(a, cap, sla, estimate)

        runs = run_overload(a, {"a": plain, "b": bare}, model, payload, sla, traffic)
        record["overload"] = {"rate": traffic.rate, "sla_p99_ms": sla, **runs}
        print(f"({load()})")

        tiers = run_tiers(a, tiered, traffic)
        record["tiers"] = tiers[0]
        print(f"({load()})")

        print_summary(a, traffic, estimate, runs, tiers, t_start)
        if a.json:
            a.json.write_text(json.dumps(record, indent=2, default=str))


if __name__ == "__main__":
    main()
