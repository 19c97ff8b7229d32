"""How much does the MLflow store grow per run when nothing changed? (target: less than one model file)

Into a fresh store (a temporary SQLite database `tracking.uri=sqlite:///<tmp>/store/mlruns.db`, artifacts
beside it in `<tmp>/store/mlartifacts/`), on a temporary cache (OPTIMIZER_CACHE_DIR):

1. `python -m optimizer recipe=int8` once, cold (trains the built-in model, runs every pass, measures);
2. the same command `--runs` more times, warm: every pass and the measurement set come from the cache.

After each run the total bytes of the store (database, its journal files and the artifact directory) are
printed with the growth since the previous run and the artifact files that run added (largest first), beside
the chosen model file's size and every variant's. The warm runs change nothing, so a model file uploaded
again is waste: each variant's file should be uploaded once per artifact id (later runs point at it).

Prints "growth per warm run: X KB (model Y KB) — target met/missed" and the load averages.

On a loaded machine the measurement set is flagged (unstable or contended) and every warm run measures
again: new figures, new plots. `--reuse-set` lets the warm runs reuse the cold run's set, as on a quiet machine.

Usage: python experiments/bench_mlflow_growth.py [--runs 10] [--reuse-set]
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


def files(store: Path) -> dict:
    """Every file under the store and its size in bytes."""
    return {str(p.relative_to(store)): p.stat().st_size for p in store.rglob("*") if p.is_file()}


def run(cache: Path, store: Path, out: Path, extra=()):
    env = {**os.environ, "OPTIMIZER_CACHE_DIR": str(cache)}
    env.pop("MLFLOW_TRACKING_URI", None)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "optimizer", "recipe=int8", "tracking.enabled=true",
                           f"tracking.uri=sqlite:///{store / 'mlruns.db'}", "tracking.experiment=growth",
                           *extra, f"hydra.run.dir={out}"], cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0 or not (out / "summary.json").is_file():
        sys.exit(f"run failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    if "skipped" in summary.get("tracking", {}):
        sys.exit(f"tracking skipped: {summary['tracking']['skipped']}")
    return summary, seconds


def kb(n: float) -> str:
    return f"{n / 1024:.1f} KB"


def main():
    sys.stdout.reconfigure(line_buffering=True)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="warm re-runs after the cold one")
    parser.add_argument("--reuse-set", action="store_true",
                        help="benchmark.max_cv=1000 benchmark.max_foreign_cores=0: the cold run's measurement set "
                             "counts as stable on a loaded machine, so the warm runs reuse it as on a quiet one")
    args = parser.parse_args()
    extra = ["benchmark.max_cv=1000", "benchmark.max_foreign_cores=0"] if args.reuse_set else []
    print(f"machine: {os.cpu_count()} cores, load average at start {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store, cache = tmp / "store", tmp / "cache"
        store.mkdir()
        before, sizes, dbs, reused, model = {}, [], [], [], None
        for i in range(args.runs + 1):
            start = load()
            summary, seconds = run(cache, store, tmp / f"run{i}", extra)
            now = files(store)
            total = sum(now.values())
            added = {k: v for k, v in now.items() if k not in before and k.startswith("mlartifacts")}
            db = sum(v for k, v in now.items() if k.startswith("mlruns.db"))
            grown = total - (sum(before.values()) if before else 0)
            sizes.append(total)
            dbs.append(db)
            reused.append(bool(summary["measurement"].get("reused")))
            variants = {v["name"]: v.get("size_bytes", 0) for v in summary["variants"]}
            model = variants[summary["chosen"]]
            label = "cold" if i == 0 else f"warm {i}"
            print(f"\nrun {i} ({label}): {seconds:.0f} s, passes run {summary['passes_run']}, cached "
                  f"{summary['passes_cached']}, measurement {'reused' if summary['measurement'].get('reused') else 'new'}; "
                  f"load average {start} -> {load()}")
            print(f"  store {kb(total)} (database {kb(db)}, artifacts {kb(total - db)}); growth {kb(grown)}; "
                  f"chosen {summary['chosen']} model {kb(model)}; variants "
                  + ", ".join(f"{n} {kb(s)}" for n, s in variants.items()))
            print(f"  artifact files added: {len(added)}, {kb(sum(added.values()))}")
            for name, size in sorted(added.items(), key=lambda kv: -kv[1])[:8 if i else 12]:
                print(f"    {kb(size):>10}  {name.split('/', 3)[-1]}")
            before = now
        per_run = (sizes[-1] - sizes[0]) / max(args.runs, 1)
        per_db = (dbs[-1] - dbs[0]) / max(args.runs, 1)
        met = per_run < model
        print(f"\nload average at the end {load()}")
        print(f"warm runs with the measurement set reused: {sum(reused[1:])}/{args.runs}; per warm run the database "
              f"grew {per_db / 1024:.1f} KB, the artifacts {(per_run - per_db) / 1024:.1f} KB")
        grown = [b - a for a, b in zip(sizes, sizes[1:])]
        for flag, label in ((True, "reused"), (False, "re-measured")):
            runs = [g for g, r in zip(grown, reused[1:]) if r == flag]
            if runs:
                print(f"  warm runs with the set {label}: {len(runs)}, mean growth {sum(runs) / len(runs) / 1024:.1f} KB")
        print(f"growth per warm run: {per_run / 1024:.1f} KB (model {model / 1024:.1f} KB) — target "
              f"{'met' if met else 'missed'}")


if __name__ == "__main__":
    main()
