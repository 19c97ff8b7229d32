"""Shared fixtures. One cache directory per test session, so the built-in model is trained once
and every test that needs it reuses it; tests never touch the user's ~/.cache."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Small settings that keep each recipe run to seconds on 2 cores.
FAST = [
    "benchmark.batch_sizes=[1,8]",
    "benchmark.min_repeats=10",
    "benchmark.max_seconds=0.3",
    "benchmark.pause_seconds=0.05",
    "benchmark.warmup_seconds=0.05",
    "benchmark.rounds=2",
    "benchmark.max_cv=1000",  # a busy test machine must not decide whether measurements are reused
    "benchmark.max_foreign_cores=0",  # nor whether they are flagged contended
    "tracking.enabled=false",  # the tracking tests turn it back on
    "triton.emit=false",  # the Triton tests turn it back on
]


def pytest_collection_modifyitems(config, items):
    """``@pytest.mark.gpu`` tests skip where the CUDA driver sees no GPU (asked only when such a test is collected)."""
    marked = [item for item in items if "gpu" in item.keywords]
    if not marked:
        return
    from optimizer.gpu import gpus

    if gpus():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU: the CUDA driver (libcuda.so.1) sees none")
    for item in marked:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cache")
    os.environ["OPTIMIZER_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def splits():
    from optimizer.config import DataConfig
    from optimizer.sources.data import load_splits

    return load_splits(DataConfig())


@pytest.fixture(scope="session")
def builtin(cache_dir, splits):
    """The built-in reference artifact, trained once per test session."""
    from optimizer.cache import Cache
    from optimizer.config import ModelConfig
    from optimizer.sources.models import load_source

    return load_source(ModelConfig(), splits, Cache(cache_dir), seed=0)


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

    from optimizer.cache import Cache, content_key
    from optimizer.sources.builtin import BUILTIN_FACTORY, digits_resnet, train
    from optimizer.sources.models import probe_meta, torch_artifact

    def produce(directory):
        torch.manual_seed(0)
        module = train(digits_resnet(width=16), splits, epochs=6, seed=0, lr=1e-2, label="training test teacher")
        return torch_artifact(module.eval(), directory, BUILTIN_FACTORY, {"width": 16}, probe_meta(module, splits))

    cache, key = Cache(cache_dir), content_key("test teacher", 16, 6, splits.fingerprint, BUILTIN_FACTORY)
    return cache.get(key) or cache.put(key, produce)


def accuracy(art, splits) -> float:
    from optimizer.sources.models import load_module, logits

    return float((logits(load_module(art), splits.evaluation["input"]).argmax(1) == splits.evaluation_labels).mean() * 100)


def run_pass(name: str, art, splits, tmp_path: Path, **params):
    from optimizer.config import HardwareConfig
    from optimizer.plan import _typed
    from optimizer.registry import Context, load_passes

    spec = load_passes()[name]
    out = tmp_path / name
    out.mkdir()
    return spec.fn(art, _typed(spec.config_cls, params, f"passes.{name}"), Context(out, name, splits, HardwareConfig()))


@pytest.fixture(scope="session")
def teacher(cache_dir, splits):
    return small_teacher(cache_dir, splits)
