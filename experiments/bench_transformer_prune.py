"""Pruning (heads + MLP channels) and distillation (half the layers) of a BERT-family encoder, label-free,
against the unpruned encoder's FP32 ONNX export at batch 8, sequence 128.

A 4-layer BERT (hidden 256, 4 heads, MLP 1024, vocabulary 8000; random weights, seeded) is saved as a
Hugging Face directory and loaded as an ``hf:`` source (feature extraction: mask-mean-pooled embeddings).
The prune pass removes 50 % of every layer's heads and MLP channels and recovers against the unpruned
model; the distill pass trains a 2-layer student started from layers 0 and 2. Neither sees a label. All
three go through the export pass (TorchScript exporter, dynamic axes, verified against torch).

Parity: mean cosine of each export's embeddings to the unpruned torch model on held-out sequences, and the
"centered" cosine (both minus the teacher's mean embedding): random weights give every input nearly the
same embedding, so the plain cosine is high from the start; the centered one shows what recovery did.

Speed: each export timed in its own process (ONNX Runtime, 2 intra-op threads), interleaved rounds with
the order rotated every round; a round's ratio is the unpruned export's latency over the variant's.

Usage: python experiments/bench_transformer_prune.py [--rounds 3] [--epochs 8] [--train 384] [--work DIR [--reuse]]
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

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "experiments")]  # this checkout's package, then its sibling script
from bench_transformer import _time, wait_quiet  # noqa: E402

CONFIG = {"vocab_size": 8000, "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
          "intermediate_size": 1024, "max_position_embeddings": 512}


def feeds(n, seq, seed, padded=True):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(seq // 2, seq + 1, size=(n, 1)) if padded else np.full((n, 1), seq)
    mask = (np.arange(seq)[None, :] < lengths).astype(np.int64)
    ids = rng.integers(5, CONFIG["vocab_size"], size=(n, seq), dtype=np.int64) * mask
    ids[:, 0] = 2  # [CLS]
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros((n, seq), np.int64)}


def make_variants(work: Path, args):
    """The teacher as an hf: artifact, then prune, distill and three exports: ({name: onnx path}, metas)."""
    import torch
    from transformers import BertConfig, BertModel

    from optimizer.cache import Cache
    from optimizer.config import HardwareConfig, ModelConfig
    from optimizer.recipe.plan import typed
    from optimizer.registry import Context, load_passes
    from optimizer.sources import hf_dir
    from optimizer.sources.data import Splits

    torch.manual_seed(0)
    BertModel(BertConfig(**CONFIG), add_pooling_layer=False).save_pretrained(str(work / "teacher"))
    splits = Splits(feeds(args.train, args.seq, 0), None, feeds(8, args.seq, 1), feeds(64, args.seq, 2), None)
    teacher = hf_dir.load(ModelConfig(source=f"hf:{work / 'teacher'}", task="feature_extraction"), splits,
                          Cache(work / "cache"), 0)
    passes = load_passes()

    def run(name, art, label, **params):
        (work / label).mkdir()
        spec = passes[name]
        t0 = time.perf_counter()
        out = spec.fn(art, typed(spec.config_cls, params, label), Context(work / label, label, splits, HardwareConfig()))
        print(f"{label}: {time.perf_counter() - t0:.0f} s", flush=True)
        return out

    pruned = run("prune", teacher, "prune", ratio=0.5, finetune_epochs=args.epochs, lr=args.lr)
    student = run("distill", teacher, "distill", layers=0.5, epochs=args.epochs, lr=args.lr)
    paths, metas = {}, {"prune": pruned.meta, "distill": student.meta}
    for label, art in (("unpruned", teacher), ("pruned", pruned), ("student", student)):
        paths[label] = run("onnx_export", art, f"export_{label}", opset=17, dynamo=False).path
    return paths, metas, splits


def parity(paths, work: Path, splits):
    """{name: (cosine, centered cosine, MB)} of each export against the unpruned torch model."""
    import onnxruntime as ort
    import torch

    from optimizer.sources.hf import load_module

    x = splits.evaluation
    with torch.inference_mode():
        ref = load_module(str(work / "teacher"), "feature_extraction")(*(torch.from_numpy(x[k]) for k in x)).numpy()

    def cos(a, b):
        return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).mean())

    mu, out = ref.mean(0), {}
    for name, path in paths.items():
        y = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, x)[0]
        out[name] = (cos(y, ref), cos(y - mu, ref - mu), Path(path).stat().st_size / 1e6)
    return out


def time_one(path: str, batch: int, seq: int, threads: int, seconds: float) -> tuple:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    x = feeds(batch, seq, seed=5, padded=False)
    return _time(lambda: sess.run(None, x), seconds)


def rounds(paths: dict, args) -> tuple:
    names, ms, busy = list(paths), {n: [] for n in paths}, []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for r in range(args.rounds):
        busy.append(0.0)
        for name in names[r % len(names):] + names[: r % len(names)]:
            busy[-1] = max(busy[-1], wait_quiet(args.wait))
            cmd = [sys.executable, __file__, "--time", str(paths[name]), "--batch", str(args.batch), "--seq",
                   str(args.seq), "--threads", str(args.threads), "--seconds", str(args.seconds)]
            result = json.loads(subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
                                .stdout.strip().splitlines()[-1])
            ms[name].append(result["ms"])
            busy[-1] = max(busy[-1], result["foreign"] / args.threads)
        print(f"round {r + 1} (other jobs' CPU share up to {busy[-1]:.0%}, load {os.getloadavg()[0]:.1f}): "
              + ", ".join(f"{n} {ms[n][-1]:.1f}" for n in names) + " ms", flush=True)
    return ms, busy


def report(ms: dict, par: dict, metas: dict):
    p, d = metas["prune"], metas["distill"]
    print(f"\nprune: heads {p['heads_before']} -> {p['heads_after']}, MLP {p['mlp_before']} -> {p['mlp_after']}, "
          f"params {p['params_before']} -> {p['params_after']}; centered cosine (torch, evaluation split) "
          f"{p['centered_cosine_after_prune']:.4f} after the cut -> {p['centered_cosine_after_finetune']:.4f}")
    print(f"distill: layers {d['teacher_layers']} -> {d['student_layers']} (from {d['student_layers_from']}), params "
          f"{d['teacher_params']} -> {d['student_params']}; centered cosine {d['centered_cosine_before_training']:.4f} "
          f"before training -> {d['centered_cosine_to_teacher']:.4f}")
    print(f"{'variant':10s} {'MB':>6s} {'cosine':>8s} {'centered':>8s} {'median ms':>9s}  "
          f"speed-up vs unpruned FP32 export per round (median, min-max)")
    base = ms["unpruned"]
    for name, times in ms.items():
        ratios = [b / t for b, t in zip(base, times)]
        cos, cen, size = par[name]
        print(f"{name:10s} {size:6.1f} {cos:8.5f} {cen:8.4f} {statistics.median(times):9.1f}  "
              f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) "
              f"[{', '.join(f'{r:.2f}' for r in ratios)}]")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=1.5, help="timed seconds per variant and round")
    parser.add_argument("--train", type=int, default=384, help="unlabelled training sequences")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--wait", type=float, default=10, help="max seconds to wait for idle CPUs before a variant")
    parser.add_argument("--work", help="keep the models in this directory (variants.json lists them)")
    parser.add_argument("--reuse", action="store_true", help="time the models --work already holds; build nothing")
    parser.add_argument("--time", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.time:
        ms, foreign = time_one(args.time, args.batch, args.seq, args.threads, args.seconds)
        print(json.dumps({"ms": ms, "foreign": foreign}))
        return
    import torch

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}; batch {args.batch}, sequence {args.seq}, {args.threads} threads, "
          f"{args.rounds} rounds; {args.train} training sequences, {args.epochs} epochs")
    with contextlib.ExitStack() as stack:
        work = Path(args.work) if args.work else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        record = work / "variants.json"
        if args.reuse:
            saved = json.loads(record.read_text())
            paths, metas, par = saved["paths"], saved["metas"], saved["parity"]
        else:
            work.mkdir(parents=True, exist_ok=True)
            logging.disable(logging.WARNING)
            with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
                warnings.simplefilter("ignore")
                paths, metas, splits = make_variants(work, args)
                par = parity(paths, work, splits)
            metas = {k: {n: v for n, v in m.items() if n != "io"} for k, m in metas.items()}
            paths = {k: str(v) for k, v in paths.items()}
            record.write_text(json.dumps({"paths": paths, "metas": metas, "parity": par}, default=str))
        ms, busy = rounds(paths, args)
    report(ms, par, metas)
    print(f"other jobs' CPU share per round: {', '.join(f'{b:.0%}' for b in busy)}")


if __name__ == "__main__":
    main()
