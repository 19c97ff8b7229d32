"""Tuned config.pbtxt vs Triton's untuned default, on the same real server, in the same run.

The tuned repository is what ``python -m optimizer recipe=int8`` emits. The untuned one is the
same model with Triton's defaults: no dynamic_batching, one instance, ONNX Runtime's own thread
count (the tuned intra/inter-op parameters removed). Both are served on the smoke-test server
(``optimizer.tritonserver.server``; the python-backend swap when no ONNX Runtime backend is installed)
and load-tested by ``optimizer.tritonserver.serve_check.load_test``: one-sample unary gRPC requests, 8 kept in
flight by a lean asyncio client that shares the cores with the server. Rounds alternate
untuned/tuned so drift on a shared machine hits both. Prints requests/s, p99 and the ratios (of the
medians, and the median of the per-round ratios).

    python experiments/bench_triton_tuning.py [--repository DIR] [--rounds 3] [--requests 2000]
                                              [--alt PREFERRED:DELAY_US ...]
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FAST = ["benchmark.batch_sizes=[1,8]", "benchmark.min_repeats=20", "benchmark.max_seconds=0.5",
        "tracking.enabled=false"]


def emitted_repository(work: Path) -> Path:
    """Run the default int8 recipe once (cached artifacts are reused) and return its repository."""
    out = work / "run"
    subprocess.run([sys.executable, "-m", "optimizer", "recipe=int8", *FAST, f"hydra.run.dir={out}"],
                   cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return out / "model_repository"


def edited_copy(repository: Path, into: Path, edit) -> Path:
    """A copy of ``repository`` whose every config.pbtxt went through ``edit(ModelConfig)``."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    shutil.copytree(repository, into)
    for path in into.glob("*/config.pbtxt"):
        c = text_format.Parse(path.read_text(), mc.ModelConfig())
        edit(c)
        path.write_text(text_format.MessageToString(c))
    return into


def untuned(c) -> None:
    """Triton's defaults: no dynamic batching, one instance, ONNX Runtime's default threads."""
    c.ClearField("dynamic_batching")
    for g in c.instance_group:
        g.count = 1
    for key in ("intra_op_thread_count", "inter_op_thread_count"):
        if key in c.parameters:
            del c.parameters[key]


def batching(preferred: int, delay_us: int):
    """The tuned config with another preferred batch size (0: none) and queue delay."""
    def edit(c) -> None:
        c.dynamic_batching.preferred_batch_size[:] = [preferred] if preferred else []
        c.dynamic_batching.max_queue_delay_microseconds = delay_us
    return edit


def measure(repository: Path, concurrency: int, requests: int, seconds: float) -> dict:
    from optimizer.tritonserver.serve_check import Settings, check_repository

    record = check_repository(repository, Settings([concurrency], requests, seconds))
    if not record["passed"]:
        raise SystemExit(f"server check failed: {record['error']}")
    (m,) = record["models"].values()
    return {**m["load"][0], "ready_seconds": m["ready_seconds"], "max_abs_diff": m["max_abs_diff"],
            "server": record["server"], "swapped": record["platform_swapped"]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repository", type=Path, default=None, help="an emitted model_repository (default: emit one)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--sla-ms", type=float, default=50.0, help="serving.p99_ms of the recipe (default recipe: 50)")
    p.add_argument("--alt", action="append", default=[], metavar="PREFERRED:DELAY_US",
                   help="also serve the tuned config with this preferred batch size (0: none) and queue delay")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tuned = a.repository or emitted_repository(work)
        print("tuned config.pbtxt:\n" + next(tuned.glob("*/config.pbtxt")).read_text())
        repos = {"untuned": edited_copy(tuned, work / "untuned", untuned), "tuned": tuned}
        for alt in a.alt:
            preferred, delay = (int(x) for x in alt.split(":"))
            repos[f"preferred {preferred or 'none'}, delay {delay} us"] = edited_copy(
                tuned, work / f"alt-{preferred}-{delay}", batching(preferred, delay))
        width = max(map(len, repos))
        runs = {name: [] for name in repos}
        for r in range(a.rounds):
            for name, repo in repos.items():
                m = measure(repo, a.concurrency, a.requests, a.seconds)
                runs[name].append(m)
                cpu = (f"; batch {m.get('avg_batch', float('nan')):.2f}; CPU/request server "
                       f"{m['server_cpu_ms_per_request']:.2f} ms, client {m['client_cpu_ms_per_request']:.2f} ms"
                       if "server_cpu_ms_per_request" in m else "")
                print(f"round {r + 1} {name:>{width}}: {m['requests_per_s']:8.1f} req/s  p50 {m['p50_ms']:.2f} ms  "
                      f"p99 {m['p99_ms']:.2f} ms  ({m['requests']} requests, READY {m['ready_seconds']:.2f} s){cpu}",
                      flush=True)
        med = {k: statistics.median(x["requests_per_s"] for x in v) for k, v in runs.items()}
        p99 = {k: statistics.median(x["p99_ms"] for x in v) for k, v in runs.items()}
        print(f"server: {runs['tuned'][0]['server']}" + ("  [platform swapped to the python backend]"
                                                         if runs["tuned"][0]["swapped"] else ""))
        for name in repos:
            vs = "" if name == "untuned" else f"  ({med[name] / med['untuned']:.2f}x untuned)"
            print(f"median at concurrency {a.concurrency}, {name:>{width}}: {med[name]:8.1f} req/s, "
                  f"p99 {p99[name]:.2f} ms{vs}")
        print(f"SLA {a.sla_ms} ms: tuned p99 {'within' if p99['tuned'] <= a.sla_ms else 'MISSED'}")
        rounds = [t["requests_per_s"] / u["requests_per_s"] for u, t in zip(runs["untuned"], runs["tuned"])]
        print(f"ratio tuned/untuned per round: {', '.join(f'{r:.2f}x' for r in rounds)}; "
              f"median {statistics.median(rounds):.2f}x")
        print(f"ratio of the medians tuned/untuned: {med['tuned'] / med['untuned']:.2f}x (target ≥ 1.3x)")
        print(json.dumps({"ratio": med["tuned"] / med["untuned"], "round_ratios": rounds,
                          "median_rps": med, "median_p99_ms": p99}))


if __name__ == "__main__":
    main()
