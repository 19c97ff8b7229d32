"""torch modules (eager): a state dict plus the factory that builds the module, or a torch.export program.

A module is called with the feeds as keyword arguments when its ``forward`` names them, else positionally
in the order of its ``input_names`` attribute (or the data's order); tensors, tuples, dicts and Hugging
Face ``ModelOutput`` results become named outputs."""

from typing import Dict, List, Mapping, Sequence

import numpy as np

from optimizer.artifact import Artifact
from optimizer.config import Device, HardwareConfig
from optimizer.errors import RecipeError
from optimizer.formats import Format, Session, threads
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


def _open(art: Artifact, hw: HardwareConfig) -> Session:
    import torch

    from optimizer.sources.models import load_module

    torch.set_num_threads(threads(hw))
    device = "cuda" if hw.device == Device.cuda else "cpu"
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
