"""Named model I/O: a tensor's name, dtype and shape with named dynamic axes, and named feeds.

A model's I/O is recorded once in its artifact's metadata (``meta["io"]``) as an ``IOSpec``; data
splits and sessions speak in feeds, ``{input name: array with the batch axis first}``."""

from dataclasses import dataclass
from typing import Dict, List, Mapping, Sequence, Tuple, Union

import numpy as np

Feeds = Dict[str, np.ndarray]
Dim = Union[int, str]  # a fixed size, or the name of a dynamic axis ("batch", "sequence")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy dtype name: "float32", "int64", ...
    shape: Tuple[Dim, ...]  # batch axis first

    def to_dict(self) -> Dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, d: Mapping) -> "TensorSpec":
        return cls(d["name"], d["dtype"], tuple(d["shape"]))

    def describe(self) -> str:
        return f"{self.name} ({self.dtype} [{', '.join(str(d) for d in self.shape)}])"


@dataclass(frozen=True)
class IOSpec:
    inputs: Tuple[TensorSpec, ...]
    outputs: Tuple[TensorSpec, ...]

    @property
    def input_names(self) -> List[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> List[str]:
        return [t.name for t in self.outputs]

    def to_dict(self) -> Dict:
        return {"inputs": [t.to_dict() for t in self.inputs], "outputs": [t.to_dict() for t in self.outputs]}

    @classmethod
    def from_dict(cls, d: Mapping) -> "IOSpec":
        return cls(tuple(TensorSpec.from_dict(t) for t in d["inputs"]),
                   tuple(TensorSpec.from_dict(t) for t in d["outputs"]))


def count(feeds: Mapping[str, np.ndarray]) -> int:
    """Samples in ``feeds`` (the batch axis of its first input)."""
    return len(next(iter(feeds.values()))) if feeds else 0


def take(feeds: Mapping[str, np.ndarray], index) -> Feeds:
    """The same rows (a slice or an index array) of every input."""
    return {k: np.ascontiguousarray(v[index]) for k, v in feeds.items()}


def batch_of(feeds: Mapping[str, np.ndarray], size: int) -> Feeds:
    """A contiguous batch of ``size`` real samples of every input, repeating the pool when it is too small."""
    n = count(feeds)
    return take(feeds, np.arange(size) % n)


def batches(feeds: Mapping[str, np.ndarray], size: int):
    """Consecutive slices of ``size`` samples (the last may be shorter)."""
    n = count(feeds)
    for i in range(0, n, size):
        yield take(feeds, slice(i, i + size))


def concat(parts: Sequence[Mapping[str, np.ndarray]]) -> Feeds:
    """Outputs of several batches joined along the batch axis, name by name."""
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}


def input_specs(feeds: Mapping[str, np.ndarray], dynamic: Mapping[str, Mapping[int, str]] = ()) -> Tuple[TensorSpec, ...]:
    """Specs of the data's inputs: axis 0 is ``batch``; axis 1 of a 2-D integer input (token ids, masks) is
    ``sequence``; ``dynamic`` names further axes (``{"input_ids": {1: "sequence"}}``)."""
    dynamic = dict(dynamic or {})
    specs = []
    for name, a in feeds.items():
        shape: List[Dim] = ["batch", *a.shape[1:]]
        if a.ndim == 2 and np.issubdtype(a.dtype, np.integer):
            shape[1] = "sequence"
        for axis, label in dynamic.get(name, {}).items():
            shape[int(axis)] = label
        specs.append(TensorSpec(name, a.dtype.name, tuple(shape)))
    return tuple(specs)
