"""torch modules (eager): a state dict plus the factory that builds the module, or a torch.export program.

A torch artifact is a state dict plus the factory that builds its module, so it loads with
``torch.load(weights_only=True)``; a pruned one (``meta["pruned"]``) also stores its layers' new
shapes, to which the factory's module is resized. A ``.pt2`` program loads with ``torch.export.load``.

A module is called with the feeds as keyword arguments when its ``forward`` names them, else positionally
in the order of its ``input_names`` attribute (or the data's order); tensors, tuples, dicts and Hugging
Face ``ModelOutput`` results become named outputs."""

from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np

from optimizer.artifact import Artifact
from optimizer.config import HardwareConfig
from optimizer.errors import RecipeError
from optimizer.factory import resolve
from optimizer.formats import Format, Session, threads
from optimizer.gpu import is_cuda
from optimizer.io import IOSpec


def input_order(module, names: Sequence[str]) -> List[str]:
    """The data's input names in the order the module takes them; RecipeError when they do not fit."""
    import inspect

    forward = getattr(module, "forward", module)
    try:
        params = [p for p in inspect.signature(forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    except (TypeError, ValueError):
        params = []
    declared = list(getattr(module, "input_names", []) or [])
    if declared:
        missing = [n for n in declared if n not in names]
        if missing:
            raise RecipeError(f"the model needs input(s) {missing}; the data has {list(names)}")
        return declared
    by_name = [p.name for p in params]
    if len(names) > 1 or (names and names[0] in by_name):
        required = [p.name for p in params if p.default is p.empty and p.name not in names]
        if required:
            raise RecipeError(f"the model's forward needs {required}; the data has {list(names)}")
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise RecipeError(f"data input(s) {unknown} are not arguments of the model's forward({', '.join(by_name)})")
        return [n for n in by_name if n in names]
    return list(names)


def call(module, feeds: Mapping, order: List[str]):
    """``module`` run on torch tensors ``feeds`` (keyword arguments when its forward names them)."""
    import inspect

    try:
        params = inspect.signature(module.forward).parameters
    except (TypeError, ValueError, AttributeError):
        params = {}
    if len(order) == 1 or getattr(module, "input_names", None) or not all(n in params for n in order):
        return module(*[feeds[n] for n in order])
    return module(**{n: feeds[n] for n in order})


def named_outputs(out, names: Sequence[str] = ()) -> Dict:
    """Outputs as ``{name: tensor}``: a dict or ModelOutput keeps its keys (None fields dropped); a tensor or
    tuple takes ``names`` (the module's ``output_names``), else ``output`` / ``output_0``, ``output_1``, ..."""
    if isinstance(out, Mapping) or hasattr(out, "to_tuple"):
        return {str(k): v for k, v in dict(out).items() if v is not None}
    values = list(out) if isinstance(out, (tuple, list)) else [out]
    if names and len(names) == len(values):
        return dict(zip(names, values))
    return {"output": values[0]} if len(values) == 1 else {f"output_{i}": v for i, v in enumerate(values)}


def forward(module, feeds: Mapping[str, np.ndarray], order: Sequence[str] = (), names: Sequence[str] = (),
            device: str = "cpu") -> Dict:
    """``module`` run on numpy ``feeds`` in inference mode: its outputs as ``{name: tensor}``."""
    import torch

    order = list(order) or input_order(module, list(feeds))
    with torch.inference_mode():
        out = call(module, {n: torch.from_numpy(np.ascontiguousarray(feeds[n])).to(device) for n in order}, order)
    return named_outputs(out, names)


def torch_artifact(module, directory: Path, factory: str, kwargs: Dict[str, Any], meta: Dict[str, Any]) -> Artifact:
    """Save ``module``'s state dict in ``directory`` as a torch artifact built by ``factory``."""
    path = Path(directory) / "model.pt"
    save_module(module, path, pruned=bool(meta.get("pruned")))
    return Artifact(path=path, format="torch", meta={"factory": factory, "kwargs": dict(kwargs), **meta})


def save_module(module, path: Path, pruned: bool = False) -> None:
    """Save ``module``'s state dict; a pruned module also saves its layers' plain attributes
    (``out_channels``, ``num_features``, ``num_attention_heads``, ...) and the length of each ModuleList (a
    student keeps fewer layers), so its factory's module can be reshaped to it.

    torch-pruning's own ``tp.state_dict`` pickles whole submodules (``_modules``), which
    ``torch.load(weights_only=True)`` refuses; tensors, numbers and strings load safely."""
    import torch

    state = module.state_dict()
    if pruned:
        lengths = {name: len(sub) for name, sub in module.named_modules() if isinstance(sub, torch.nn.ModuleList)}
        state = {"state_dict": state, "attributes": _plain_attributes(module), "lengths": lengths}
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
    for name, sub in list(module.named_modules()):
        kept = payload.get("lengths", {}).get(name)
        if isinstance(sub, torch.nn.ModuleList) and kept is not None and kept < len(sub):
            del sub[kept:]  # the layers left are renumbered 0..kept-1, as the state dict has them
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


def logits(module, x) -> np.ndarray:
    """The first output of ``module`` on ``x`` (an array for a one-input model, or feeds)."""
    return next(iter(forward(module, x if isinstance(x, dict) else {"input": x}).values())).numpy()


def _open(art: Artifact, hw: HardwareConfig) -> Session:
    import torch

    torch.set_num_threads(threads(hw))
    device = "cuda" if is_cuda(hw) else "cpu"
    module = load_module(art).to(device)
    spec = IOSpec.from_dict(art.meta["io"]) if "io" in art.meta else None
    names = getattr(module, "output_names", None) or (spec.output_names if spec else [])

    orders: Dict[tuple, List[str]] = {}  # feed names -> call order, worked out once (not on every timed call)

    def run(feeds) -> Dict[str, np.ndarray]:
        key = tuple(feeds)
        order = orders.get(key) or orders.setdefault(key, input_order(module, list(key)))
        return {k: v.float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy()
                for k, v in forward(module, feeds, order, names, device).items()}

    return Session(run, "torch", spec.input_names if spec else [])


def _io(art: Artifact) -> IOSpec:
    raise RecipeError(f"torch artifact {art.path} records no I/O (meta['io']); re-create it from its source")


FORMAT = Format(name="torch", file_name="model.pt", open=_open, io=_io, triton_platform=None,
                libraries=("torch", "torch-pruning", "transformers"))
