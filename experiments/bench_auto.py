"""Targets of recipe=auto on the built-in model, from one run's own summary.json.

1. Beat the hand recipes: the chosen variant's throughput at batch 32 against the int8 recipe's chain (the
   incumbent trial of the same name), both from the run's one measurement set (target >= 1.2x, at most 1 point
   accuracy drop, at most 20 trials and 15 minutes on 2 cores).
2. The cumulative dashboard: the chosen variant served, against torch FP32 at batch 1 (targets >= 20x throughput,
   >= 12.5x lower cost per million, at most 1 point accuracy drop).

Usage: python experiments/bench_auto.py [--cache DIR] [--out DIR] [extra overrides ...]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", default=os.environ.get("OPTIMIZER_CACHE_DIR", str(Path.home() / ".cache/optimizer")))
    ap.add_argument("--out", default="/tmp/bench_auto")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    cmd = [sys.executable, "-m", "optimizer", "recipe=auto", "benchmark.batch_sizes=[1,32]", "tracking.enabled=false",
           "triton.emit=true", f"hydra.run.dir={args.out}", *args.overrides]
    t0, load0 = time.time(), os.getloadavg()
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "OPTIMIZER_CACHE_DIR": args.cache}, text=True,
                          capture_output=True)
    seconds = time.time() - t0
    s = json.loads((Path(args.out) / "summary.json").read_text())
    if "search" not in s:
        print(json.dumps({"command": " ".join(cmd), "exit_code": proc.returncode, "error": s.get("error")}, indent=2))
        return proc.returncode or 1
    by = {v["name"]: v for v in s["variants"]}
    trials = {f"trial{t['trial']}": t for t in s["search"]["trials"]}
    int8 = next(n for n, t in trials.items() if t["params"] == {"prune": None})
    chosen = by[s["chosen"]]
    ratio = chosen["benchmark"]["32"]["throughput"] / by[int8]["benchmark"]["32"]["throughput"]
    served = s["story"]["dashboard"]["rows"][-1]
    print(json.dumps({
        "command": " ".join(cmd), "exit_code": proc.returncode, "seconds": round(seconds), "load_before": load0,
        "load_after": os.getloadavg(), "trials": len(trials), "stopped": s["search"]["stopped"],
        "chosen": s["chosen"], "chosen_params": trials[s["chosen"]]["params"], "int8_trial": int8,
        "chosen_over_int8_b32": round(ratio, 2), "accuracy_drop": chosen["evaluation"].get("score_drop"),
        "served_row": served, "verdict": s["story"]["verdict"]}, indent=2))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
