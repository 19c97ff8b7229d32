"""``recipe=auto``'s chosen embedding variant against torch eager FP32, at batch 1, sequence 128.

The source is a Hugging Face encoder directory (``experiments/embedding_model.py`` builds a MiniLM-size one);
torch eager FP32 is the optimizer's own reference module for it (``optimizer.sources.hf.load_module``: eager
attention, mask-mean pooling), and, for information, the same weights with PyTorch's SDPA attention. Each target
is timed in its own subprocess (2 intra-op threads unless told), in interleaved rounds whose order rotates every
round, after other jobs leave the CPUs (``bench_transformer.wait_quiet``); a round's ratio is torch eager's
latency over the variant's in that round. The input: 128 real tokens (the sentence file's first sentences joined,
tokenized by the model's tokenizer, truncated to 128), attention mask all ones.

Usage: python experiments/bench_embedding_auto.py --model DIR --sentences FILE.jsonl
           (--run RUN_DIR | --onnx NAME=PATH ...) [--rounds 5] [--threads 2] [--seconds 2]
``--run`` reads the run's summary.json: its chosen variant and every other finalist's ONNX file (their paths in the
run's cache: set ``OPTIMIZER_CACHE_DIR`` as the run had it), each with its trial's session options.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


def feeds(model: str, sentences: str, seq: int) -> dict:
    from transformers import AutoTokenizer

    texts = [json.loads(line)["text"] for line in Path(sentences).read_text().splitlines() if line.strip()]
    tok = AutoTokenizer.from_pretrained(model)
    x = tok(" ".join(texts[:40]), truncation=True, max_length=seq, padding="max_length", return_tensors="np")
    return {k: np.ascontiguousarray(v.astype(np.int64)) for k, v in x.items()}


def torch_module(model: str, attention: str):
    import torch

    from optimizer.sources.hf import load_module
    from optimizer.sources.hf_module import pool

    if attention == "eager":
        return load_module(model, "feature_extraction")
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(model, attn_implementation=attention).eval()

    class Pooled(torch.nn.Module):
        def forward(self, input_ids, attention_mask, token_type_ids):
            out = bert(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return pool(out.last_hidden_state, attention_mask)

    return Pooled().eval()


def time_one(target: str, args) -> tuple:
    """(median ms of one batch-1 call, foreign busy cores) of ``torch:<attention>`` or ``onnx:<json options>:path``."""
    from bench_transformer import _time

    x = feeds(args.model, args.sentences, args.seq)
    if target.startswith("torch:"):
        import torch

        torch.set_num_threads(args.threads)
        module = torch_module(args.model, target.split(":", 1)[1])
        names = ("input_ids", "attention_mask", "token_type_ids")
        inputs = tuple(torch.from_numpy(x[k]) for k in names)
        with torch.inference_mode():
            return _time(lambda: module(*inputs), args.seconds)
    import onnxruntime as ort

    _, options, path = target.split(":", 2)
    options = json.loads(options)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = options.get("intra_op_threads") or args.threads
    opts.inter_op_num_threads = 1
    if options.get("execution_mode") == "parallel":
        opts.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    levels = {"disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED"}
    if options.get("graph_optimization_level") in levels:
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, levels[options["graph_optimization_level"]])
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    wanted = {i.name for i in sess.get_inputs()}
    return _time(lambda: sess.run(None, {k: v for k, v in x.items() if k in wanted}), args.seconds)


def from_run(run: Path) -> dict:
    """{name: target} for every finalist of the run (the chosen one first), each with its session options."""
    s = json.loads((run / "summary.json").read_text())
    cache = Path(os.environ.get("OPTIMIZER_CACHE_DIR", Path.home() / ".cache" / "optimizer"))
    out = {}
    for v in sorted(s["variants"], key=lambda v: v["name"] != s["chosen"]):
        path = cache / (v.get("path") or "none")  # relative to the cache (an absolute path stays as it is)
        if v["name"] != "reference" and path.suffix == ".onnx" and path.exists():
            label = f"{v['name']}{' (chosen)' if v['name'] == s['chosen'] else ''}"
            out[label] = f"onnx:{json.dumps(v.get('runtime') or {})}:{path}"
    return out


def rounds(targets: dict, args) -> tuple:
    from bench_transformer import wait_quiet

    names, ms, busy = list(targets), {n: [] for n in targets}, []
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    for r in range(args.rounds):
        busy.append(0.0)
        for name in names[r % len(names):] + names[: r % len(names)]:
            busy[-1] = max(busy[-1], wait_quiet(args.wait))
            cmd = [sys.executable, __file__, "--time", targets[name], "--model", args.model, "--sentences",
                   args.sentences, "--seq", str(args.seq), "--threads", str(args.threads), "--seconds",
                   str(args.seconds)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            ms[name].append(result["ms"])
            busy[-1] = max(busy[-1], result["foreign"] / args.threads)
        print(f"round {r + 1} (other jobs' CPU share up to {busy[-1]:.0%}, load {os.getloadavg()[0]:.1f}): "
              + ", ".join(f"{n} {ms[n][-1]:.1f}" for n in names) + " ms", flush=True)
    return ms, busy


def report(ms: dict) -> None:
    base = ms["torch_eager_fp32"]
    for name, times in ms.items():
        ratios = [b / t for b, t in zip(base, times)]
        print(f"{name:36s} median {statistics.median(times):7.1f} ms  speed-up vs torch eager FP32 "
              f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) "
              f"[{', '.join(f'{r:.2f}' for r in ratios)}]")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--sentences", required=True)
    p.add_argument("--run", type=Path)
    p.add_argument("--onnx", action="append", default=[], help="NAME=PATH, repeatable")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=2.0, help="timed seconds per target and round")
    p.add_argument("--wait", type=float, default=20, help="max seconds to wait for idle CPUs before each target")
    p.add_argument("--time", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.time:
        ms, foreign = time_one(args.time, args)
        print(json.dumps({"ms": ms, "foreign": foreign}))
        return
    targets = {"torch_eager_fp32": "torch:eager", "torch_sdpa_fp32": "torch:sdpa"}
    targets.update(from_run(args.run) if args.run else {})
    targets.update({n: f"onnx:{{}}:{p}" for n, p in (o.split("=", 1) for o in args.onnx)})
    print(f"batch 1, sequence {args.seq}, {args.threads} threads, {args.rounds} rounds; targets: "
          + ", ".join(f"{n} = {t}" for n, t in targets.items()), flush=True)
    ms, busy = rounds(targets, args)
    report(ms)
    quiet = [i for i, b in enumerate(busy) if b <= 0.2]
    if 0 < len(quiet) < len(busy):
        print(f"rounds where other jobs took at most 20 % of the CPUs: {[i + 1 for i in quiet]}")
        report({n: [t[i] for i in quiet] for n, t in ms.items()})


if __name__ == "__main__":
    main()
