"""One home per artifact format: how to open a session on it, read its I/O, and serve it with Triton.

Every consumer (evaluation, benchmark, the Triton emitter, the cache's version keys) asks ``get(fmt)``
instead of knowing formats itself, so a new format is one module here plus the pass that makes it."""

import importlib
from importlib import metadata
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from optimizer.artifact import Artifact
from optimizer.config import ExecutionMode, GraphLevel, HardwareConfig
from optimizer.errors import RecipeError
from optimizer.io import Feeds, IOSpec


def threads(hw: HardwareConfig) -> int:
    return hw.intra_op_threads or hw.cores


RUNTIME_OPTIONS = {"intra_op_threads": int, "inter_op_threads": int, "execution_mode": ExecutionMode,
                   "graph_optimization_level": GraphLevel}  # what a search trial may set per variant: hardware.<option>


def with_runtime(hw: HardwareConfig, runtime: Dict[str, Any]) -> HardwareConfig:
    """``hw`` with a variant's session options (``RUNTIME_OPTIONS``) in place of the entry's; ValueError on a
    value the option does not take."""
    from dataclasses import replace

    unknown = sorted(set(runtime) - set(RUNTIME_OPTIONS))
    if unknown:
        raise ValueError(f"not a runtime option: {unknown}; they are {sorted(RUNTIME_OPTIONS)}")
    out = replace(hw, **{k: RUNTIME_OPTIONS[k](v) for k, v in runtime.items()})
    if out.intra_op_threads < 0 or out.inter_op_threads < 1:
        raise ValueError("intra_op_threads must be >= 0 (0: all cores) and inter_op_threads >= 1")
    return out


class Session:
    """``session(feeds) -> {output name: array}``; ``close()`` frees the runtime's thread pool and memory."""

    def __init__(self, run: Callable[[Feeds], Dict[str, np.ndarray]], name: str, input_names: List[str],
                 close: Callable[[], None] = lambda: None):
        self.run, self.name, self.input_names, self._close = run, name, input_names, close

    def __call__(self, feeds: Feeds) -> Dict[str, np.ndarray]:
        return self.run(feeds)

    def close(self) -> None:
        self._close()


@dataclass(frozen=True)
class Format:
    name: str  # the artifact's format field
    file_name: str  # the model file's name in a cache entry and a Triton version directory
    open: Callable[[Artifact, HardwareConfig], Session]  # a session on the hardware's device
    io: Callable[[Artifact], IOSpec]  # named inputs and outputs
    triton_platform: Optional[str] = None  # Triton platform (and template name); None: not servable
    libraries: tuple = ()  # distributions whose versions enter the cache key of passes making this format


_MODULES = {"onnx": "optimizer.formats.onnx", "torch": "optimizer.formats.torch", "tensorrt": "optimizer.formats.tensorrt"}


def get(name: str) -> Format:
    """The format record of ``name`` (its module is imported on first use)."""
    if name not in _MODULES:
        raise RecipeError(f"unknown artifact format {name!r}; known: {', '.join(sorted(_MODULES))}")
    return importlib.import_module(_MODULES[name]).FORMAT


def names() -> List[str]:
    """Every artifact format: the one list of format names (passes' takes/makes, cache version keys)."""
    return sorted(_MODULES)


def load(art: Artifact, hw: HardwareConfig) -> Session:
    """A session that runs ``art`` on the hardware's device."""
    return get(art.format).open(art, hw)


def io(art: Artifact) -> IOSpec:
    """``art``'s named inputs and outputs, as recorded in its metadata or read from its file."""
    if "io" in art.meta:
        return IOSpec.from_dict(art.meta["io"])
    return get(art.format).io(art)


def versions() -> Dict[str, str]:
    """Versions of the libraries whose behaviour changes what a pass produces (each format names its own)."""
    out = {}
    for dist in sorted({d for name in names() for d in get(name).libraries}):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out
