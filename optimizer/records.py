"""Frozen records for what flows after measurement. They become JSON only at the edge (summary.json,
MLflow, reports), through ``to_dict``."""

import copy
from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Mapping, Optional, Tuple


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


def _copy(value: Any) -> Any:
    """A JSON-ready value given out by ``to_dict``: a fresh copy, so no caller can change a record through it."""
    return copy.deepcopy(value)


@dataclass(frozen=True)
class VariantRecord:
    """Everything known about one variant after measurement and the decision.

    The artifact's facts are set when the variant has a model (``artifact_id`` is not None), the measured
    figures when it was measured (``evaluation`` is not None). Figures keyed by batch size (``benchmark``,
    ``speedup``, ``speedup_interval``, ``verdict``, ``unstable``) keep the batch size as text, as measured
    and as summary.json has them; ``sizes()`` gives them as ints. ``cost``, ``violations`` and ``pareto``
    are set by the decision (None before it)."""

    name: str
    chain: Tuple[str, ...]
    status: str  # ok | failed | skipped
    ran: bool
    seconds: float
    error: Optional[str] = None
    artifact_id: Optional[str] = None
    parent_id: Optional[str] = None
    format: Optional[str] = None
    path: Optional[str] = None
    precision: Optional[str] = None
    size_bytes: Optional[int] = None
    deployable: Optional[bool] = None
    meta: Mapping[str, Any] = field(default_factory=dict)
    evaluation: Optional[Mapping[str, Any]] = None
    benchmark: Optional[Mapping[str, Mapping[str, Any]]] = None
    measurements_reused: Optional[bool] = None
    speedup: Optional[Mapping[str, float]] = None
    speedup_interval: Optional[Mapping[str, Any]] = None
    verdict: Optional[Mapping[str, str]] = None
    unstable: Optional[Tuple[str, ...]] = None
    extras: Mapping[str, Any] = field(default_factory=dict)  # group, peak_memory_mb, gpu_memory_mb when measured
    cost: Optional[Mapping[str, float]] = None
    violations: Optional[Tuple[str, ...]] = None
    pareto: Optional[bool] = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "VariantRecord":
        """A variant as summary.json has it (``to_dict``'s inverse); keys it does not name go to ``extras``."""
        known = {f.name for f in fields(cls)} - {"extras"}
        args = {k: v for k, v in d.items() if k in known}
        for key in ("chain", "unstable", "violations"):
            if args.get(key) is not None:
                args[key] = tuple(args[key])
        args.setdefault("chain", ())
        args.setdefault("ran", False)
        args.setdefault("seconds", 0.0)
        return cls(**args, extras={k: v for k, v in d.items() if k not in known})

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def sizes(self) -> List[int]:
        """The batch sizes this variant was timed at, ascending."""
        return sorted(int(b) for b in self.benchmark or {})

    def at(self, bs: int) -> Mapping[str, Any]:
        """The benchmark figures at batch size ``bs``."""
        return (self.benchmark or {})[str(bs)]

    def to_dict(self) -> Dict[str, Any]:
        """The variant as summary.json has it (keys in the order they always had)."""
        out: Dict[str, Any] = {"name": self.name, "chain": list(self.chain), "status": self.status, "ran": self.ran,
                               "seconds": self.seconds}
        if self.error:
            out["error"] = self.error
        if self.artifact_id is not None:
            out.update(artifact_id=self.artifact_id, parent_id=self.parent_id, format=self.format, path=self.path,
                       precision=self.precision, size_bytes=self.size_bytes, deployable=self.deployable,
                       meta=_copy(dict(self.meta)))
        if self.evaluation is not None:
            out.update(evaluation=_copy(dict(self.evaluation)), benchmark=_copy(dict(self.benchmark or {})),
                       measurements_reused=self.measurements_reused)
        for key in ("speedup", "speedup_interval", "verdict"):
            if getattr(self, key) is not None:
                out[key] = _copy(dict(getattr(self, key)))
        if self.unstable is not None:
            out["unstable"] = list(self.unstable)
        out.update(_copy(dict(self.extras)))
        if self.cost is not None:
            out["cost"] = dict(self.cost)
        if self.violations is not None:
            out["violations"] = list(self.violations)
        if self.pareto is not None:
            out["pareto"] = self.pareto
        return out


@dataclass(frozen=True)
class MeasuredSet:
    """The measurement set of a run: each variant's figures by name, and the session that timed them."""

    variants: Mapping[str, Mapping[str, Any]]
    session: Mapping[str, Any]

    @classmethod
    def of(cls, measured) -> "MeasuredSet":
        """From what ``measure.run.measure`` returns (``.variants``, ``.session``)."""
        return cls(dict(measured.variants), dict(measured.session))

    @property
    def id(self) -> Optional[str]:
        return self.session.get("id")

    @property
    def reused(self) -> bool:
        return bool(self.session.get("reused"))


