"""Typed schema of a recipe. Hydra composes ``recipes/config.yaml`` against these dataclasses,
so a misspelled top-level key fails at composition. Each pass's own parameters are checked
against that pass's config dataclass by ``pipeline.plan``. No logic lives here."""

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Dict, List, Optional


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


class Objective(str, Enum):
    throughput = "throughput"  # highest samples/s at the largest benchmarked batch size
    p99 = "p99"  # lowest p99 latency at batch size 1
    cost = "cost"  # lowest $ per million inferences


@dataclass
class ModelConfig:
    source: str = "builtin"  # "builtin", a factory "pkg.mod:fn", a .onnx file or a torch.export .pt2 file
    name: str = "digits_resnet"  # name used in reports and for the emitted Triton model
    kwargs: Dict[str, Any] = field(default_factory=dict)  # keyword arguments passed to a factory
    train_epochs: int = 12  # epochs used to train the built-in model (once, then cached)


@dataclass
class DataConfig:
    source: str = "digits"  # "digits" (bundled with scikit-learn) or a factory "pkg.mod:fn" returning Splits
    evaluation_fraction: float = 0.25  # share of the digits data held out for evaluation
    calibration_size: int = 256  # samples of the digits data held out for calibration
    kwargs: Dict[str, Any] = field(default_factory=dict)  # keyword arguments passed to a data factory


@dataclass
class HardwareConfig:
    name: str = "local-cpu"  # label in reports and cost tables
    device: Device = Device.cpu  # where variants are evaluated and benchmarked
    cores: int = 2  # physical cores available to one model server
    intra_op_threads: int = 0  # threads per inference session; 0 means all cores
    price_per_hour: Optional[float] = None  # on-demand $/hour of the machine; null disables cost figures
    price_source: str = ""  # where the price comes from
    price_date: str = ""  # when the price was read
    gpu: Optional[str] = None  # GPU model, null for CPU-only machines


@dataclass
class EvaluationConfig:
    batch_size: int = 64  # batch size used to run the evaluation split
    max_samples: int = 0  # evaluate on at most this many samples; 0 means the whole split


@dataclass
class BenchmarkConfig:
    batch_sizes: List[int] = field(default_factory=lambda: [1, 8, 32])  # batch sizes timed per variant
    pause_seconds: float = 0.3  # idle pause before each timed block so previous thread pools wind down
    warmup_seconds: float = 0.2  # untimed calls before each timed block
    min_repeats: int = 100  # timed calls at least (p99 needs a hundred to mean anything)
    max_seconds: float = 2.0  # time budget per batch size
    target_cv: float = 0.05  # stop early once the running median is this stable
    reuse: bool = True  # reuse measurements of the same artifact, settings and host from the cache


@dataclass
class ConstraintsConfig:
    max_accuracy_drop: Optional[float] = 1.0  # accuracy points a variant may lose vs the reference
    max_p99_ms: Optional[float] = None  # p99 latency at batch size 1, in milliseconds
    max_cost_per_million: Optional[float] = None  # $ per million inferences (needs a hardware price)


@dataclass
class OptimizerConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    description: str = ""  # one line on what the recipe is for
    passes: Dict[str, Any] = field(default_factory=dict)  # ordered: step label -> {type, ...params}
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    constraints: ConstraintsConfig = field(default_factory=ConstraintsConfig)
    objective: Objective = Objective.throughput  # how the emitted variant is chosen among those that pass
    cache_dir: str = "${oc.env:OPTIMIZER_CACHE_DIR,'~/.cache/optimizer'}"  # shared by all runs
    seed: int = 0  # seeds training, sampling and calibration draws


def register_schema() -> None:
    """Register the schema with Hydra's ConfigStore as ``optimizer_schema``."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="optimizer_schema", node=OptimizerConfig)
