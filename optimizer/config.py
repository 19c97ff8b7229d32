"""Typed schema of a recipe. Hydra composes ``recipes/config.yaml`` against these dataclasses,
so a misspelled top-level key fails at composition. Each pass's own parameters are checked
against that pass's config dataclass by ``recipe.plan``; value ranges are checked there too
(``recipe.plan.check_settings``). Only the schema's registration with Hydra lives here."""

from dataclasses import dataclass, field
from enum import Enum, EnumMeta
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
    source: str = "builtin"  # "builtin", "builtin:vit_digits", a factory "pkg.mod:fn", "hf:<directory>", a .onnx or .pt2 file
    name: str = ""  # name in reports and of the emitted Triton model; "" names it after the source (factory function, directory, file)
    kwargs: Dict[str, Any] = field(default_factory=dict)  # keyword arguments passed to a factory
    train_epochs: int = 12  # epochs used to train a built-in model (once, then cached)
    task: str = "auto"  # hf: head to load: auto, sequence_classification, image_classification, feature_extraction, causal_lm
    component: str = "auto"  # hf encoder–decoder (T5, Whisper): the piece to export: auto (= encoder), encoder, decoder_step
    allow_factories: List[str] = field(default_factory=list)  # when given, every factory must match one ("mypkg.*")
    deny_factories: List[str] = field(default_factory=list)  # factories refused on top of the standard library
    trust_pickle: bool = False  # allow a .pt2 source, which torch.export.load unpickles (can run code)
    constants: Dict[str, Any] = field(default_factory=dict)  # ONNX inputs fed unchanged ({sr: 16000}): folded into the graph
    batch_axis: Dict[str, Any] = field(default_factory=dict)  # ONNX inputs/outputs whose batch is not axis 0 ({state: 1}; null: none)
    state: Dict[str, str] = field(default_factory=dict)  # ONNX state pairs {input: output} carried from call to call


@dataclass
class DataConfig:
    source: str = "digits"  # "digits" (bundled), "text:<file.jsonl|.csv>" (tokenized), or a factory "pkg.mod:fn" returning Splits
    evaluation_fraction: float = 0.25  # share of the digits data held out for evaluation
    calibration_size: int = 256  # samples of the digits data held out for calibration
    kwargs: Dict[str, Any] = field(default_factory=dict)  # keyword arguments passed to a data factory
    text_column: str = "text"  # text: the column holding the text
    label_column: str = "label"  # text: the column holding labels; absent from the file means no labels
    max_length: int = 128  # text: tokens per sample (padded and truncated to it)


class ExecutionMode(str, Enum):
    sequential = "sequential"  # one node at a time, each using the intra-op threads (Triton's execution_mode 0)
    parallel = "parallel"  # independent nodes at once on inter-op threads (Triton's execution_mode 1)


class GraphLevel(str, Enum):  # Triton's optimization.graph.level: 2, -1, 1, unset
    disabled = "disabled"
    basic = "basic"
    extended = "extended"
    all = "all"


@dataclass
class HardwareConfig:
    name: str = "local-cpu"  # label in reports and cost tables
    device: Device = Device.cpu  # where variants are evaluated and benchmarked
    cores: int = 2  # physical cores available to one model server
    intra_op_threads: int = 0  # threads per inference session; 0 means all cores
    execution_mode: ExecutionMode = ExecutionMode.sequential  # ONNX Runtime: run the graph's nodes one by one or in parallel
    inter_op_threads: int = 1  # ONNX Runtime, parallel execution mode: threads running independent nodes at once
    graph_optimization_level: GraphLevel = GraphLevel.all  # ONNX Runtime's graph optimizations when a session opens
    price_per_hour: Optional[float] = None  # on-demand $/hour of the machine; null disables cost figures
    price_source: str = ""  # where the price comes from
    price_date: str = ""  # when the price was read
    gpu: Optional[str] = None  # GPU model, null for CPU-only machines
    onnx_provider: str = "cuda"  # ONNX Runtime on a GPU: cuda (CUDA EP) or tensorrt (TensorRT EP, CUDA EP for the rest)