_LATE = ("search", "regression", "story", "summary_path", "plots", "reports", "tracking", "finished")  # set as the run's edge is written


@dataclass(frozen=True)
class RunSummary:
    """The run's record: what summary.json, the reports, the plots and MLflow are made from (``to_dict``).

    ``targets``: every deployment target's record by its ``TARGETS`` name (None: it did not run). A run that
    ended in an error sets ``error`` and holds only what was known by then. Sections already in their JSON
    form (``model``, ``data``, ``hardware``, ``measurement``, ``provenance``...) are kept as mappings."""

    recipe: str
    description: Optional[str]
    status: str  # passed | gate_failed | failed | error | interrupted
    exit_code: int
    model: Mapping[str, Any]
    data: Mapping[str, Any]
    output_dir: str
    versions: Mapping[str, Any]
    provenance: Mapping[str, Any]  # schema version, start time, overrides, git revision
    chosen: Optional[str] = None
    error: Optional[str] = None
    objective: Optional[str] = None
    task: Optional[str] = None
    constraints: Mapping[str, Any] = field(default_factory=dict)
    targets: Mapping[str, Optional[TargetRecord]] = field(default_factory=dict)
    failed_steps: Tuple[str, ...] = ()
    passes_run: int = 0
    passes_cached: int = 0
    warnings: Tuple[str, ...] = ()
    hardware: Mapping[str, Any] = field(default_factory=dict)
    benchmark_batch_sizes: Tuple[int, ...] = ()
    measurement: Mapping[str, Any] = field(default_factory=dict)
    variants: Tuple[VariantRecord, ...] = ()
    cache_dir: Optional[str] = None
    regression: Optional[Mapping[str, Any]] = None
    search: Optional[Mapping[str, Any]] = None  # recipe=auto: the space, every trial and its screening figures
    story: Optional[Mapping[str, Any]] = None  # verdict, cumulative dashboard, where the time goes (record.story)
    summary_path: Optional[str] = None
    plots: Optional[List[str]] = None
    reports: Optional[Mapping[str, str]] = None
    tracking: Optional[Mapping[str, Any]] = None
    finished: Optional[str] = None

    @property
    def records(self) -> List[TargetRecord]:
        """The records of the targets that ran."""
        return [r for r in self.targets.values() if r is not None]

    def gate_failures(self) -> Dict[str, List[str]]:
        """Why each variant was refused, each target's gate, and the regression gates that failed."""
        out = {v.name: list(v.violations) for v in self.variants if v.violations}
        out.update({name: [r.gate] for name, r in self.targets.items() if r is not None and r.gate})
        failed = [g["message"] for g in (self.regression or {}).get("gates", []) if not g["passed"]]
        if failed:
            out["regression"] = failed
        return out

    def to_dict(self) -> Dict[str, Any]:
        """summary.json's content (before paths are made relative): the keys and values it always had."""
        head = {"recipe": self.recipe, "description": self.description, "status": self.status,
                "exit_code": self.exit_code}
        if self.error is not None:
            out = {**head, "error": self.error, "chosen": self.chosen, "model": _copy(dict(self.model)),
                   "data": _copy(dict(self.data)), "variants": [v.to_dict() for v in self.variants],
                   "output_dir": self.output_dir, "versions": dict(self.versions), **_copy(dict(self.provenance))}
            if self.failed_steps:
                out["failed_steps"] = list(self.failed_steps)
        else:
            location = next((r.location for r in self.records if r.location), None)
            out = {**head, "chosen": self.chosen, "objective": self.objective, "task": self.task,
                   "constraints": dict(self.constraints), "gate_failures": self.gate_failures(),
                   "model_repository": location,
                   **{name: (r.to_dict() if r is not None else {}) for name, r in self.targets.items()},
                   "failed_steps": list(self.failed_steps), "passes_run": self.passes_run,
                   "passes_cached": self.passes_cached, "warnings": list(self.warnings),
                   "model": _copy(dict(self.model)), "data": _copy(dict(self.data)),
                   "hardware": _copy(dict(self.hardware)), "benchmark_batch_sizes": list(self.benchmark_batch_sizes),
                   "measurement": _copy(dict(self.measurement)), "variants": [v.to_dict() for v in self.variants],
                   "output_dir": self.output_dir, "cache_dir": self.cache_dir, "versions": dict(self.versions),
                   **_copy(dict(self.provenance))}
        for key in _LATE:
            if getattr(self, key) is not None:
                out[key] = _copy(getattr(self, key))
        return out
