"""Deployment targets: where the chosen variant goes once the decision is made.

``TARGETS`` is the whole seam: a row names a target and the module that implements it. That module has

- ``enabled(cfg) -> bool``: whether the recipe asks for this target;
- ``preflight(cfg, out_dir) -> None``: the target's settings checked at plan time (``RecipeError``, exit 2),
  before any pass runs;
- ``deploy(cfg, inputs: DeployInputs) -> TargetRecord``: tune, emit and check the chosen variant.

A new target is a package plus one row here; the pipeline asks the table and knows no target by name. Rows
name modules (imported when used), so ``import optimizer`` stays light. A target reads the recipe's sections
it needs (its own, ``serving``, ``hardware``), which is why it is handed the composed recipe."""

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Dict, Optional

if TYPE_CHECKING:
    from optimizer.artifact import Artifact
    from optimizer.cache import Cache
    from optimizer.io import Feeds


@dataclass(frozen=True)
class DeployInputs:
    """What a target gets besides the recipe: the chosen variant and what it needs to tune and check it."""

    variant: str  # the chosen variant's name
    artifact: "Artifact"  # its model file and metadata
    evaluation: "Feeds"  # evaluation inputs (reference answers, tuning sweeps)
    cache: "Cache"  # for the target's own cached measurements
    out_dir: Path  # the run directory
    recipe: str  # the recipe's name, for provenance
    measurement_id: Optional[str] = None  # the measurement set the choice was made on
    peak_memory_mb: Optional[float] = None  # the chosen variant's measured peak memory (sizes a pod's request)


@dataclass(frozen=True)
class Target:
    name: str  # the summary.json key of its record
    module: str  # implements enabled / preflight / deploy

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


TARGETS: Dict[str, Target] = {
    "triton": Target("triton", "optimizer.triton.target"),
}
