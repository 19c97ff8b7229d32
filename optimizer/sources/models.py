"""Model sources: the built-in digits CNN (trained once, cached), a Python factory
``pkg.mod:fn``, an ONNX file, or a saved torch program (``torch.export`` ``.pt2``).

A torch artifact is a state dict plus the factory that builds its module, so it loads with
``torch.load(weights_only=True)``; a pruned one (``meta["pruned"]``) also stores its layers' new
shapes, to which the factory's module is resized. A ``.pt2`` program loads with ``torch.export.load``."""

import hashlib
from pathlib import Path
from typing import Any, Dict

import numpy as np

from optimizer.artifact import Artifact
from optimizer.cache import Cache, content_key, file_digest, versions
from optimizer.config import ModelConfig
from optimizer.sources.data import Splits
from optimizer.errors import RecipeError
from optimizer.factory import resolve

BUILTIN_FACTORY = "optimizer.sources.models:digits_resnet"


def digits_resnet(width: int = 32, num_classes: int = 10, in_channels: int = 1):
    """A small ResNet for 1x32x32 inputs: stem + three basic blocks (width, 2w, 4w) + linear."""
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU()
            self.short = nn.Identity()
            if stride != 1 or cin != cout:
                self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(y)) + self.short(x))

    w = width
    return nn.Sequential(
        nn.Conv2d(in_channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
        Block(w, w, 1), Block(w, 2 * w, 2), Block(2 * w, 4 * w, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, num_classes),
    )


def train(module, splits: Splits, epochs: int, seed: int, lr: float = 3e-3, label: str = "training", loss=None):
    """Train ``module`` in place on the train split (Adam, cosine schedule, ±2 px shifts).

    ``loss(logits, inputs, labels)`` replaces the cross-entropy (distillation adds a teacher term)."""
    import torch

    from optimizer.console import progress

    torch.manual_seed(seed)
    x, y = torch.from_numpy(splits.train_x), torch.from_numpy(splits.train_y)
    opt = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(x) + 63) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1))
    gen = torch.Generator().manual_seed(seed)
    module.train()
    with progress(label, steps) as advance:
        for _ in range(epochs):
            for idx in torch.randperm(len(x), generator=gen).split(64):
                dx, dy = torch.randint(-2, 3, (2,), generator=gen).tolist()
                xb = torch.roll(x[idx], shifts=(dx, dy), dims=(2, 3))
                out = module(xb)
                err = loss(out, xb, y[idx]) if loss else torch.nn.functional.cross_entropy(out, y[idx])
                opt.zero_grad()
                err.backward()
                opt.step()
                sched.step()
                advance()
    return module.eval()


def torch_artifact(module, directory: Path, factory: str, kwargs: Dict[str, Any], meta: Dict[str, Any]) -> Artifact:
    """Save ``module``'s state dict in ``directory`` as a torch artifact built by ``factory``."""
    path = Path(directory) / "model.pt"
    save_module(module, path, pruned=bool(meta.get("pruned")))
    return Artifact(path=path, format="torch", meta={"factory": factory, "kwargs": dict(kwargs), **meta})


def save_module(module, path: Path, pruned: bool = False) -> None:
    """Save ``module``'s state dict; a pruned module also saves its layers' plain attributes
    (``out_channels``, ``num_features``, ...), so its factory's module can be reshaped to it.

    torch-pruning's own ``tp.state_dict`` pickles whole submodules (``_modules``), which
    ``torch.load(weights_only=True)`` refuses; tensors, numbers and strings load safely."""
    import torch

    state = module.state_dict()
    if pruned:
        state = {"state_dict": state, "attributes": _plain_attributes(module)}
    torch.save(state, path)


def _plain_attributes(module) -> Dict[str, Dict[str, Any]]:
    plain = (int, float, bool, str, type(None))

    def ok(v):
        return isinstance(v, plain) or (isinstance(v, (tuple, list)) and all(isinstance(i, plain) for i in v))

    return {name: {k: v for k, v in sub.__dict__.items() if not k.startswith("_") and k != "training" and ok(v)}
            for name, sub in module.named_modules()}


