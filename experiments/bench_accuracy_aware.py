"""Accuracy-aware static INT8 (``passes.quantize.accuracy_aware``) on a BERT-family encoder, against plain static
INT8, dynamic INT8 and FP32.

The encoder is the MiniLM-size BERT of ``bench_transformer.py`` (6 layers, hidden 384, random weights, seeded)
returning its last hidden state [batch, sequence, 384] (a mean-pooled embedding of random weights points almost
the same way for every input, so its cosine barely moves). Real BERTs carry a few huge activation channels into
their feed-forward output projection (GELU outputs in the hundreds, e.g. Bondarenko et al., 2021), which is what
breaks per-tensor static INT8; random weights lack them, so ``--outlier`` puts them in: in layers ``--layers``
four intermediate channels of the first feed-forward projection are scaled up by ``--outlier`` and the same rows of
the second scaled down by it (the float model's function barely changes; the second projection's input range
grows by that factor). All variants come from the exported graph through the fuse and quantize passes.

Parity: mean cosine of each variant's hidden states to FP32 ONNX on 32 held-out padded sequences (the figure the
pass's bound uses, on other data). Speed: median latency at batch 8, sequence 128, 2 intra-op threads, each
variant in its own process, interleaved rounds (order rotated every round), the other jobs' CPU share logged.

Usage: python experiments/bench_accuracy_aware.py [--rounds 3] [--seconds 2] [--outlier 200]
"""

import argparse
import contextlib
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_transformer as bt  # noqa: E402 - the encoder, its feeds and the CPU-share readers

NAMES = bt.NAMES


