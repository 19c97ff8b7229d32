"""What every model source does once it has a model: probe its named I/O on the data, check that the data
feeds a model file's declared inputs, and cache a torch module built from a factory."""

import hashlib
from typing import Any, Dict, Sequence

from optimizer.artifact import Artifact
from optimizer.cache import Cache
from optimizer.errors import RecipeError, one_line
from optimizer.files import content_key
from optimizer.formats import versions
from optimizer.formats.torch import forward, input_order, torch_artifact
from optimizer.io import IOSpec, TensorSpec, take
from optimizer.sources.data import Splits


def probe_meta(module, splits: Splits) -> Dict[str, Any]:
    """Run ``module`` on two evaluation samples: its I/O spec (inputs in the order it takes them, outputs
    as it names them). A model that cannot run on the data is a RecipeError naming the cause."""
    feeds = take(splits.evaluation, slice(0, 2))
    order = input_order(module, list(feeds))
    try:
        outputs = forward(module, feeds, order, getattr(module, "output_names", None) or ())
    except Exception as e:
        raise RecipeError(f"model.source: the model fails on the data's inputs "
                          f"{[t.describe() for t in splits.inputs()]}: {type(e).__name__}: {one_line(e)}") from e
    specs = {t.name: t for t in splits.inputs(getattr(module, "dynamic_axes", None) or {})}
    io = IOSpec(tuple(specs[n] for n in order),
                tuple(TensorSpec(k, str(v.dtype).replace("torch.", ""), ("batch", *v.shape[1:]))
                      for k, v in outputs.items()))
    return {"io": io.to_dict(), "precision": "fp32"}


def module_artifact(module, factory: str, kwargs: Dict, splits: Splits, cache: Cache, meta: Dict) -> Artifact:
    """``module`` (built by ``factory(**kwargs)``) as a cached torch artifact, keyed by its weights."""
    import io

    import torch

    meta = {**meta, **probe_meta(module, splits)}
    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    key = content_key("factory", factory, kwargs, hashlib.sha256(buf.getvalue()).hexdigest(), meta, versions())
    return cache.get(key, "source") or cache.put(key, lambda d: torch_artifact(module, d, factory, kwargs, meta))


def check_feeds(io: IOSpec, splits: Splits, what: str, carried: Sequence[str] = ()) -> None:
    """The data feeds every input the model declares (but the ``carried`` state inputs, which the model's own
    outputs feed), with its dtype and rank (RecipeError naming the input)."""
    feeds = splits.evaluation
    for t in io.inputs:
        if t.name in carried:
            continue
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