@dataclass
class EvaluationConfig:
    batch_size: int = 64  # batch size used to run the evaluation split
    max_samples: int = 0  # evaluate on at most this many samples; 0 means the whole split
    task: str = "auto"  # classification (accuracy), embedding (no labels), next_token (causal LMs, decoder steps), hidden_states (encoder–decoder encoders: cosine), "pkg.mod:fn", or auto
    output: str = ""  # the output the task reads; "" means the model's first output


@dataclass
class BenchmarkConfig:
    batch_sizes: List[int] = field(default_factory=lambda: [1, 8, 32])  # batch sizes timed per variant (plan sorts them)
    pause_seconds: float = 0.3  # idle pause before each timed block so previous thread pools wind down
    warmup_seconds: float = 0.2  # untimed calls before each timed block
    min_repeats: int = 100  # timed calls at least per variant and batch size, over all rounds
    max_seconds: float = 2.0  # timed seconds per variant and batch size, divided over the rounds
    target_cv: float = 0.05  # Triton tuning sweep: stop early once the running median is this stable
    rounds: int = 5  # interleaved rounds per batch size (A B C, then C B A, ...); intervals come from them
    fresh_workers: bool = True  # each round in new worker processes: a process's luck (memory layout) then varies over rounds
    max_cv: float = 0.5  # a pooled latency CV above this flags the measurement unstable (shown, never reused)
    max_foreign_cores: float = 0.5  # other processes' average CPU use while timing above this flags the set contended; 0: off
    memory_budget_mb: float = 0  # memory the worker processes may use at once; 0: 80 % of MemAvailable
    reuse: bool = True  # reuse the whole measurement set of the same variants, settings and host
    profile_batch_size: int = 8  # batch at which each variant's time breakdown is profiled, after its timing; 0: off


@dataclass
class ConstraintsConfig:
    max_accuracy_drop: Optional[float] = 1.0  # points of the task's headline metric a variant may lose vs the reference
    min_cosine: Optional[float] = 0.99  # lowest mean cosine of a variant's outputs to the reference's (labels or not)
    max_abs_diff: Optional[float] = None  # largest |output - reference output| a variant may show; null: not gated
    max_relative_error: Optional[float] = 0.2  # relative L2 error of any output (or any slice of its 2nd axis)
    max_p99_ms: Optional[float] = None  # p99 latency at batch size 1, in milliseconds
    max_cost_per_million: Optional[float] = None  # $ per million inferences (needs a hardware price)


class GateVariants(str, Enum):
    chosen = "chosen"  # this run's chosen variant against the baseline's chosen variant
    all = "all"  # every variant both runs have, by name


@dataclass
class GatesConfig:
    baseline: str = ""  # an earlier run's summary.json to compare with; "" = no regression gates
    variants: GateVariants = GateVariants.chosen  # which variants are compared with the baseline
    max_throughput_drop: Optional[float] = 10.0  # % of the baseline's throughput (speed-up on another host) a run may lose
    max_p99_increase: Optional[float] = 25.0  # % the p99 latency (relative to the reference on another host) may grow
    max_score_drop: Optional[float] = 0.5  # points of the headline metric (accuracy, ...) a run may lose vs the baseline
    max_cosine_drop: Optional[float] = 0.001  # how far the mean cosine to the reference may fall vs the baseline
    max_size_increase: Optional[float] = 5.0  # % the model file may grow
    ratios: bool = False  # compare speed through ratios to each run's own reference on this host too (shared CI runners)


@dataclass
class TrackingConfig:
    enabled: bool = True  # false: nothing is logged to MLflow (plots and summary.json are still written)
    uri: str = "${oc.env:MLFLOW_TRACKING_URI,''}"  # "" = sqlite:///<cache_dir>/mlruns.db (offline)
    experiment: str = "optimizer"  # MLflow experiment that every recipe run (and every sweep job) lands in
    log_models: bool = True  # upload each variant's model file as an artifact of its child run
    register: bool = False  # register the chosen variant as a new version of registered_model
    registered_model: str = ""  # registered model name; "" means model.name
    timeout_seconds: float = 5.0  # how long the reachability check waits for a tracking server


@dataclass
class TierConfig:
    name: str = "standard"  # QoS class, e.g. premium, standard, batch
    p99_ms: Optional[float] = None  # this class's p99 SLA in milliseconds; null: no SLA (batch traffic)


