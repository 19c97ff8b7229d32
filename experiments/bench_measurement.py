"""How far the measurement of `recipe=int8` can be trusted, on this machine, as it is loaded right now.

1. Cold run: `python -m optimizer recipe=int8` on an empty cache (target <= 180 s), with what the worker
   processes cost (start-up and loading, timed phase, their peak memory).
2. Repeatability: the same variants measured three times (the cold run's set, then two fresh sets with
   `benchmark.reuse=false`): every speed-up within +-5 % of the median of the three.
3. Robustness: one more set while a CPU burner this script starts runs on one core: speed-ups within
   +-15 % of the quiet median, and no verdict flips.
4. Two byte-identical variants (the same ONNX file as two variants, beside the torch reference): their
   batch-1 throughputs within +-3 % of each other.

Every figure is printed with the load average before and after its measurement.

Usage: python experiments/bench_measurement.py [--rounds 5] [--threads 1]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def cold_run(cache: Path, out: Path, extra=()):
    env = {**os.environ, "OPTIMIZER_CACHE_DIR": str(cache)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "optimizer", "recipe=int8", "tracking.enabled=false", *extra,
                           f"hydra.run.dir={out}"], cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return seconds, json.loads((out / "summary.json").read_text())


def variants_of(summary):
    from optimizer.artifact import Artifact
    from optimizer.pipeline import Variant

    return [Variant(v["name"], v["chain"], Artifact.load((Path(summary["paths"]["cache_dir"]) / v["path"]).parent)) for v in summary["variants"]]


def measure_again(variants, cache: Path, rounds: int, extra=()):
    from optimizer.cache import Cache
    from optimizer.measure.run import measure
    from optimizer.recipe.compose import compose
    from optimizer.sources.data import load_splits

    cfg = compose("int8", [f"cache_dir={cache}", "benchmark.reuse=false", f"benchmark.rounds={rounds}", *extra])
    return measure(variants, load_splits(cfg.data, cfg.seed), cfg, Cache(cache), "classification")


def load(session) -> str:
    return f"load average {session['load_before'][0]:.2f} -> {session['load_after'][0]:.2f}"


def burner():
    """A busy loop pinned to the last core."""
    code = "import os; os.sched_setaffinity(0, {os.cpu_count() - 1})\nwhile True: pass"
    return subprocess.Popen([sys.executable, "-c", code])


def spread(sets, names, sizes):
    """Per variant and batch size: the speed-ups of each set, their median, the largest deviation (%)."""
    rows, worst = [], 0.0
    for n in names:
        for bs in sizes:
            values = [s.variants[n]["speedup"][bs] for s in sets]
            med = statistics.median(values)
            dev = max(abs(v / med - 1) for v in values) * 100
            worst = max(worst, dev)
            verdicts = "/".join(s.variants[n]["verdict"][bs] for s in sets)
            rows.append(f"  {n:9s} b{bs:<3s} " + "  ".join(f"{v:5.2f}x" for v in values)
                        + f"   median {med:5.2f}x  max dev {dev:4.1f} %  verdicts {verdicts}")
    return rows, worst


def main():
    sys.stdout.reconfigure(line_buffering=True)
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="hardware.intra_op_threads (0: the recipe's, all cores)")
    args = parser.parse_args()
    hw = [f"hardware.intra_op_threads={args.threads}"] if args.threads else []
    print(f"machine: {os.cpu_count()} cores, load average at start {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cold, summary = cold_run(tmp / "cache", tmp / "cold", hw)
        m = summary["measurement"]
        print(f"\n1. cold recipe=int8: {cold:.1f} s (target <= 180 s); measurement {m['seconds']:.1f} s of it: worker "
              f"start-up and loading {m['startup_seconds']:.1f} s, timed rounds {m['timing_seconds']:.1f} s; worker peak "
              f"memory " + ", ".join(f"{v['name']} {v.get('peak_memory_mb', 0):.0f} MB" for v in summary["variants"])
              + f"; {load(m)}")
        variants = variants_of(summary)
        names, sizes = [v.name for v in variants[1:]], [str(b) for b in summary["benchmark_batch_sizes"]]
        first = type("Set", (), {"variants": {v["name"]: v for v in summary["variants"]}, "session": m})
        sets = [first] + [measure_again(variants, tmp / "cache", args.rounds, hw) for _ in range(2)]
        rows, worst = spread(sets, names, sizes)
        print(f"\n2. repeatability, three sets ({'; '.join(load(s.session) for s in sets)}):")
        print("\n".join(rows) + f"\n  largest deviation from the median: {worst:.1f} % (target <= 5 %)")
        for n in ("reference", names[-1]):
            print(f"  {n} samples/s per set: " + "; ".join(
                f"b{bs} " + "/".join(f"{s.variants[n]['benchmark'][bs]['throughput']:.0f}" for s in sets) for bs in sizes))
        quiet = {(n, bs): statistics.median(s.variants[n]["speedup"][bs] for s in sets) for n in names for bs in sizes}
        proc = burner()
        try:
            time.sleep(1.0)
            busy = measure_again(variants, tmp / "cache", args.rounds, hw)
        finally:
            proc.kill()
            proc.wait()
        print(f"\n3. with a CPU burner on one core ({load(busy.session)}):")
        worst, flips = 0.0, []
        for n in names:
            for bs in sizes:
                v, q = busy.variants[n]["speedup"][bs], quiet[(n, bs)]
                worst = max(worst, abs(v / q - 1) * 100)
                verdicts = {s.variants[n]["verdict"][bs] for s in sets}
                flipped = busy.variants[n]["verdict"][bs] not in verdicts
                flips += [f"{n} b{bs}"] if flipped else []
                lo, hi = busy.variants[n]["speedup_interval"][bs]
                print(f"  {n:9s} b{bs:<3s} {v:5.2f}x [{lo:.2f}, {hi:.2f}] {busy.variants[n]['verdict'][bs]:6s} "
                      f"quiet {q:5.2f}x  dev {abs(v / q - 1) * 100:4.1f} %" + ("  VERDICT FLIPPED" if flipped else ""))
        print(f"  largest deviation {worst:.1f} % (target <= 15 %); verdict flips: {', '.join(flips) or 'none'}")
        print("  reference samples/s: " + "; ".join(f"b{bs} {busy.variants['reference']['benchmark'][bs]['throughput']:.0f}"
                                                  for bs in sizes))
        same = variants_of(summary)
        same = [same[0], same[2], type(same[2])("fuse_copy", ["copy"], same[2].artifact.evolve(id="copy"))]
        twin = measure_again(same, tmp / "cache", args.rounds, ["benchmark.batch_sizes=[1]", *hw])
        a, b = (twin.variants[n]["benchmark"]["1"] for n in ("fuse", "fuse_copy"))
        print(f"\n4. the same ONNX file as two variants beside the torch reference, batch 1 ({load(twin.session)}): "
              f"{a['throughput']:.0f} vs {b['throughput']:.0f} samples/s, p50 {a['p50_ms']:.3f} vs {b['p50_ms']:.3f} ms, "
              f"ratio {a['throughput'] / b['throughput']:.3f} (target within 1 +- 0.03)")
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
