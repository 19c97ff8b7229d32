"""Does the regression gate (`gates.baseline=<summary.json>`) hold on this machine, as it is loaded right now?

Each repetition, on one temporary cache (OPTIMIZER_CACHE_DIR), tracking off, every run re-measuring
(`benchmark.reuse=false`):

a. `python -m optimizer recipe=int8` -> the baseline summary.json (chosen: quantize, static INT8);
b. the same recipe again, unchanged, with `gates.baseline=<a's summary.json>`: must pass (exit 0);
c. a recipe change that drops the fuse and INT8 steps (`recipe=baseline`: export only, chosen: the FP32
   ONNX export, about half as fast as int8's quantize here) with the same baseline: must fail with the gate
   exit code (3), a throughput gate naming the metric, the baseline value, the new value and the interval.

The gate compares this run's chosen variant with the baseline's chosen one (`gates.variants=chosen`), so
(c) is the regression the gate is there for: a pull request whose recipe makes the deployed model slower.
(c) also fails the size gate (an FP32 file is ~4x an INT8 one); it counts as caught only if a speed gate fails.
Same host, so speed compares in absolute figures. When a run's measurement was contended (other processes
used cores while it was timed) a speed gate beyond its limit is reported as inconclusive, not failed; (c)
then fails on its size gate, and counts as caught when its speed gates report the slowdown (failed or
inconclusive). Each repetition says which.

Prints per repetition the exit codes, every regression gate line of summary.json, the regression rows of
report.md and the load averages; at the end "caught slowdown k/N, passed unchanged m/N".

Usage: python experiments/bench_baseline_gate.py [--repeat 3]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def run(cache: Path, out: Path, recipe: str, extra=()):
    """One recipe run; (exit code, summary or None, seconds, load before, load after)."""
    env = {**os.environ, "OPTIMIZER_CACHE_DIR": str(cache)}
    before, t0 = load(), time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "optimizer", f"recipe={recipe}", "tracking.enabled=false",
                           "benchmark.reuse=false", *extra, f"hydra.run.dir={out}"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else None
    if summary is None or proc.returncode not in (0, 3):
        print(f"  run {recipe} -> exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc.returncode, summary, seconds, before, load()


def describe(label: str, rc: int, summary, seconds: float, before: str, after: str) -> None:
    chosen = summary.get("chosen") if summary else None
    print(f"  {label}: exit {rc}, status {summary and summary.get('status')}, chosen {chosen}, {seconds:.0f} s, "
          f"load average {before} -> {after}")
    if summary and chosen:
        b = next(v for v in summary["variants"] if v["name"] == chosen)["benchmark"]
        print("     chosen median-call samples/s: " + ", ".join(
            f"b{bs} {r.get('median_throughput', r['throughput']):.0f} (rounds {min(r['rounds']):.0f}-"
            f"{max(r['rounds']):.0f}), p99 {r['p99_ms']:.3f} ms" for bs, r in b.items()))
    reg = (summary or {}).get("regression")
    if reg:
        for g in reg["gates"]:
            print(f"     {'PASS' if g['passed'] else 'FAIL'} {g['message']}")


def report_rows(run_dir: Path):
    """The regression-gate table rows of report.md (the pull-request comment)."""
    path = run_dir / "report.md"
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("### Regression gates")), None)
    if start is None:
        return []
    return [line for line in lines[start + 1:] if line.startswith("|") and "---" not in line][1:]


def repetition(i: int, tmp: Path, cache: Path):
    d = tmp / f"rep{i}"
    print(f"\nrepetition {i} (load average {load()})")
    rc, base, *rest = run(cache, d / "a_baseline", "int8")
    describe("a. recipe=int8 (baseline)", rc, base, *rest)
    if rc != 0 or base is None:
        return False, False, False
    gate = [f"gates.baseline={d / 'a_baseline' / 'summary.json'}"]
    rc_b, same, *rest = run(cache, d / "b_unchanged", "int8", gate)
    describe("b. recipe=int8 unchanged, gates.baseline=a", rc_b, same, *rest)
    rc_c, slow, *rest = run(cache, d / "c_slower", "baseline", gate)
    describe("c. recipe=baseline (no fuse, no INT8), gates.baseline=a", rc_c, slow, *rest)
    for row in report_rows(d / "c_slower"):
        if "❌" in row or "fail" in row.lower():
            print(f"     report.md: {row}")
    for label, s in (("b", same), ("c", slow)):
        if s and s.get("regression", {}).get("contended"):
            print(f"     {label} regression note: {s['regression']['note']}")
    speed = [g for g in ((slow or {}).get("regression") or {}).get("gates", [])
             if g["name"].startswith(("throughput", "speedup", "p99"))]
    failed = [g["name"] for g in speed if not g["passed"]]
    inconclusive = [g["name"] for g in speed if g.get("inconclusive")]
    passed = rc_b == 0 and same is not None and same.get("regression", {}).get("passed") is True
    caught = rc_c == 3 and bool(failed or inconclusive)
    print(f"  -> unchanged {'passed' if passed else 'FAILED'}; slowdown {'caught' if caught else 'MISSED'}"
          f" (exit {rc_c}; speed gates failed: {', '.join(failed) or 'none'}; beyond the limit but inconclusive "
          f"under contention: {', '.join(inconclusive) or 'none'})")
    return passed, caught, bool(failed)


def main():
    sys.stdout.reconfigure(line_buffering=True)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="how many times to run a, b and c")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average at start {load()}")
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i in range(1, args.repeat + 1):
            results.append(repetition(i, tmp, tmp / "cache"))
    n = len(results)
    print(f"\nload average at the end {load()}")
    print(f"caught slowdown {sum(r[1] for r in results)}/{n}, passed unchanged {sum(r[0] for r in results)}/{n}"
          f" (slowdown failed a speed gate itself {sum(r[2] for r in results)}/{n})")


if __name__ == "__main__":
    main()