@dataclass
class QuotaConfig:
    cpu: Optional[float] = None  # cores the tenant's pods may request in all; null: from its share of the peak replicas
    memory_mb: Optional[float] = None  # MiB the tenant's pods may request in all; null: from its share
    pods: Optional[int] = None  # pods at most; null: its share of the peak replicas (at least one) plus a rollout's surge pod


@dataclass
class TenantConfig:
    name: str = ""  # a DNS label (lowercase letters, digits, '-'): the tenant's namespace with kubernetes.namespaces=per_tenant
    tier: str = ""  # one of serving.tiers (premium, standard, batch when the recipe has none)
    share: float = 0.0  # the tenant's share of the requests; the shares sum to 1
    quota: Optional[QuotaConfig] = None  # the tenant's ResourceQuota; null: sized from its share of the peak replicas


@dataclass
class TrafficConfig:
    profile: str = "none"  # [none|constant|diurnal|csv] the day's request rate that sizes the autoscaled schedule
    rate: Optional[float] = None  # constant: requests/s all day
    peak: Optional[float] = None  # diurnal: requests/s at peak_hour
    trough: Optional[float] = None  # diurnal: requests/s 12 hours from peak_hour (a raised cosine between them)
    peak_hour: float = 14.0  # diurnal: hour of the day of the peak, in [0, 24)
    csv: str = ""  # csv: a file of rows "time,requests_per_s" (time: seconds since midnight or HH:MM; header optional)
    step_minutes: float = 60.0  # the schedule's grid in minutes, dividing 1440 (the autoscaler is simulated every 15 s)


@dataclass
class ServingConfig:
    p99_ms: Optional[float] = None  # SLA: p99 of one request through the batcher, ms; null: no SLA gate, tuned for throughput
    target_qps: Optional[float] = None  # expected requests/s at peak; sizes the replica recommendation
    max_batch_cap: int = 64  # largest batch the tuning sweep tries (1, 2, 4, ... up to this)
    utilization: float = 0.7  # target utilisation of each replica when sizing replicas
    burst_factor: float = 2.0  # max replicas cover this multiple of target_qps
    queue_delay_cap_us: int = 2000  # upper bound on the tuned max_queue_delay_microseconds
    overhead_ms: float = 0.5  # per-execution server overhead (request handling, copies) that batching amortizes
    thread_options: List[int] = field(default_factory=lambda: [0, 1])  # intra-op threads per instance; 0 = all cores
    queue_policy: bool = True  # bound the batcher's queue (max_queue_size from capacity × SLA budget); false: unbounded
    queue_timeout: bool = True  # reject a request once it has waited longer than the SLA leaves it (REJECT)
    tiers: List[TierConfig] = field(default_factory=list)  # QoS tiers, highest priority first (priority level 1)
    default_tier: str = ""  # tier of requests that name no priority; "" = the last tier with an SLA
    tenants: List[TenantConfig] = field(default_factory=list)  # who sends the traffic: namespaces, quotas, chargeback
    traffic: TrafficConfig = field(default_factory=TrafficConfig)  # a day's profile: autoscaled replicas, saving


@dataclass
class TritonConfig:
    emit: bool = True  # write a Triton model_repository for the chosen variant
    repository: str = ""  # where to write it; empty means <run dir>/model_repository
    overwrite: bool = False  # replace a repository that holds another model
    smoke_test: bool = False  # serve the emitted repository on a real tritonserver and compare answers
    onnx_tensorrt: bool = False  # GPU hardware: serve an ONNX variant through the onnxruntime backend's TensorRT accelerator
    smoke_concurrency: List[int] = field(default_factory=lambda: [1, 2, 4, 8])  # load-test concurrency levels
    smoke_requests: int = 2000  # requests per concurrency level at most (a p99's interval needs 368 to be bounded above)
    smoke_seconds: float = 10.0  # seconds per concurrency level at most
    capacity_test: bool = True  # with smoke_test: find the highest open-loop rate served within the SLA (sizes replicas)
    capacity_seconds: float = 2.0  # seconds per open-loop rate step at most
    overload_check: bool = True  # with the capacity test: probe at overload_factor × capacity; shorten the queue policy if its p99 misses
    overload_factor: float = 1.5  # offered rate of the overload check ÷ the measured capacity
    overload_seconds: float = 8.0  # seconds of traffic per overload probe (an unbounded batch tier grows all along)
    response_cache: bool = False  # response_cache { enable: true }: only for deterministic models; the server needs --cache-config
    response_cache_mb: int = 256  # size of the server's local response cache (--cache-config local,size=...)
    kubernetes: bool = True  # write Deployment, Service, autoscaler (kubernetes.autoscaler) and PodMonitor manifests beside the repository
    image: str = "nvcr.io/nvidia/tritonserver:24.10-py3"  # the tritonserver image the Deployment runs (24.10 = Triton 2.51)
    model_store: str = "/models"  # --model-repository in the pod: a mounted path (PVC) or s3:// gs:// as:// URL
    repository_image: str = ""  # an image holding the repository at /models (kubernetes/Dockerfile.repository builds it): copied by an init container; empty: a PersistentVolumeClaim


