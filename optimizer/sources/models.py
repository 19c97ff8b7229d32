"""Model sources: the built-in models (``sources/builtin.py``), a Python factory ``pkg.mod:fn``, a Hugging
Face directory ``hf:<dir>``, an ONNX file, or a saved torch program (``torch.export`` ``.pt2``). Every source
records its named I/O in ``meta["io"]``, probed on the data.

A torch artifact is a state dict plus the factory that builds its module, so it loads with
``torch.load(weights_only=True)``; a pruned one (``meta["pruned"]``) also stores its layers' new
shapes, to which the factory's module is resized. A ``.pt2`` program loads with ``torch.export.load``."""

import hashlib
from pathlib import Path
from typing import Any, Dict

import numpy as np

from optimizer.artifact import Artifact
from optimizer.cache import Cache
from optimizer.files import content_key, file_digest
from optimizer.formats import versions
from optimizer.config import ModelConfig
from optimizer.errors import RecipeError, one_line
from optimizer.factory import Rule, resolve
from optimizer.io import IOSpec, TensorSpec, take
from optimizer.sources.data import Splits


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


def probe_meta(module, splits: Splits) -> Dict[str, Any]:
    """Run ``module`` on two evaluation samples: its I/O spec (inputs in the order it takes them, outputs
    as it names them). A model that cannot run on the data is a RecipeError naming the cause."""
    from optimizer.formats.torch import forward, input_order

    feeds = take(splits.evaluation, slice(0, 2))
    order = input_order(module, list(feeds))
    try:
        outputs = forward(module, feeds, order, getattr(module, "output_names", None) or ())
    except Exception as e:
        raise RecipeError(f"model.source: the model fails on the data's inputs "
                          f"{[t.describe() for t in splits.inputs()]}: {type(e).__name__}: {one_line(e)}") from e
    specs = {t.name: t for t in splits.inputs()}
    io = IOSpec(tuple(specs[n] for n in order),
                tuple(TensorSpec(k, str(v.dtype).replace("torch.", ""), ("batch", *v.shape[1:]))
                      for k, v in outputs.items()))
    return {"io": io.to_dict(), "precision": "fp32"}


def _factory(cfg: ModelConfig, splits: Splits, cache: Cache) -> Artifact:

    import torch

    fn = resolve(cfg.source, "model.source", Rule.of(cfg))
    try:
        module = fn(**cfg.kwargs)
    except Exception as e:
        raise RecipeError(f"model.source {cfg.source!r} failed: {type(e).__name__}: {e}") from e
    if not isinstance(module, torch.nn.Module):
        raise RecipeError(f"model.source {cfg.source!r} must return a torch.nn.Module, got {type(module).__name__}")
    return _module_artifact(module.eval(), cfg.source, dict(cfg.kwargs), splits, cache, {})


def _module_artifact(module, factory: str, kwargs: Dict, splits: Splits, cache: Cache, meta: Dict) -> Artifact:
    import io

    import torch

    meta = {**meta, **probe_meta(module, splits)}
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    key = content_key("factory", factory, kwargs, hashlib.sha256(buf.getvalue()).hexdigest(), meta, versions())
    return cache.get(key, "source") or cache.put(key, lambda d: torch_artifact(module, d, factory, kwargs, meta))


def _hf(cfg: ModelConfig, splits: Splits, cache: Cache) -> Artifact:
    from optimizer.sources import hf

    directory = str(hf.check_directory(cfg.source[3:], "model.source").resolve())
    info = hf.describe(directory, cfg.task)
    module = hf.load_module(directory, info["task"])
    meta = {"transformer": info["transformer"], "hf_task": info["task"]}
    return _module_artifact(module, "optimizer.sources.hf:load_module", {"directory": directory, "task": info["task"]},
                            splits, cache, meta)


def _file(cfg: ModelConfig, splits: Splits) -> Artifact:
    path = Path(cfg.source).expanduser()
    if not path.is_file():
        raise RecipeError(f"model.source {cfg.source!r}: no such file")
    if path.suffix == ".onnx":
        from optimizer.formats.onnx import read_io
        from optimizer.formats.onnx_graph import check_onnx

        check_onnx(path, f"model.source {cfg.source!r}")
        io = read_io(path)
        check_feeds(io, splits, f"model.source {cfg.source!r}")
        return Artifact(path=path.resolve(), format="onnx", id=content_key("file", file_digest(path)),
                        meta={"io": io.to_dict(), "precision": "fp32"})
    if not cfg.trust_pickle:
        raise RecipeError(f"model.source {cfg.source!r}: a .pt2 program is loaded with torch.export.load, which "
                          f"unpickles Python objects and can run code; set model.trust_pickle=true to trust it")
    import torch

    try:
        module = torch.export.load(str(path)).module()
    except Exception as e:
        raise RecipeError(f"model.source {cfg.source!r} is not a torch.export program ({type(e).__name__})") from e
    return Artifact(path=path.resolve(), format="torch", id=content_key("file", file_digest(path)),
                    meta=probe_meta(module, splits))


def check_feeds(io: IOSpec, splits: Splits, what: str) -> None:
    """The data feeds every input the model declares, with its dtype and rank (RecipeError naming the input)."""
    feeds = splits.evaluation
    for t in io.inputs:
        if t.name not in feeds:
            raise RecipeError(f"{what} needs input {t.describe()}; the data has {sorted(feeds)}")
        a = feeds[t.name]
        if a.dtype.name != t.dtype or a.ndim != len(t.shape):
            raise RecipeError(f"{what}: input {t.name!r} must be {t.dtype} with {len(t.shape)} axes "
                              f"{list(t.shape)}; the data gives {a.dtype.name} {list(a.shape)}")
        fixed = [(i, d) for i, d in enumerate(t.shape) if isinstance(d, int) and d > 0 and i > 0]
        bad = [(i, d, a.shape[i]) for i, d in fixed if a.shape[i] != d]
        if bad:
            raise RecipeError(f"{what}: input {t.name!r} has shape {list(t.shape)}; the data gives {list(a.shape)}")
    extra = sorted(set(feeds) - set(io.input_names))
    if extra:
        raise RecipeError(f"{what} takes inputs {io.input_names}; the data also has {extra} (remove them)")


def load_source(cfg: ModelConfig, splits: Splits, cache: Cache, seed: int) -> Artifact:
    """The reference artifact named by ``model.source``."""
    if cfg.source == "builtin" or cfg.source.startswith("builtin:"):
        from optimizer.sources.builtin import load_builtin

        return load_builtin(cfg, splits, cache, seed)
    if cfg.source.startswith("hf:"):
        return _hf(cfg, splits, cache)
    if cfg.source.endswith((".onnx", ".pt2")):
        return _file(cfg, splits)
    if ":" in cfg.source:
        return _factory(cfg, splits, cache)
    raise RecipeError(
        f"model.source {cfg.source!r}: expected 'builtin', 'builtin:<name>', 'package.module:function', "
        f"'hf:<directory>', a .onnx file or a .pt2 file"
    )


def logits(module, x) -> np.ndarray:
    """The first output of ``module`` on ``x`` (an array for a one-input model, or feeds)."""
    from optimizer.formats.torch import forward

    return next(iter(forward(module, x if isinstance(x, dict) else {"input": x}).values())).numpy()
