"""The built-in Vision Transformer (`model=vit_digits`) through the product's own recipes, against torch eager
FP32 at batch 32: accuracy and speed-up of every variant, as `python -m optimizer` measures them (each
variant in its own worker process, interleaved rounds, per-round ratios; see README "What a run measures").

Runs `recipe=transformer_int8` (export -> transformer fusion -> dynamic INT8 per-channel) and `recipe=int8`
(static QDQ, uint8 activations) on the built-in width (128), then `transformer_int8` on a width-64 ViT for
comparison, each `--repeats` times with fresh measurements (`benchmark.reuse=false`). The first run of each
trains the model once (cached in an isolated cache directory, or in `--cache`).

Usage: python experiments/bench_vit.py [--repeats 2] [--cache DIR]
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
RUNS = {  # label -> overrides
    "width 128, transformer_int8": ["recipe=transformer_int8"],
    "width 128, int8 (static)": ["recipe=int8"],
    "width 64, transformer_int8": ["recipe=transformer_int8", "+model.kwargs={dim:64}"],
}


def run(overrides, cache: Path, out: Path) -> tuple:
    env = {**os.environ, "OPTIMIZER_CACHE_DIR": str(cache)}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "optimizer", "model=vit_digits", *overrides, "tracking.enabled=false",
                           "triton.emit=false", "benchmark.reuse=false", f"hydra.run.dir={out}"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{overrides} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - t0, json.loads((out / "summary.json").read_text())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=None, help="cache directory (default: a fresh temporary one)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_vit_") as tmp:
        cache = args.cache or Path(tmp) / "cache"
        print(f"2 cores, load average at start {os.getloadavg()[0]:.2f}")
        for label, overrides in RUNS.items():
            for i in range(args.repeats):
                seconds, s = run(overrides, cache, Path(tmp) / f"{len(label)}-{i}")
                m = s["measurement"]
                print(f"\n{label}, run {i + 1} ({seconds:.0f} s; load average {m['load_before'][0]:.2f} -> "
                      f"{m['load_after'][0]:.2f})")
                for v in s["variants"]:
                    ev, bs = v.get("evaluation", {}), "32"
                    lo, hi = v.get("speedup_interval", {}).get(bs, [float("nan")] * 2)
                    print(f"  {v['name']:<10} {v.get('precision', ''):<13} acc {ev.get('score', float('nan')):6.2f} % "
                          f"(drop {ev.get('score_drop', 0.0):+.2f}) | b32 {v.get('speedup', {}).get(bs, float('nan')):5.2f}x "
                          f"torch eager (rounds {lo:.2f}-{hi:.2f}) {v.get('verdict', {}).get(bs, '')} | "
                          f"{v.get('size_bytes', 0) / 1024:.0f} KB{'  <- chosen' if v['name'] == s.get('chosen') else ''}")


if __name__ == "__main__":
    main()
