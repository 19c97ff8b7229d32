"""What the tests share: the CLI runner and its short settings, tiny models and repositories, and tiny
Hugging Face directories and text files written from config classes and a vocabulary the tests write
themselves (nothing downloaded). Fixtures live in conftest.py; no test module imports another."""

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from optimizer.triton import emit, repository

ROOT = Path(__file__).resolve().parent.parent


FAST = [
    "benchmark.batch_sizes=[1,8]",
    "benchmark.min_repeats=10",
    "benchmark.max_seconds=0.3",
    "benchmark.pause_seconds=0.05",
    "benchmark.warmup_seconds=0.05",
    "benchmark.rounds=2",
    "benchmark.max_cv=1000",  # a busy test machine must not decide whether measurements are reused
    "benchmark.max_foreign_cores=0",  # nor whether they are flagged contended
    "benchmark.profile_batch_size=0",  # the report tests turn the time breakdown back on
    "tracking.enabled=false",  # the tracking tests turn it back on
    "triton.emit=false",  # the Triton tests turn it back on
]


def run_cli(args, cache_dir: Path, out_dir: Path, timeout: int = 600):
    """``python -m optimizer <args>`` in a subprocess; returns (exit code, output, summary or None)."""
    env = {**os.environ, "OPTIMIZER_CACHE_DIR": str(cache_dir), "PYTHONUNBUFFERED": "1"}
    flags, overrides, args = [], [], list(args)
    while args:  # Hydra's argparse wants flags (and their values) before the overrides
        arg = args.pop(0)
        if arg.startswith("-"):
            flags += [arg] + ([args.pop(0)] if arg in ("--cfg", "-c", "--config-dir", "-cd") else [])
        else:
            overrides.append(arg)
    proc = subprocess.run(
        [sys.executable, "-m", "optimizer", *flags, *overrides, f"hydra.run.dir={out_dir}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )
    summary = out_dir / "summary.json"
    return proc.returncode, proc.stdout + proc.stderr, json.loads(summary.read_text()) if summary.exists() else None


def small_teacher(cache_dir: Path, splits):
    """A width-16 built-in model trained 6 epochs, cached for the session (prune and distill tests)."""
    import torch

    from optimizer.cache import Cache
    from optimizer.files import content_key
    from optimizer.sources.builtin import BUILTIN_FACTORY, digits_resnet, train
    from optimizer.formats.torch import torch_artifact
    from optimizer.sources.probe import probe_meta

    def produce(directory):
        torch.manual_seed(0)
        module = train(digits_resnet(width=16), splits, epochs=6, seed=0, lr=1e-2, label="training test teacher")
        return torch_artifact(module.eval(), directory, BUILTIN_FACTORY, {"width": 16}, probe_meta(module, splits))

    cache, key = Cache(cache_dir), content_key("test teacher", 16, 6, splits.fingerprint, BUILTIN_FACTORY)
    return cache.get(key) or cache.put(key, produce)


def accuracy(art, splits) -> float:
    from optimizer.formats.torch import load_module, logits

    return float((logits(load_module(art), splits.evaluation["input"]).argmax(1) == splits.evaluation_labels).mean() * 100)


def run_pass(name: str, art, splits, tmp_path: Path, **params):
    from optimizer.config import HardwareConfig
    from optimizer.recipe.plan import typed
    from optimizer.registry import Context, load_passes

    spec = load_passes()[name]
    out = tmp_path / name
    out.mkdir()
    return spec.fn(art, typed(spec.config_cls, params, f"passes.{name}"), Context(out, name, splits, HardwareConfig()))


PNG = b"\x89PNG\r\n\x1a\n"  # the first eight bytes of every PNG file


def junit_suite(path: Path):
    """The one test suite of a junit.xml file, read back with junitparser (its callers importorskip it)."""
    import junitparser

    xml = junitparser.JUnitXml.fromfile(str(path))
    suites = list(xml) if isinstance(xml, junitparser.JUnitXml) else [xml]
    assert len(suites) == 1
    return suites[0]


def without_gpu_path():
    """A skip marker for the refusals a machine without a GPU (or without TensorRT) answers: a machine with both
    skips them. A function, so the CUDA driver is asked only by the modules that use it."""
    from optimizer import gpu

    return pytest.mark.skipif(bool(gpu.gpus()) and gpu.tensorrt_version() is not None,
                              reason="this machine has a GPU and TensorRT: nothing to refuse")


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


PRUNE_TINY = ["+model.kwargs.width=8", "model.train_epochs=1", "tracking.enabled=false", "triton.emit=false"]


DEFAULT_IO = {"inputs": [{"name": "input", "data_type": "TYPE_FP32", "dims": [-1, 1, 32, 32]}],
              "outputs": [{"name": "logits", "data_type": "TYPE_FP32", "dims": [-1, 10]}]}


TUNING = {"max_batch_size": 32, "preferred_batch_size": 8, "max_queue_delay_us": 2000, "instances": 2, "threads": 1}


def tiny_onnx(path: Path, batch=None) -> Path:
    """A linear classifier with the default model's interface (``input`` [N,1,32,32] -> ``logits`` [N,10])."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n = batch if batch else "N"
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((1024, 10)).astype(np.float32) * 0.05, "w")
    shape = numpy_helper.from_array(np.array([-1, 1024], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["input", "shape"], ["flat"]),
         helper.make_node("MatMul", ["flat", "w"], ["logits"])],
        "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [n, 1, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [n, 10])], [w, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def tiny_repository(root: Path, tuning=TUNING, name="digits_resnet", response_cache=False) -> Path:
    """A repository written by the emitter for the tiny model, with reference answers from ONNX Runtime."""
    from optimizer.artifact import Artifact
    from optimizer.config import HardwareConfig
    from optimizer.triton.deploy import reference

    model = tiny_onnx(root / "tiny.onnx")
    io = emit.model_io(model)
    config = emit.build_config(name, "onnx", io, tuning, gpu=False, response_cache=response_cache)
    x = np.random.default_rng(1).standard_normal((16, 1, 32, 32)).astype(np.float32)
    repo = root / "model_repository"
    ref = reference(Artifact(path=model, format="onnx"), io, {"input": x}, tuning["max_batch_size"], HardwareConfig())
    repository.write_docs(repository.write_repository(repo, name, model, config, ref), "# tuning\n", {"tuning": tuning})
    return repo


QUEUED = {**TUNING, "max_queue_size": 75, "queue_timeout_us": 30300, "default_priority_level": 2,
          "tiers": [{"name": "premium", "level": 1, "p99_ms": 50.0, "max_queue_size": 75, "timeout_us": 30300},
                    {"name": "standard", "level": 2, "p99_ms": 100.0, "max_queue_size": 200, "timeout_us": 80300},
                    {"name": "batch", "level": 3, "p99_ms": None, "max_queue_size": 0, "timeout_us": 0}]}


WORDS = ("the a this that movie film story actor actress plot scene music ending start was is were are "
         "very really quite so too not good great fine nice lovely fun happy bad awful poor boring dull sad "
         "long short slow fast funny loud quiet and but or with without i you we they it love hate like "
         "liked enjoyed watched saw found").split()
POSITIVE = ("good", "great", "fine", "nice", "lovely", "fun", "happy")
NEGATIVE = ("bad", "awful", "poor", "boring", "dull", "sad")


def write_vocab(path: Path) -> Path:
    path.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    return path


def tiny_bert(directory: Path, head: bool = True, seed: int = 0) -> Path:
    """A 2-layer BERT (hidden 32, 2 heads), with a 2-label classifier when ``head``, and its tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    vocab = write_vocab(directory.parent / f"{directory.name}.vocab.txt")
    BertTokenizer(str(vocab), do_lower_case=True).save_pretrained(str(directory))
    config = BertConfig(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64, num_labels=2,
                        id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    torch.manual_seed(seed)
    model = (BertForSequenceClassification if head else BertModel)(config)
    model.save_pretrained(str(directory))
    return directory


def tiny_gpt2(directory: Path, seed: int = 0) -> Path:
    """A 2-layer GPT-2 language model (hidden 32, 2 heads, 64 positions) with the tests' word-piece tokenizer."""
    import torch
    from transformers import BertTokenizer, GPT2Config, GPT2LMHeadModel

    directory.mkdir(parents=True, exist_ok=True)
    vocab = write_vocab(directory.parent / f"{directory.name}.vocab.txt")
    BertTokenizer(str(vocab), do_lower_case=True).save_pretrained(str(directory))
    torch.manual_seed(seed)
    GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=5 + len(WORDS), n_positions=64,
                               bos_token_id=2, eos_token_id=3)).save_pretrained(str(directory))
    return directory


def tiny_t5(directory: Path, seed: int = 0) -> Path:
    """A 2-layer T5 (d_model 32, 2 heads) with its LM head and the tests' word-piece tokenizer."""
    import torch
    from transformers import BertTokenizer, T5Config, T5ForConditionalGeneration

    directory.mkdir(parents=True, exist_ok=True)
    vocab = write_vocab(directory.parent / f"{directory.name}.vocab.txt")
    BertTokenizer(str(vocab), do_lower_case=True).save_pretrained(str(directory))
    torch.manual_seed(seed)
    T5ForConditionalGeneration(T5Config(d_model=32, d_ff=64, num_layers=2, num_heads=2, d_kv=16,
                                        vocab_size=5 + len(WORDS), pad_token_id=0, eos_token_id=3,
                                        decoder_start_token_id=0)).save_pretrained(str(directory))
    return directory


def tiny_whisper(directory: Path, seed: int = 0) -> Path:
    """A 2-layer Whisper (d_model 32, 8 mel bins, 32 frames in, 16 decoder positions), no tokenizer."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(seed)
    WhisperForConditionalGeneration(WhisperConfig(
        d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=8, vocab_size=50, max_source_positions=16,
        max_target_positions=16, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
    )).save_pretrained(str(directory))
    return directory


def sentences(n: int, seed: int = 0):
    """``n`` (sentence, label) pairs made of WORDS; the label says whether a positive word is in it."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        words = rng.sample(WORDS[:12], rng.randint(2, 6)) + [rng.choice(POSITIVE if positive else NEGATIVE)]
        rng.shuffle(words)
        rows.append((" ".join(words), "positive" if positive else "negative"))
    return rows


def write_jsonl(path: Path, rows, labels: bool = True) -> Path:
    path.write_text("".join(json.dumps({"text": t, **({"label": y} if labels else {})}) + "\n" for t, y in rows))
    return path


def write_csv(path: Path, rows, labels: bool = True) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"] if labels else ["text"])
        writer.writerows([(t, y) if labels else (t,) for t, y in rows])
    return path


def tiny_vit(directory: Path, seed: int = 0) -> Path:
    """A 2-layer ViT image classifier (1x32x32 inputs, 8x8 patches, hidden 32, 3 labels)."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(image_size=32, patch_size=8, num_channels=1, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=64, num_labels=3)
    torch.manual_seed(seed)
    ViTForImageClassification(config).save_pretrained(str(directory))
    return directory


def error_lines(out: str):
    """The lines of a run's output that start with ``error:``."""
    return [ln for ln in out.splitlines() if ln.startswith("error:")]


def assert_recipe_error(code, out, summary, *words):
    """Exit 2, one short ``error:`` line holding ``words``, no traceback, no summary (planning failed)."""
    assert code == 2, out
    assert "Traceback" not in out
    errors = error_lines(out)
    assert len(errors) == 1 and len(errors[0]) < 400, out
    for w in words:
        assert w in errors[0], errors[0]
    assert summary is None  # planning failed: nothing ran


def vad_like(path):
    """y = (x @ w) * sr / 16000 with ``sr`` a 0-d int64 input, as streaming audio models take it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Cast", ["sr"], ["srf"], to=TensorProto.FLOAT),
             helper.make_node("Div", ["srf", "k"], ["scale"]), helper.make_node("Mul", ["h", "scale"], ["y"])]
    graph = helper.make_graph(nodes, "vad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64]),
                                             helper.make_tensor_value_info("sr", TensorProto.INT64, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(16000.0, np.float32), "k")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def stateful_vad(path):
    """A streaming voice-activity model as published ones are laid out: ``x`` [batch, 64], a recurrent
    ``state`` [2, batch, 16] (batch on axis 1) and a 0-d int64 ``sr``; outputs ``y`` [batch, 1] and the next
    state ``stateN`` [2, batch, 16]."""
    import torch

    class Vad(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.w, self.u, self.head = torch.nn.Linear(64, 16), torch.nn.Linear(16, 16, bias=False), torch.nn.Linear(16, 1)

        def forward(self, x, state, sr):
            h = torch.tanh(self.w(x) * (sr.float() / 16000.0) + self.u(state[0]))
            c = 0.5 * state[1] + 0.5 * h
            return torch.sigmoid(self.head(h + c)), torch.stack([h, c])

    feeds = (torch.zeros(1, 64), torch.zeros(2, 1, 16), torch.tensor(16000))
    torch.onnx.export(Vad().eval(), feeds, str(path), input_names=["x", "state", "sr"], output_names=["y", "stateN"],
                      dynamic_axes={"x": {0: "batch"}, "state": {1: "batch"}, "y": {0: "batch"}, "stateN": {1: "batch"}},
                      opset_version=17, dynamo=False)
    return path


def bert_encoder(directory, head: bool = False, layers: int = 4):
    """A BERT encoder (or 2-label classifier) with random weights, vocabulary 64, saved to ``directory``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=64, hidden_size=64, num_hidden_layers=layers, num_attention_heads=4,
                        intermediate_size=256, max_position_embeddings=64, num_labels=2)
    model = BertForSequenceClassification(config) if head else BertModel(config, add_pooling_layer=False)
    model.save_pretrained(str(directory))
    return directory


def token_data(train: int = 192, labels: bool = False, seed: int = 0):
    """Random token ids with padded tails; labels (when asked) say whether token 7 occurs."""
    from optimizer.sources.data import Splits

    rng = np.random.default_rng(seed)

    def feeds(n, length=16):
        ids = rng.integers(5, 64, (n, length))
        mask = (np.arange(length)[None] < rng.integers(length // 2, length + 1, (n, 1))).astype(np.int64)
        return {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": np.zeros((n, length), np.int64)}

    tr, ev = feeds(train), feeds(48)
    y = (lambda f: (f["input_ids"] == 7).any(1).astype(np.int64)) if labels else (lambda f: None)
    return Splits(tr, y(tr), feeds(8), ev, y(ev))


def hf_artifact(directory, splits, cache_dir, task="feature_extraction"):
    from optimizer.cache import Cache
    from optimizer.config import ModelConfig
    from optimizer.sources import hf_dir

    return hf_dir.load(ModelConfig(source=f"hf:{directory}", task=task), splits, Cache(cache_dir), 0)
