"""Batch axes as models have them, batch-first as everything downstream takes them.

Data, batching, quantization calibration and Triton's batchers all put the batch on axis 0. A model whose
input or output holds it elsewhere (a recurrent state ``[2, batch, 128]``) or not at all (a per-call value
``sr``) is given a batch-first boundary once, at load: ``model.batch_axis: {state: 1, stateN: 1, sr: null}``.

- input, axis k: the graph input takes the batch first; a ``Transpose`` restores the model's own layout;
- input, none: the graph input gains a batch axis; a ``Gather`` of row 0 feeds the model (one value per call:
  the data must hold the same value in every sample, which ``check_unbatched`` checks);
- output, axis k: a ``Transpose`` after the model puts the batch first.

The model's nodes are untouched, so the rewrite is exact: the same numbers, another layout."""

from pathlib import Path
from typing import Dict, List, Mapping, Optional

from optimizer.errors import RecipeError

SUFFIX = "__model_layout"  # the model's own tensor, behind the batch-first boundary


def _to_front(rank: int, k: int) -> List[int]:
    """perm moving axis ``k`` of a rank-``rank`` tensor to the front."""
    return [k, *[i for i in range(rank) if i != k]]


def _from_front(rank: int, k: int) -> List[int]:
    """perm undoing ``_to_front(rank, k)``."""
    return [i + 1 if i < k else (0 if i == k else i) for i in range(rank)]


def _axis(name: str, value, rank: int, what: str, none_ok: bool) -> Optional[int]:
    """The batch axis ``value`` of a rank-``rank`` tensor, checked; None for no batch axis."""
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
        if not none_ok:
            raise RecipeError(f"{what}.{name}: an output needs a batch axis (0 to {rank - 1}); "
                              f"only an input may have none")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecipeError(f"{what}.{name}: {value!r} is not an axis; give an integer or null (no batch axis)")
    axis = value + rank if value < 0 else value
    if not 0 <= axis < rank:
        raise RecipeError(f"{what}.{name}: axis {value} is beyond the tensor's {rank} axes "
                          f"(0 to {rank - 1}, or null for none)")
    return axis


def _rename_uses(graph, old: str, new: str) -> None:
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new


def _batch_input(graph, value, axis: Optional[int]):
    """Rewrite graph input ``value`` to take the batch first; returns the boundary node."""
    from onnx import TensorProto, helper

    name, inner = value.name, value.name + SUFFIX
    dims = list(value.type.tensor_type.shape.dim)
    _rename_uses(graph, name, inner)
    for out in graph.output:  # an input passed straight through keeps its own layout behind the boundary
        if out.name == name:
            raise RecipeError(f"model.batch_axis.{name}: the input is also an output; rename one in the model")
    shape = value.type.tensor_type.shape
    del shape.dim[:]
    if axis is None:
        shape.dim.add().dim_param = "batch"
        for d in dims:
            shape.dim.add().CopyFrom(d)
        index = helper.make_tensor(name + "__row0", TensorProto.INT64, [], [0])
        graph.initializer.append(index)
        return helper.make_node("Gather", [name, index.name], [inner], axis=0, name=name + "__first_row")
    for i in _to_front(len(dims), axis):
        shape.dim.add().CopyFrom(dims[i])
    shape.dim[0].ClearField("dim_value")
    shape.dim[0].dim_param = "batch"
    return helper.make_node("Transpose", [name], [inner], perm=_from_front(len(dims), axis), name=name + "__layout")


def _batch_output(graph, value, axis: int):
    """Rewrite graph output ``value`` to give the batch first; returns the boundary node."""
    from onnx import helper

    name, inner = value.name, value.name + SUFFIX
    for node in graph.node:
        for i, out in enumerate(node.output):
            if out == name:
                node.output[i] = inner
    _rename_uses(graph, name, inner)
    dims = list(value.type.tensor_type.shape.dim)
    shape = value.type.tensor_type.shape
    del shape.dim[:]
    for i in _to_front(len(dims), axis):
        shape.dim.add().CopyFrom(dims[i])
    shape.dim[0].ClearField("dim_value")
    shape.dim[0].dim_param = "batch"
    return helper.make_node("Transpose", [inner], [name], perm=_to_front(len(dims), axis), name=name + "__layout")


def batch_first(src: Path, dst: Path, axes: Mapping[str, object], what: str = "model.batch_axis") -> Dict[str, object]:
    """Write ``src`` to ``dst`` with every tensor named in ``axes`` batch-first (see the module's doc);
    RecipeError naming ``what.<name>`` for an unknown name or an axis beyond the tensor's rank. Returns the
    axes applied (``{name: axis or None}``)."""
    import onnx

    model = onnx.load(str(src))
    graph = model.graph
    inits = {t.name for t in graph.initializer}
    inputs = {v.name: v for v in graph.input if v.name not in inits}
    outputs = {v.name: v for v in graph.output}
    applied: Dict[str, object] = {}
    front, back = [], []
    for name, value in axes.items():
        tensor = inputs.get(name) or outputs.get(name)
        if tensor is None:
            raise RecipeError(f"{what}.{name}: the model has no input or output {name!r}; its inputs are "
                              f"{sorted(inputs)}, its outputs {sorted(outputs)}")
        if not tensor.type.tensor_type.HasField("shape"):
            raise RecipeError(f"{what}.{name}: the model declares no shape for {name!r}, so its axes are unknown")
        rank = len(tensor.type.tensor_type.shape.dim)
        axis = _axis(name, value, rank, what, none_ok=name in inputs)
        applied[name] = axis
        if axis == 0:
            continue
        if name in inputs:
            front.append(_batch_input(graph, tensor, axis))
        else:
            back.append(_batch_output(graph, tensor, axis))
    nodes = front + list(graph.node) + back
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return applied


def check_unbatched(feeds: Mapping, axes: Mapping[str, object], split: str) -> None:
    """An input with no batch axis gets one value per call: the data must hold the same value in every sample."""
    import numpy as np

    for name, axis in axes.items():
        if axis is None and name in feeds and len(feeds[name]) > 1:
            a = feeds[name]
            if not np.all(a == a[:1]):
                raise RecipeError(f"model.batch_axis.{name}: null means one value per call, but the {split} split "
                                  f"holds different values in different samples; give the input a batch axis")
