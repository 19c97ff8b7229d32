"""The GPU path on a GPU: TensorRT engines against torch eager on the same GPU, measured with the product's own
protocol (one worker process per variant, interleaved rounds, speed-ups with their interval over rounds).

For each model (the built-in ResNet and vit_digits), the variants are built with the product's passes, as the
trt_fp16 and trt_int8 recipes build them, and measured together as one set at batch 1 and 32:

  torch eager FP32 on CUDA (the reference) · ONNX FP32, FP16 and INT8 (QDQ, symmetric) on ONNX Runtime's CUDA
  provider · TensorRT FP16 engine · TensorRT INT8 engine (from the QDQ model)

then the ONNX variants again on ONNX Runtime's TensorRT provider (`hardware.onnx_provider=tensorrt`), as a
second set with its own torch reference. Printed: accuracy and its drop, mean cosine to the reference,
throughput, p50/p99, speed-up vs torch with its interval and verdict, GPU memory per worker, and the two
headline ratios: TensorRT FP16 vs torch FP32, and TensorRT INT8 vs TensorRT FP16 (same set, same rounds).

Usage: python experiments/bench_gpu.py [--models builtin,builtin:vit_digits] [--batches 1,32] [--rounds 5]
       [--seconds 0.5] [--out experiments/results/gpu.txt] [--cache DIR]
"""

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHAINS = {  # chain name -> recipe steps (label, pass type, params); chains share their prefix in the cache
    "fp16": [("export", "onnx_export", {"opset": 18}), ("fuse", "fuse", {"ort_level": "basic", "transformer": "none"}),
             ("onnx fp16", "quantize", {"mode": "fp16"}), ("trt fp16", "tensorrt", {})],
    "int8": [("export", "onnx_export", {"opset": 18}), ("fuse", "fuse", {"ort_level": "basic", "transformer": "none"}),
             ("onnx int8", "quantize", {"mode": "static"}), ("trt int8", "tensorrt", {})],
}


def recipe(model: str, batches, rounds: int, seconds: float, provider: str = "cuda"):
    """The composed trt_fp16 recipe retargeted at this machine's GPU, with this benchmark's settings."""
    from optimizer import gpu
    from optimizer.recipe.compose import compose

    name = gpu.gpus()[0].name if gpu.gpus() else "none"
    overrides = [f"benchmark.batch_sizes=[{','.join(map(str, batches))}]", f"benchmark.rounds={rounds}",
                 f"benchmark.max_seconds={seconds * rounds}", "benchmark.reuse=false", "tracking.enabled=false",
                 "hardware.name=gpu-check", f"hardware.cores={os.cpu_count()}", "hardware.price_per_hour=null",
                 f"hardware.gpu='{name}'", f"hardware.onnx_provider={provider}"]
    if model != "builtin":
        overrides.append("model=vit_digits" if model == "builtin:vit_digits" else f"model.source={model}")
    return compose("trt_fp16", overrides)


def build(cfg, out: Path):
    """Every variant of both chains (cache hits after the first build), the reference first."""
    from optimizer.cache import Cache
    from optimizer.pipeline import run_chain
    from optimizer.recipe.plan import Step, check_environment
    from optimizer.registry import load_passes
    from optimizer.sources.data import load_splits
    from optimizer.sources.models import load_source
    from optimizer.recipe.plan import typed

    passes = load_passes()
    cache = Cache(cfg.cache_dir)
    splits = load_splits(cfg.data, cfg.seed, cfg.model)
    source = load_source(cfg.model, splits, cache, cfg.seed)
    variants, seen = [], set()
    for chain in CHAINS.values():
        steps = []
        for label, kind, params in chain:
            spec = passes[kind]
            config = typed(spec.config_cls, params, f"passes.{label}")
            steps.append(Step(label, spec, spec.prepare(config, cfg) if spec.prepare else config))
        check_environment(steps, cfg)
        for v in run_chain(steps, source, cache, dict(data=splits, hardware=cfg.hardware, seed=cfg.seed), out):
            if v.name not in seen:
                seen.add(v.name)
                variants.append(v)
                if v.status != "ok":
                    print(f"  {v.name}: {v.status}: {v.error}", flush=True)
    return variants, splits, cache


def measured(cfg, variants, splits, cache):
    from optimizer.evaluate import resolve_task
    from optimizer.measure.run import measure

    return measure(variants, splits, cfg, cache, resolve_task(cfg.evaluation.task, splits.has_labels)).variants


