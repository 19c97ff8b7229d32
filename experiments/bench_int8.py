"""Targets of the int8 recipe on the built-in model, as ratios measured in one run.

1. Cold vs warm: `python -m optimizer recipe=int8` twice on an empty cache; the second run
   executes no pass and reuses the measurements (target: >= 10x faster; cold <= 180 s).
2. Speed: the int8 variant against torch eager FP32 at batch 32, timed in alternating
   blocks (A B A B ...) in one process so both see the same machine state (target >= 2.0x),
   with the accuracy drop from the run's summary (target <= 1 point).

Usage: python experiments/bench_int8.py [--rounds 5]
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


def timed_run(cache: Path, out: Path):
    env = {**os.environ, "OPTIMIZER_CACHE_DIR": str(cache)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "optimizer", "recipe=int8", f"hydra.run.dir={out}"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return seconds, json.loads((out / "summary.json").read_text())


def alternating(summary, rounds: int, batch: int = 32):
    from optimizer.artifact import Artifact
    from optimizer.io import batch_of
    from optimizer.measure.benchmark import summarize, time_calls
    from optimizer.config import BenchmarkConfig, HardwareConfig
    from optimizer.sources.data import DataConfig, load_splits
    from optimizer.formats import load

    hw = HardwareConfig()
    arts = {v["name"]: Artifact.load((Path(summary["paths"]["cache_dir"]) / v["path"]).parent) for v in summary["variants"] if v["name"] != "reference"}
    ref = summary["variants"][0]
    arts["reference"] = Artifact.load((Path(summary["paths"]["cache_dir"]) / ref["path"]).parent)
    x = batch_of(load_splits(DataConfig()).evaluation, batch)
    cfg = BenchmarkConfig(min_repeats=50, max_seconds=2.0)
    tput = {"reference": [], "quantize": []}
    for _ in range(rounds):
        for name in tput:
            session = load(arts[name], hw)
            tput[name].append(summarize(time_calls(lambda: session(x), cfg), batch)["throughput"])
            session.close()
    return {k: statistics.median(v) for k, v in tput.items()}, tput


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cold, summary = timed_run(tmp / "cache", tmp / "cold")
        warm, warm_summary = timed_run(tmp / "cache", tmp / "warm")
        v = {x["name"]: x for x in summary["variants"]}
        med, raw = alternating(summary, args.rounds)
    print(f"cold run: {cold:.1f} s (target <= 180 s); passes run: {summary['passes_run']}")
    print(f"warm run: {warm:.1f} s; passes run: {warm_summary['passes_run']}; "
          f"cold/warm = {cold / warm:.1f}x (target >= 10x)")
    print(f"in-run summary: int8 speed-up vs torch fp32 at batch 32 = {v['quantize']['speedup']['32']:.2f}x")
    print(f"alternating blocks ({args.rounds} rounds, batch 32): torch fp32 {med['reference']:.0f} samples/s, "
          f"int8 {med['quantize']:.0f} samples/s, ratio {med['quantize'] / med['reference']:.2f}x (target >= 2.0x)")
    print(f"  per-round throughputs: { {k: [round(t) for t in ts] for k, ts in raw.items()} }")
    print(f"accuracy: reference {v['reference']['evaluation']['accuracy']:.2f} %, int8 "
          f"{v['quantize']['evaluation']['accuracy']:.2f} %, drop {v['quantize']['evaluation']['accuracy_drop']:.2f} "
          f"points (target <= 1.0)")


if __name__ == "__main__":
    main()
