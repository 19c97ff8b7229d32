"""The built-in Vision Transformer (optimizer.sources.vit) through export -> fuse -> INT8, against
torch eager FP32 at batch 32: accuracy of every variant, and throughput timed in interleaved rounds,
each variant in its own subprocess (2 threads), so all variants see the same machine state.

Variants are built with the project's own passes (onnx_export, fuse, quantize) as a recipe runs
them. `--model hf` trains the same shape built from transformers' ViTConfig instead (CLS token,
HF attention), for comparing ONNX Runtime's `vit` fusions on the model they were written for.

Timing reports two figures per variant: samples/s from the median call and from the 10th-percentile
call. On a shared 2-core machine torch eager (2 threads) collapses whenever another job holds a core,
so ratios of medians swing by two orders of magnitude; the p10 figures are the steadier ones.

Usage: python experiments/bench_vit.py [--epochs 40] [--lr 3e-3] [--rounds 5] [--seconds 2] [--dim 64]
       [--model torch|hf] [--variants "dynamic int8,static int8"] [--work DIR (reuse the model and variants)]
"""

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SHAPE = {"patch_size": 8, "dim": 64, "depth": 4, "heads": 4, "mlp_ratio": 2}  # vit_digits defaults
# name: (export params, fuse params or None, quantize params or None)
VARIANTS = {
    "onnx fp32": ({"dynamo": True}, {}, None),
    "static int8": ({"dynamo": True}, {}, {"mode": "static"}),
    "dynamic int8": ({"dynamo": True}, {}, {"mode": "dynamic"}),
    "vit-fused fp32": ({"dynamo": True}, {"transformer": "vit"}, None),
    "vit-fused static int8": ({"dynamo": True}, {"transformer": "vit"}, {"mode": "static"}),
    "vit-fused dynamic int8": ({"dynamo": True}, {"transformer": "vit"}, {"mode": "dynamic"}),
    "static int8 matmul": ({"dynamo": True}, {}, {"mode": "static", "op_types": ["MatMul", "Gemm"]}),
    "ts static int8": ({"dynamo": False, "opset": 17}, {}, {"mode": "static"}),
    "ts vit-fused static int8": ({"dynamo": False, "opset": 17}, {"transformer": "vit"}, {"mode": "static"}),
}


def hf_vit(num_classes: int = 10, patch_size: int = 8, dim: int = 64, depth: int = 4, heads: int = 4,
           mlp_ratio: int = 2):
    """The same shape from transformers.ViTConfig (eager attention), returning logits only."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(image_size=32, patch_size=patch_size, num_channels=1, hidden_size=dim,
                       num_hidden_layers=depth, num_attention_heads=heads,
                       intermediate_size=dim * mlp_ratio, num_labels=num_classes,
                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, attn_implementation="eager")

    class Logits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vit = ViTForImageClassification(config)

        def forward(self, x):
            return self.vit(pixel_values=x).logits

    return Logits()


def build(args, work: Path):
    """Train the model, save it as a torch artifact, run every variant's chain; returns their paths."""
    import torch

    from optimizer.artifact import Artifact
    from optimizer.config import DataConfig, HardwareConfig
    from optimizer.sources.data import load_splits
    from optimizer.sources.builtin import train
    from optimizer.sources.models import torch_artifact
    from optimizer.plan import _typed
    from optimizer.registry import Context, load_passes
    from optimizer.sources.vit import vit_digits

    splits, seconds = load_splits(DataConfig()), None
    if (work / "ref" / "artifact.json").exists():  # trained by an earlier run with this --work
        ref = Artifact.load(work / "ref")
    else:
        torch.manual_seed(0)
        module = vit_digits(**SHAPE) if args.model == "torch" else hf_vit(**SHAPE)
        t0 = time.perf_counter()
        train(module, splits, args.epochs, 0, lr=args.lr, label=f"training {args.model} ViT")
        seconds = time.perf_counter() - t0
        factory = "optimizer.sources.vit:vit_digits" if args.model == "torch" else "experiments.bench_vit:hf_vit"
        kwargs = dict(SHAPE)
        (work / "ref").mkdir(exist_ok=True)
        ref = torch_artifact(module, work / "ref", factory, kwargs, {"input_shape": [1, 32, 32], "num_classes": 10})
        ref.save(work / "ref")
    passes, paths = load_passes(), {"torch fp32": ref}

    def step(name, art, params, label):
        out = work / label
        if (out / "artifact.json").exists():
            paths[label] = Artifact.load(out)
        if label not in paths:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            spec = passes[name]
            cfg = _typed(spec.config_cls, params, label)
            paths[label] = spec.fn(art, cfg, Context(out, label, splits, HardwareConfig()))
            paths[label].save(out)
        return paths[label]

    for label, (export, fuse, quantize) in VARIANTS.items():
        art = step("onnx_export", ref, export, "export-" + json.dumps(export, sort_keys=True))
        fused = step("fuse", art, fuse, "fuse-" + json.dumps([export, fuse], sort_keys=True))
        paths[label] = step("quantize", fused, quantize, label) if quantize else fused
    return {k: str(paths[k].path) for k in ["torch fp32", *VARIANTS]}, seconds