def _reshape(module, payload: Dict[str, Any]):
    """Give ``module`` (as its factory built it) the pruned layer shapes recorded in ``payload``."""
    import torch

    state, attributes = payload["state_dict"], payload["attributes"]
    for name, sub in module.named_modules():
        for attr, value in attributes.get(name, {}).items():
            setattr(sub, attr, value)
        prefix = f"{name}." if name else ""
        for table in (sub._parameters, sub._buffers):
            for key, tensor in table.items():
                saved = state.get(prefix + key)
                if tensor is not None and saved is not None and saved.shape != tensor.shape:
                    empty = torch.empty_like(saved)
                    table[key] = torch.nn.Parameter(empty, tensor.requires_grad) if table is sub._parameters else empty
    module.load_state_dict(state)
    return module


def load_module(art: Artifact):
    """The ``torch.nn.Module`` of a torch artifact, in eval mode."""
    import torch

    if Path(art.path).suffix == ".pt2":
        return torch.export.load(str(art.path)).module()
    module = resolve(art.meta["factory"], "model factory")(**art.meta.get("kwargs", {}))
    state = torch.load(art.path, weights_only=True, map_location="cpu")
    if art.meta.get("pruned"):
        _reshape(module, state)
    else:
        module.load_state_dict(state)
    return module.eval()


def _io_meta(splits: Splits) -> Dict[str, Any]:
    return {"input_shape": list(splits.input_shape), "num_classes": splits.num_classes, "precision": "fp32"}


def _builtin(cfg: ModelConfig, splits: Splits, cache: Cache, seed: int) -> Artifact:
    kwargs = {"width": 32, "num_classes": splits.num_classes, "in_channels": splits.input_shape[0], **cfg.kwargs}
    key = content_key("builtin", BUILTIN_FACTORY, kwargs, cfg.train_epochs, seed, splits.fingerprint, versions())

    def produce(directory: Path) -> Artifact:
        import torch

        torch.manual_seed(seed)
        module = train(digits_resnet(**kwargs), splits, cfg.train_epochs, seed, label="training built-in model")
        return torch_artifact(module, directory, BUILTIN_FACTORY, kwargs, _io_meta(splits))

    return cache.get(key) or cache.put(key, produce)


def _factory(cfg: ModelConfig, splits: Splits, cache: Cache) -> Artifact:
    import io

    import torch

    fn = resolve(cfg.source, "model.source")
    try:
        module = fn(**cfg.kwargs)
    except Exception as e:
        raise RecipeError(f"model.source {cfg.source!r} failed: {type(e).__name__}: {e}") from e
    if not isinstance(module, torch.nn.Module):
        raise RecipeError(f"model.source {cfg.source!r} must return a torch.nn.Module, got {type(module).__name__}")
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    key = content_key("factory", cfg.source, cfg.kwargs, hashlib.sha256(buf.getvalue()).hexdigest(), versions())
    return cache.get(key) or cache.put(
        key, lambda d: torch_artifact(module.eval(), d, cfg.source, cfg.kwargs, _io_meta(splits))
    )


def _file(cfg: ModelConfig, splits: Splits) -> Artifact:
    path = Path(cfg.source).expanduser()
    if not path.is_file():
        raise RecipeError(f"model.source {cfg.source!r}: no such file")
    if path.suffix == ".onnx":
        from optimizer.onnx_utils import check_onnx

        check_onnx(path, f"model.source {cfg.source!r}")
        fmt = "onnx"
    else:
        import torch

        try:
            torch.export.load(str(path))
        except Exception as e:
            raise RecipeError(f"model.source {cfg.source!r} is not a torch.export program ({type(e).__name__})") from e
        fmt = "torch"
    return Artifact(path=path.resolve(), format=fmt, id=content_key("file", file_digest(path)), meta=_io_meta(splits))


def load_source(cfg: ModelConfig, splits: Splits, cache: Cache, seed: int) -> Artifact:
    """The reference artifact named by ``model.source``."""
    if cfg.source == "builtin":
        return _builtin(cfg, splits, cache, seed)
    if cfg.source.endswith((".onnx", ".pt2")):
        return _file(cfg, splits)
    if ":" in cfg.source:
        return _factory(cfg, splits, cache)
    raise RecipeError(
        f"model.source {cfg.source!r}: expected 'builtin', 'package.module:function', a .onnx file or a .pt2 file"
    )


def logits(module, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return module(torch.from_numpy(x)).numpy()
