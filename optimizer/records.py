"""Frozen records for what flows after measurement. They become JSON only at the edge (summary.json,
MLflow, reports), through ``to_dict``."""

from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional


@dataclass(frozen=True)
class TargetRecord:
    """What a deployment target did with the chosen variant.

    ``gate``: a constraint the target could not meet (the run exits 3); ``failed``: the target's own check
    failed (exit 1); ``location``: where the deployable artifact is (a Triton model repository);
    ``details``: the target's own JSON-ready figures, kept as they are in summary.json."""

    target: str
    emitted: bool
    gate: Optional[str] = None
    failed: Optional[str] = None
    location: Optional[str] = None
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, Any]:
        out = {"emitted": self.emitted, **self.details}
        for key in ("gate", "failed"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        return out