def accuracy(path: str) -> float:
    from optimizer.config import DataConfig
    from optimizer.sources.data import load_splits

    splits = load_splits(DataConfig())
    session = _session(path, threads=2)
    return float((session(splits.evaluation["input"]).argmax(1) == splits.evaluation_labels).mean() * 100)


def _session(path: str, threads: int):
    if path.endswith(".pt"):
        import torch

        from optimizer.artifact import Artifact
        from optimizer.sources.models import load_module

        torch.set_num_threads(threads)
        module = load_module(Artifact.load(Path(path).parent))

        def run(x):
            with torch.inference_mode():
                return module(torch.from_numpy(x)).numpy()

        return run
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


def time_one(path: str, batch: int, seconds: float):
    """Samples/s of one variant: warm-up, then timed calls for ``seconds``; from the median call
    and from the 10th-percentile call (less sensitive to other jobs on a shared machine)."""
    from optimizer.config import DataConfig
    from optimizer.sources.data import load_splits

    x = load_splits(DataConfig()).evaluation["input"][:batch].copy()
    run = _session(path, threads=2)
    end = time.perf_counter() + 0.5
    while time.perf_counter() < end:
        run(x)
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 20:
        t = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t)
    times.sort()
    return [batch / statistics.median(times), batch / times[len(times) // 10]]


def child(argv) -> None:
    what, path = argv[0], argv[1]
    print(json.dumps(accuracy(path) if what == "accuracy" else time_one(path, 32, float(argv[2]))))


def run_child(*args) -> float:
    out = subprocess.run([sys.executable, __file__, "--child", *map(str, args)], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--model", choices=["torch", "hf"], default="torch")
    parser.add_argument("--dim", type=int, default=SHAPE["dim"], help="width of the ViT (heads stay 4)")
    parser.add_argument("--work", default="", help="keep the variants in this directory (reused when run again)")
    parser.add_argument("--variants", default="", help="comma-separated names to time (default: all)")
    args = parser.parse_args()
    SHAPE["dim"] = args.dim
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_vit_"))
    work.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(sys.stderr):  # onnxslim prints its tables
        paths, seconds = build(args, work)
    if args.variants:
        paths = {k: v for k, v in paths.items() if k == "torch fp32" or k in args.variants.split(",")}
    trained = f"trained {args.epochs} epochs (lr {args.lr}) in {seconds:.1f} s" if seconds else f"reused {work}/ref"
    print(f"{args.model} ViT {SHAPE}: {trained}", flush=True)
    acc = {name: run_child("accuracy", path) for name, path in paths.items()}
    tput = {name: [] for name in paths}
    for r in range(args.rounds):
        for name, path in paths.items():
            tput[name].append(run_child("time", path, args.seconds))
        print(f"round {r + 1} (load {os.getloadavg()[0]:.1f}) samples/s median/p10 call: "
              + ", ".join(f"{k} {v[-1][0]:.0f}/{v[-1][1]:.0f}" for k, v in tput.items()), flush=True)
    base = tput["torch fp32"]
    for name in paths:
        line = f"{name:24s} acc {acc[name]:6.2f} % ({acc[name] - acc['torch fp32']:+.2f})"
        for i, stat in enumerate(("median", "p10")):
            ratios = [t[i] / b[i] for t, b in zip(tput[name], base)]
            line += (f" | {stat} call: {statistics.median(t[i] for t in tput[name]):6.0f}/s "
                     f"{statistics.median(ratios):5.2f}x torch (rounds {min(ratios):.2f}-{max(ratios):.2f})")
        print(line, flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
    else:
        main()
