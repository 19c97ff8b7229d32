"""Pruning and distillation vs quantization alone, on the default model (same-run ratios).

    python experiments/bench_prune_distill.py [--rounds 15] [--seconds 0.5]

Builds (or takes from the cache) the variants of three recipes on the default built-in model:
``int8`` (export -> fuse -> static INT8), ``prune50_int8`` (prune 50 % of channels -> fine-tune
-> the same chain) and ``distill_int8`` (a half-width student distilled from the model -> the same
chain). Then it checks the issue's two targets:

1. prune50_int8 reaches >= 1.5x the throughput of int8 (ONNX Runtime, batch 32) with <= 1.5
   points accuracy drop against the FP32 reference;
2. the distilled student is >= 2x faster than its teacher (torch eager, batch 32) with <= 2
   points accuracy drop.

The machine is shared with other jobs, so the two sides of each ratio are timed in the same
run, interleaved: each round times every model for a fixed time, in rotating order, and the
ratio reported is the median of the per-round ratios (with its inter-quartile range).
Accuracy is on the evaluation split, which no pass trains on."""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from optimizer.io import batch_of
from optimizer.cache import Cache
from optimizer.evaluate import predict
from optimizer.pipeline import plan, run_chain
from optimizer.recipe.compose import compose
from optimizer.formats import load


def build(recipe: str):
    """``{step label: artifact}`` of ``recipe`` on the default model, reusing the cache."""
    from optimizer.sources.data import load_splits
    from optimizer.sources.models import load_source

    cfg = compose(recipe)
    cache = Cache(cfg.cache_dir)
    splits = load_splits(cfg.data, cfg.seed)
    source = load_source(cfg.model, splits, cache, cfg.seed)
    out = Path(tempfile.mkdtemp(prefix=f"bench-{recipe}-"))
    ctx = {"data": splits, "hardware": cfg.hardware, "seed": cfg.seed}
    variants = run_chain(plan(cfg), source, cache, ctx, out)
    failed = [f"{v.name}: {v.error}" for v in variants if v.status != "ok"]
    if failed:
        raise SystemExit(f"{recipe} failed: {failed}")
    return {v.name: v.artifact for v in variants}, splits, cfg.hardware


def throughput(session, x: np.ndarray, seconds: float) -> float:
    """Samples per second of ``session`` on batch ``x`` over ``seconds`` (after 3 warm-up calls)."""
    for _ in range(3):
        session(x)
    calls, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or calls < 5:
        session(x)
        calls += 1
    return len(x) * calls / (time.perf_counter() - t0)


def interleaved(sessions: dict, x: np.ndarray, rounds: int, seconds: float) -> dict:
    """``{name: [throughput per round]}``; the order rotates every round."""
    names = list(sessions)
    out = {n: [] for n in names}
    for r in range(rounds):
        for n in names[r % len(names):] + names[: r % len(names)]:
            time.sleep(0.05)  # let the previous runtime's thread pool wind down
            out[n].append(throughput(sessions[n], x, seconds))
    return out


def ratio_line(label: str, fast: list, slow: list, target: float) -> str:
    ratios = np.asarray(fast) / np.asarray(slow)
    q1, med, q3 = np.percentile(ratios, [25, 50, 75])
    verdict = "PASS" if med >= target else "FAIL"
    return (f"{label}: {med:.2f}x (IQR {q1:.2f}-{q3:.2f}, {len(ratios)} rounds; "
            f"{np.median(fast):.0f} vs {np.median(slow):.0f} samples/s)  target >= {target}x  {verdict}")


def accuracy(art, splits, hw) -> float:
    session = load(art, hw)
    try:
        return float((predict(session, splits.evaluation, 64)["logits"].argmax(1) == splits.evaluation_labels).mean() * 100)
    finally:
        session.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15, help="interleaved timing rounds")
    ap.add_argument("--seconds", type=float, default=0.5, help="timed seconds per model per round")
    ap.add_argument("--batch", type=int, default=32, help="batch size")
    args = ap.parse_args()

    int8, splits, hw = build("int8")
    pruned, _, _ = build("prune50_int8")
    distilled, _, _ = build("distill_int8")
    x = batch_of(splits.evaluation, args.batch)
    print(f"host: {os.cpu_count()} CPUs, hardware entry {hw.name} ({hw.cores} cores), batch {args.batch}, "
          f"cache {compose('int8').cache_dir}")

    acc = {name: accuracy(art, splits, hw) for name, art in [
        ("fp32 reference", int8["reference"]), ("int8", int8["quantize"]),
        ("pruned fp32 (torch)", pruned["prune"]), ("prune50_int8", pruned["quantize"]),
        ("student fp32 (torch)", distilled["distill"]), ("distill_int8", distilled["quantize"])]}
    ref = acc["fp32 reference"]
    print("\naccuracy on the evaluation split (drop vs fp32 reference):")
    for name, a in acc.items():
        print(f"  {name:22s} {a:6.2f} %  ({ref - a:+.2f} points)")

    pm, dm = pruned["prune"].meta, distilled["distill"].meta
    print("\nprune (50 % of channels, uniform, L2, round_to 8):")
    print(f"  params {pm['params_before']:,} -> {pm['params_after']:,} (-{100 * pm['param_reduction']:.1f} %), "
          f"MACs {pm['macs_before']:,} -> {pm['macs_after']:,} (-{100 * pm['mac_reduction']:.1f} %)")
    print(f"  accuracy after pruning {pm['accuracy_after_prune']:.2f} %, after fine-tuning "
          f"{pm['accuracy_after_finetune']:.2f} % ({pm['finetune_epochs']} epochs)")
    print("distill (student = built-in architecture at half width):")
    print(f"  params {dm['teacher_params']:,} -> {dm['student_params']:,}, MACs {dm['teacher_macs']:,} -> "
          f"{dm['student_macs']:,}; accuracy teacher {dm['teacher_accuracy']:.2f} %, "
          f"student {dm['student_accuracy']:.2f} %")

    onnx = {n: load(a, hw) for n, a in [("int8", int8["quantize"]), ("prune50_int8", pruned["quantize"]),
                                        ("distill_int8", distilled["quantize"])]}
    eager = {n: load(a, hw) for n, a in [("teacher", int8["reference"]), ("student", distilled["distill"])]}
    t_onnx = interleaved(onnx, x, args.rounds, args.seconds)
    t_eager = interleaved(eager, x, args.rounds, args.seconds)

    print(f"\nthroughput ratios at batch {args.batch} (median of per-round ratios, same run, interleaved):")
    print("  " + ratio_line("prune50_int8 / int8 (onnxruntime)", t_onnx["prune50_int8"], t_onnx["int8"], 1.5))
    print("  " + ratio_line("distill_int8 / int8 (onnxruntime)", t_onnx["distill_int8"], t_onnx["int8"], 1.5))
    print("  " + ratio_line("student / teacher (torch eager)", t_eager["student"], t_eager["teacher"], 2.0))
    drop_p = ref - acc["prune50_int8"]
    drop_s = dm["teacher_accuracy"] - dm["student_accuracy"]
    verdict = {True: "PASS", False: "FAIL"}
    print(f"\naccuracy targets: prune50_int8 drop {drop_p:+.2f} points (<= 1.5: {verdict[drop_p <= 1.5]}); "
          f"student drop vs teacher {drop_s:+.2f} points (<= 2: {verdict[drop_s <= 2]})")


if __name__ == "__main__":
    main()