def build(outlier: float, layers, seed=0):
    import torch
    from transformers import BertConfig, BertModel

    class Hidden(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    torch.manual_seed(seed)
    bert = BertModel(BertConfig(**bt.CONFIG, attn_implementation="eager"), add_pooling_layer=False).eval()
    with torch.no_grad():
        for i in layers:
            layer = bert.encoder.layer[i]
            channels = torch.arange(4) * 97 + 11
            layer.intermediate.dense.weight[channels] *= outlier
            layer.intermediate.dense.bias[channels] = outlier * 0.5
            layer.output.dense.weight[:, channels] /= outlier
    return Hidden(bert).eval()


def export(module, path: Path):
    import torch

    sample = tuple(torch.from_numpy(bt.feeds(2, 16, seed=9)[k]) for k in NAMES)
    axes = {**{k: {0: "batch", 1: "sequence"} for k in NAMES}, "hidden": {0: "batch", 1: "sequence"}}
    torch.onnx.export(module, sample, str(path), input_names=list(NAMES), output_names=["hidden"],
                      opset_version=17, dynamo=False, do_constant_folding=True, dynamic_axes=axes)


def make_variants(work: Path, args) -> tuple:
    """{name: onnx path}, {name: seconds the step took}, the accuracy-aware record."""
    from optimizer.artifact import Artifact
    from optimizer.config import HardwareConfig
    from optimizer.passes.fuse import FuseConfig, fuse
    from optimizer.passes.quantize import Mode, QuantizeConfig, quantize
    from optimizer.registry import Context

    data = SimpleNamespace(calibration=bt.feeds(args.calibration, 128, seed=2),
                           evaluation=bt.feeds(args.search_samples, 128, seed=3))

    def ctx(step):
        (work / step).mkdir()
        return Context(work / step, step, data, HardwareConfig())

    export(build(args.outlier, args.layers), work / "export.onnx")
    meta = {"transformer": {"model_type": "bert", "num_heads": 12, "hidden_size": 384}}
    fused = fuse(Artifact(work / "export.onnx", "onnx", meta=meta), FuseConfig(), ctx("fuse"))
    static = dict(calibration_samples=args.calibration)
    configs = {"static_int8": QuantizeConfig(**static),
               "static_int8_accuracy_aware": QuantizeConfig(**static, accuracy_aware=True, target_cosine=args.target,
                                                            search_samples=args.search_samples),
               "dynamic_int8": QuantizeConfig(mode=Mode.dynamic)}
    paths, seconds, record = {"fp32": fused.path}, {}, None
    for name, cfg in configs.items():
        t0 = time.perf_counter()
        art = quantize(fused, cfg, ctx(name))
        seconds[name], paths[name] = time.perf_counter() - t0, art.path
        record = art.meta.get("accuracy_aware", record)
    return paths, seconds, record


def parity(paths, x) -> dict:
    from optimizer.passes.quantize_search import mean_cosine, run

    ref = run(str(paths["fp32"]), x)
    return {name: mean_cosine(run(str(p), x), ref) for name, p in paths.items()}


def time_one(target: str, batch: int, seq: int, threads: int, seconds: float) -> tuple:
    import onnxruntime as ort

    x = bt.feeds(batch, seq, seed=5, padded=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(target, opts, providers=["CPUExecutionProvider"])
    return bt._time(lambda: sess.run(None, x), seconds)


def rounds(paths: dict, args) -> tuple:
    names, ms, busy = list(paths), {n: [] for n in paths}, []
    env = {**os.environ, "PYTHONPATH": str(bt.ROOT)}
    for r in range(args.rounds):
        busy.append(0.0)
        for name in names[r % len(names):] + names[: r % len(names)]:
            busy[-1] = max(busy[-1], bt.wait_quiet(args.wait))
            cmd = [sys.executable, __file__, "--time", str(paths[name]), "--threads", str(args.threads),
                   "--seconds", str(args.seconds)]
            result = json.loads(subprocess.run(cmd, env=env, capture_output=True, text=True,
                                               check=True).stdout.strip().splitlines()[-1])
            ms[name].append(result["ms"])
            busy[-1] = max(busy[-1], result["foreign"] / args.threads)
        print(f"round {r + 1} (other jobs' CPU share up to {busy[-1]:.0%}, load {os.getloadavg()[0]:.1f}): "
              + ", ".join(f"{n} {ms[n][-1]:.0f}" for n in names) + " ms", flush=True)
    return ms, busy


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per variant and round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--outlier", type=float, default=200.0, help="range factor of the injected channels")
    parser.add_argument("--layers", type=int, nargs="*", default=[1, 4], help="layers given outlier channels")
    parser.add_argument("--target", type=float, default=0.99, help="accuracy_aware's target_cosine")
    parser.add_argument("--calibration", type=int, default=32, help="calibration sequences")
    parser.add_argument("--search-samples", type=int, default=32, help="evaluation sequences the bound is measured on")
    parser.add_argument("--wait", type=float, default=3, help="max seconds to wait for idle CPUs before a variant")
    parser.add_argument("--time", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.time:
        ms, foreign = time_one(args.time, 8, 128, args.threads, args.seconds)
        print(json.dumps({"ms": ms, "foreign": foreign}))
        return
    print(f"outlier x{args.outlier} in layers {args.layers}; target cosine {args.target}; batch 8, sequence 128, "
          f"{args.threads} threads, {args.rounds} rounds; load {os.getloadavg()[0]:.1f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        logging.disable(logging.WARNING)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            paths, seconds, record = make_variants(Path(tmp), args)
        print("pass seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))
        print(f"accuracy_aware: {json.dumps(record)}")
        n = record["quantized_nodes"]
        print(f"evaluations {record['evaluations']} for n = {n} (bound 2*log2(n)+4 = {2 * np.log2(n) + 4:.1f})")
        cos = parity(paths, bt.feeds(32, 128, seed=1))
        ms, busy = rounds(paths, args)
    print(f"\n{'variant':28s} {'cosine':>8s} {'median ms':>9s}  speed-up vs fp32 per round (median, min-max)")
    for name, times in ms.items():
        ratios = [b / t for b, t in zip(ms["fp32"], times)]
        print(f"{name:28s} {cos[name]:8.5f} {statistics.median(times):9.1f}  {statistics.median(ratios):.2f}x "
              f"({min(ratios):.2f}-{max(ratios):.2f})")
    print(f"other jobs' CPU share per round: {', '.join(f'{b:.0%}' for b in busy)}")


if __name__ == "__main__":
    main()
