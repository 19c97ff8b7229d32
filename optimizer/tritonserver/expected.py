"""What a served model is checked against: its stored reference answers (``reference.npz``) and its SLAs.

The SLAs come from the run that tuned the model (handed in, typed: ``Sla``) or, for the command line, from
the ``tuning.json`` beside its config. ``serve_check`` and ``overload`` both read them here."""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

import numpy as np

TOLERANCE = 1e-4  # same model file, same runtime, same batch size: only thread-order float differences
OVERLOAD_MARGIN = 0.1  # share of the SLA an overload probe must leave free to count as holding with margin


@dataclass(frozen=True)
class Tier:
    """A QoS tier's priority level and its p99 SLA (None: no SLA, batch traffic)."""

    priority: int
    p99_ms: Optional[float]


@dataclass(frozen=True)
class Sla:
    """The SLAs a model's load test is held to, and the in-process capacity estimate the open-loop search
    steps around (not an SLA, but it travels with them from the same tuning)."""

    p99_ms: Optional[float]  # the default (tightest tier's) p99 SLA; None: nothing to check
    source: str  # "given" (--sla-ms), the tuning.json path it came from, or "none"
    tiers: Mapping[str, Tier] = field(default_factory=dict)  # QoS tiers by name, highest priority first
    estimate: Optional[float] = None  # in-process capacity estimate, samples/s

    def tier_dicts(self) -> Dict[str, Dict]:
        """``{name: {"priority", "p99_ms"}}``: the tiers as the probes and the summary take them."""
        return {n: {"priority": t.priority, "p99_ms": t.p99_ms} for n, t in self.tiers.items()}

    def to_dict(self) -> Dict:
        return {"p99_ms": self.p99_ms, "source": self.source, "tiers": self.tier_dicts()}


def reference(model_dir: Path) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray], float]:
    """Stored inputs, the variant's answers at the batch size serve_check sends, and the tolerance the run
    measured (how much the same file's answers move between batch sizes)."""
    ref = np.load(Path(model_dir) / "reference.npz")
    inputs = {k[3:]: ref[k] for k in ref.files if k.startswith("in.")}
    outputs = {k[4:]: ref[k] for k in ref.files if k.startswith("out.")}
    return inputs, outputs, float(ref["tolerance"]) if "tolerance" in ref.files else TOLERANCE


def from_tuning(tuning: Mapping, source: str, sla_p99_ms: Optional[float] = None) -> Sla:
    """The ``Sla`` of a tuning record (tuning.json's ``tuning``): ``sla_p99_ms`` (``source: given``) overrides
    its ``sla_p99_ms``; with QoS tiers, each tier's p99 (tiers without one are not checked)."""
    tiers = {t["name"]: Tier(t["level"], t["p99_ms"]) for t in tuning.get("tiers") or []}
    estimate = tuning.get("throughput")
    if sla_p99_ms is None and ("sla_p99_ms" not in tuning or tuning.get("sla_set") is False):
        return Sla(None, "none", tiers if "sla_p99_ms" in tuning else {}, estimate)  # no SLA set: nothing to hold
    return Sla(sla_p99_ms if sla_p99_ms is not None else tuning["sla_p99_ms"],
               "given" if sla_p99_ms is not None else source, tiers, estimate)


def read_sla(model_dir: Path, sla_p99_ms: Optional[float] = None) -> Sla:
    """The SLAs in ``<model_dir>/tuning.json`` (``from_tuning``); none when there is no tuning.json."""
    path = Path(model_dir) / "tuning.json"
    tuning = json.loads(path.read_text()).get("tuning", {}) if path.exists() else {}
    return from_tuning(tuning, f"{path}", sla_p99_ms)