def rows(title: str, results, batches, names, lines):
    lines.append(f"\n{title}")
    head = f"  {'variant':<12} {'acc %':>6} {'drop':>6} {'cosine':>7} {'GPU MiB':>8}"
    for b in batches:
        head += f" | b{b}: {'samples/s':>10} {'p50/p99 ms':>13} {'vs torch (interval)':>26}"
    lines.append(head)
    for name in names:
        r = results.get(name)
        if r is None:
            lines.append(f"  {name:<12} (not measured)")
            continue
        ev = r["evaluation"]
        acc = ev.get("accuracy", float("nan"))
        line = (f"  {name:<12} {acc:6.2f} {ev.get('accuracy_drop', 0.0):+6.2f} "
                f"{ev.get('mean_cosine', 1.0):7.4f} {r.get('gpu_memory_mb', float('nan')):8.0f}")
        for b in batches:
            m, key = r["benchmark"][str(b)], str(b)
            lo, hi = r.get("speedup_interval", {}).get(key, [1.0, 1.0])
            line += (f" | {'':>3} {m['throughput']:10.0f} {m['p50_ms']:6.3f}/{m['p99_ms']:6.3f} "
                     f"{r['speedup'][key]:7.2f}x ({lo:.2f}-{hi:.2f}) {r.get('verdict', {}).get(key, '-'):>6}")
        lines.append(line)


def slowest_layers(cfg, variants, splits, batch: int, top: int = 5):
    """The engines' slowest layers at ``batch`` (TensorRT's IProfiler, mean of 20 calls)."""
    from optimizer.formats.tensorrt import layer_times
    from optimizer.io import batch_of

    out = []
    for v in variants:
        if v.status == "ok" and v.artifact.format == "tensorrt":
            times = layer_times(v.artifact, cfg.hardware, batch_of(splits.evaluation, batch))
            total = sum(times.values())
            out.append(f"  {v.name} at batch {batch}: {len(times)} layers, {total:.3f} ms in layers; slowest: "
                       + "; ".join(f"{name[:60]} {ms:.3f} ms" for name, ms in list(times.items())[:top]))
    return out


def ratio(results, a: str, b: str, batch: int) -> str:
    if a not in results or b not in results:
        return "n/a"
    sa, sb = results[a]["speedup"][str(batch)], results[b]["speedup"][str(batch)]
    return f"{sa / sb:.2f}x"  # both against the same reference in the same rounds


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="builtin,builtin:vit_digits")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5, help="timed seconds per variant, batch and round")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "gpu.txt"))
    parser.add_argument("--skip-ort-tensorrt", action="store_true")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    from optimizer import gpu

    lines = [f"GPU check: {', '.join(f'{g.name} (compute capability {g.compute_capability})' for g in gpu.gpus())}; "
             f"TensorRT {gpu.tensorrt_version()}; {os.cpu_count()} CPUs",
             f"protocol: one worker per variant, {args.rounds} interleaved rounds of {args.seconds} s per batch size; "
             f"speed-ups are median-call throughput ratios vs torch eager FP32 on the same GPU, interval = range over rounds"]
    t_start = time.perf_counter()
    for model in args.models.split(","):
        t0 = time.perf_counter()
        cfg = recipe(model, batches, args.rounds, args.seconds)
        out = Path(cfg.cache_dir).expanduser() / "gpu-check-logs" / model.replace(":", "_")
        out.mkdir(parents=True, exist_ok=True)
        print(f"{model}: building variants", flush=True)
        variants, splits, cache = build(cfg, out)
        built = time.perf_counter() - t0
        print(f"{model}: measuring {len(variants)} variants", flush=True)
        res = measured(cfg, variants, splits, cache)
        order = ["reference", "fuse", "onnx fp16", "onnx int8", "trt fp16", "trt int8"]
        rows(f"{model} — TensorRT and ONNX Runtime (CUDA provider) vs torch eager FP32 on CUDA "
             f"(variants built in {built:.0f} s)", res, batches, order, lines)
        for b in batches:
            lines.append(f"  batch {b}: TensorRT FP16 vs torch FP32 {ratio(res, 'trt fp16', 'reference', b)}; "
                         f"TensorRT INT8 vs TensorRT FP16 {ratio(res, 'trt int8', 'trt fp16', b)}")
        lines += slowest_layers(cfg, variants, splits, max(batches))
        if not args.skip_ort_tensorrt:
            cfg_trt = replace(cfg, hardware=replace(cfg.hardware, onnx_provider="tensorrt"))
            keep = [v for v in variants if v.name in ("reference", "fuse", "onnx fp16", "onnx int8")]
            try:
                res_trt = measured(cfg_trt, keep, splits, cache)
                rows(f"{model} — ONNX Runtime with the TensorRT provider (engines cached beside each artifact)",
                     res_trt, batches, ["reference", "fuse", "onnx fp16", "onnx int8"], lines)
            except Exception as e:  # noqa: BLE001 - the provider's libraries may be missing; say so in the results
                lines.append(f"\n{model} — ONNX Runtime with the TensorRT provider: not measured: {e}")
        print("\n".join(lines[-12:]), flush=True)
    lines.append(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
