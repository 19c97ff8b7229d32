"""State carried from call to call: ``model.state: {input: output}`` pairs of an ONNX model (a streaming
voice-activity detector's ``state`` -> ``stateN``, an RNN's ``h0`` -> ``hn``).

Each data split is one stream, in sample order, starting from a zero state. When the data holds no values
for a state input, they are the source model's own: the state it returned for the sample before (zeros for
the first), computed once at load by running the stream: calibration and timing use them. Evaluation runs the
evaluation split as one stream in which each variant carries its own state from zeros (``stream_predict``), so a
state error that compounds from call to call shows in its parity. Triton serves the model with the sequence
batcher keeping the state (``triton.sequence``)."""

from typing import Dict, List, Mapping, Tuple

import numpy as np

from optimizer.errors import RecipeError
from optimizer.io import IOSpec


def check_pairs(io: IOSpec, state: Mapping[str, str]) -> None:
    """Each pair names an input and an output of the same type and shape (RecipeError naming the key)."""
    inputs = {t.name: t for t in io.inputs}
    outputs = {t.name: t for t in io.outputs}
    for name, out in state.items():
        if name not in inputs:
            raise RecipeError(f"model.state.{name}: the model has no input {name!r}; its inputs are {sorted(inputs)}")
        if out not in outputs:
            raise RecipeError(f"model.state.{name}: the model has no output {out!r}; its outputs are {sorted(outputs)}")
        a, b = inputs[name], outputs[out]
        if a.shape and isinstance(a.shape[0], int):
            raise RecipeError(f"model.state.{name}: the input is {a.describe()}, its axis 0 is fixed, so not the batch; "
                              f"set model.batch_axis for {name!r} and {out!r}")
        if a.dtype != b.dtype or len(a.shape) != len(b.shape) or not all(map(_same_axis, a.shape, b.shape)):
            raise RecipeError(f"model.state.{name}: input {a.describe()} and output {b.describe()} differ; "
                              f"a state output must have its input's type and shape (set model.batch_axis where "
                              f"the batch is not axis 0)")


def _same_axis(x, y) -> bool:
    """Two axes that may be the same: equal sizes, or a symbolic one against anything but a fixed size where the
    other is the batch (a batch moved to axis 0 on one side only)."""
    if isinstance(x, int) and isinstance(y, int):
        return x == y
    return (x == "batch") == (y == "batch") or not (isinstance(x, int) or isinstance(y, int))


def missing_states(state: Mapping[str, str], splits) -> List[str]:
    """The state inputs the data does not hold (all or none: RecipeError when only some are given)."""
    missing = [name for name in state if name not in splits.evaluation]
    if missing and len(missing) < len(state):
        raise RecipeError(f"model.state: the data holds {sorted(set(state) - set(missing))} but not {missing}; "
                          f"give every state input or none (then the model's own states are carried)")
    return missing


def carried(art, splits, state: Mapping[str, str], hardware) -> "object":
    """``splits`` with the missing state inputs filled by the model's own carried states (see the module)."""
    from dataclasses import replace

    missing = missing_states(state, splits)
    if not missing:
        return splits
    from optimizer import formats

    session = formats.load(art, hardware)
    try:
        io = formats.io(art)
        filled = {split: _stream(session, getattr(splits, split), io, state)
                  for split in ("train", "calibration", "evaluation")}
    finally:
        session.close()
    return replace(splits, **filled)


def _stream(session, feeds: Mapping[str, np.ndarray], io: IOSpec, state: Mapping[str, str]) -> Dict[str, np.ndarray]:
    """``feeds`` plus each state input's value at every sample: the output of the call before, zeros first."""
    specs = {t.name: t for t in io.inputs}
    zeros = {name: np.zeros([1, *[d if isinstance(d, int) else 1 for d in specs[name].shape[1:]]], specs[name].dtype)
             for name in state}
    _, held = stream(session, feeds, state, zeros)
    return {**feeds, **held}


def stream(session, feeds: Mapping[str, np.ndarray], state: Mapping[str, str],
           zeros: Mapping[str, np.ndarray]) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    """Run ``feeds`` as one stream, one sample per call, each state input fed the output of the call before
    (``zeros`` first), whatever ``feeds`` holds for it: ``(outputs, the states fed)``, batch-first."""
    from optimizer.io import concat, count, take

    current = {name: np.asarray(z) for name, z in zeros.items()}
    held: Dict[str, List[np.ndarray]] = {name: [] for name in state}
    outputs = []
    for i in range(count(feeds)):
        for name in state:
            held[name].append(current[name])
        out = session({**take(feeds, slice(i, i + 1)), **current})
        outputs.append(out)
        current = {name: np.asarray(out[o], dtype=current[name].dtype) for name, o in state.items()}
    return concat(outputs), {name: np.concatenate(values) for name, values in held.items()}


def stream_predict(session, feeds: Mapping[str, np.ndarray], state: Mapping[str, str]) -> Dict[str, np.ndarray]:
    """A stateful variant's evaluation outputs: the evaluation split as one stream, the variant carrying its own
    state from zeros (so a state error that compounds from call to call shows in its parity)."""
    zeros = {name: np.zeros_like(feeds[name][:1]) for name in state}
    return stream(session, feeds, state, zeros)[0]