class _NameOrValue(EnumMeta):
    """OmegaConf reads a string override as a member *name*; also take the value (``hpa-custom`` is no name)."""

    def __getitem__(cls, name):
        try:
            return super().__getitem__(name)
        except KeyError:
            for member in cls:
                if member.value == name:
                    return member
            raise


class Autoscaler(str, Enum, metaclass=_NameOrValue):
    keda = "keda"  # a KEDA ScaledObject on Triton's pending requests per replica (Prometheus trigger)
    hpa_custom = "hpa-custom"  # an autoscaling/v2 HPA on a Pods metric exposed by the Prometheus Adapter
    cpu = "cpu"  # an autoscaling/v2 HPA on average CPU utilisation (no Prometheus needed; the weakest signal)


class Namespaces(str, Enum):
    per_tenant = "per_tenant"  # a namespace per serving.tenants entry, each with its ResourceQuota and LimitRange
    shared = "shared"  # one namespace for every tenant; quotas per tier through PriorityClass scopes


@dataclass
class KubernetesConfig:
    autoscaler: Autoscaler = Autoscaler.keda  # what the emitted manifests scale replicas on
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"  # keda: the Prometheus server its trigger queries
    namespaces: Namespaces = Namespaces.per_tenant  # with serving.tenants: where each tenant's objects live


class Sampler(str, Enum):
    grid = "grid"  # every combination, in order, up to max_trials
    random = "random"  # combinations drawn at random (seeded), without repeats
    tpe = "tpe"  # Optuna's TPE: later trials drawn where earlier ones did well


@dataclass
class SearchConfig:
    space: Dict[str, Any] = field(default_factory=dict)  # passes.<label>[.<field>] -> list of values to try; empty: no search
    sampler: Sampler = Sampler.grid  # how trials are drawn from the space (Optuna's samplers)
    max_trials: int = 20  # trials at most (the recipe's own chain is trial 0)
    max_minutes: float = 15.0  # no new trial starts after this many minutes
    finalists: int = 6  # trials on the screening Pareto front (best first) measured together with the reference
    target_speedup: Optional[float] = None  # stop early once a trial within the constraints reaches this screening speed-up
    incumbents: List[Dict[str, Any]] = field(default_factory=list)  # trials run first and always finalists (hand recipes: {prune: null})


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
    gates: GatesConfig = field(default_factory=GatesConfig)  # regression gates against an earlier run
    serving: ServingConfig = field(default_factory=ServingConfig)
    triton: TritonConfig = field(default_factory=TritonConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    kubernetes: KubernetesConfig = field(default_factory=KubernetesConfig)  # manifests beside the repository
    search: SearchConfig = field(default_factory=SearchConfig)  # recipe=auto: trials over the passes' options
    objective: Objective = Objective.throughput  # how the emitted variant is chosen among those that pass
    cache_dir: str = "${oc.env:OPTIMIZER_CACHE_DIR,'~/.cache/optimizer'}"  # shared by all runs
    seed: int = 0  # seeds training, sampling and calibration draws


def register_schema() -> None:
    """Register the schema with Hydra's ConfigStore as ``optimizer_schema``."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="optimizer_schema", node=OptimizerConfig)
