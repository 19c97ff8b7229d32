"""Plan a recipe: every step's pass, its typed config and the formats along the chain, checked before
any model is loaded; mistakes raise RecipeError naming ``passes.<step>.<key>``."""

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, List, Mapping, Optional

from optimizer import gpu
from optimizer.recipe.traffic import check as check_traffic
from optimizer.errors import RecipeError
from optimizer.recipe.settings import check_finite, check_ranges, check_registered_name
from optimizer.registry import PassSpec, load_passes
from optimizer.sources.data import check_text
from optimizer.sources.models import source_format


@dataclass(frozen=True)
class Step:
    label: str  # the recipe's key for this step
    spec: PassSpec
    config: Any  # instance of spec.config_cls
    skip: Optional[str] = None  # why the step has nothing to do (an export of a source that already is ONNX)


def typed(cls: type, params: Mapping, where: str) -> Any:
    """``params`` merged into ``cls``'s schema; every mistake names ``where.<key>``."""
    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigKeyError, ValidationError

    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(cls), dict(params)))
    except ConfigKeyError as e:
        keys = ", ".join(f.name for f in fields(cls))
        raise RecipeError(f"{where}.{e.key}: unknown key (valid keys: {keys})") from None
    except ValidationError as e:
        raise RecipeError(f"{where}.{e.key}: {str(e).splitlines()[0]}") from None
    except ValueError as e:  # the dataclass's own __post_init__ checks
        raise RecipeError(f"{where}: {e}") from None


def plan(cfg) -> List[Step]:
    """Validate the whole recipe without loading a model: pass types, parameters, formats."""
    from omegaconf import OmegaConf

    from optimizer.recipe.guards import check_recipe

    check_recipe(cfg)  # names that become paths, factories, pickled programs: before anything is imported
    check_settings(cfg)
    passes = load_passes()
    fmt = source_format(cfg.model.source)
    steps = []
    for label, entry in (cfg.passes or {}).items():
        where = f"passes.{label}"
        if entry is None:  # a step removed with an override such as passes.fuse=null
            continue
        entry = OmegaConf.to_container(entry, resolve=True) if OmegaConf.is_config(entry) else entry
        if not isinstance(entry, dict) or "type" not in entry:
            raise RecipeError(f"{where}: needs a 'type', one of: {', '.join(sorted(passes))}")
        spec = passes.get(entry["type"])
        if spec is None:
            raise RecipeError(f"{where}.type: unknown pass {entry['type']!r}; known: {', '.join(sorted(passes))}")
        config = typed(spec.config_cls, {k: v for k, v in entry.items() if k != "type"}, where)
        check_finite(config, where)
        if spec.prepare is not None:
            try:
                config = spec.prepare(config, cfg)
            except ValueError as e:
                raise RecipeError(f"{where}: {e}") from None
        if spec.takes != fmt and not steps and spec.name == "onnx_export" and fmt == spec.makes:
            steps.append(Step(str(label), spec, config, skip=f"model.source already gives {fmt}: nothing to export"))
            continue
        if spec.takes != fmt:
            before = f"the step before it makes {fmt}" if steps else f"model.source gives {fmt}"
            hint = f"remove it ({where}=null)" if not steps and spec.name == "onnx_export" else "reorder the passes"
            raise RecipeError(f"{where}: pass '{spec.name}' takes a {spec.takes} model but {before}; {hint}")
        fmt = spec.makes
        steps.append(Step(str(label), spec, config))
    if not steps and fmt == "torch":  # an ONNX source alone is still measured and emitted
        raise RecipeError("passes: the recipe has no steps and model.source gives a torch model, which has no "
                          "serving format: nothing would be emitted; add one (+passes.export.type=onnx_export)")
    return steps


def check_settings(cfg) -> None:
    """Numeric settings outside their domain, named by key."""
    check_finite(cfg)
    check_ranges(cfg)
    check_registered_name(cfg.tracking)
    bad = [b for b in cfg.benchmark.batch_sizes if int(b) <= 0]
    if bad or not cfg.benchmark.batch_sizes:
        raise RecipeError(f"benchmark.batch_sizes: every batch size must be a positive integer, got {list(cfg.benchmark.batch_sizes)}")
    # once, here: every later stage reads ints in ascending order, the last one the largest
    cfg.benchmark.batch_sizes = sorted({int(b) for b in cfg.benchmark.batch_sizes})
    b, e = cfg.benchmark, cfg.evaluation
    for key, value, ok, need in (
            ("benchmark.rounds", b.rounds, b.rounds >= 1, "at least 1"),
            ("benchmark.min_repeats", b.min_repeats, b.min_repeats >= 1, "at least 1"),
            ("benchmark.max_seconds", b.max_seconds, b.max_seconds > 0, "positive"),
            ("benchmark.max_cv", b.max_cv, b.max_cv > 0, "positive"),
            ("benchmark.target_cv", b.target_cv, b.target_cv > 0, "positive"),
            ("benchmark.pause_seconds", b.pause_seconds, b.pause_seconds >= 0, "≥ 0"),
            ("benchmark.warmup_seconds", b.warmup_seconds, b.warmup_seconds >= 0, "≥ 0"),
            ("benchmark.memory_budget_mb", b.memory_budget_mb, b.memory_budget_mb >= 0, "≥ 0 (0: 80 % of MemAvailable)"),
            ("benchmark.max_foreign_cores", b.max_foreign_cores, b.max_foreign_cores >= 0, "≥ 0 (0: not checked)"),
            ("benchmark.profile_batch_size", b.profile_batch_size, b.profile_batch_size >= 0, "≥ 0 (0: off)"),
            ("evaluation.batch_size", e.batch_size, e.batch_size > 0, "positive"),
            ("evaluation.max_samples", e.max_samples, e.max_samples >= 0, "≥ 0 (0: the whole split)"),
            ("model.train_epochs", cfg.model.train_epochs, cfg.model.train_epochs >= 1, "at least 1")):
        if not ok:
            raise RecipeError(f"{key} must be {need}, got {value}")
    from optimizer.recipe.tenants import check as check_tenants

    check_tenants(cfg.serving)  # shares, tiers, names, quotas of serving.tenants
    check_text(cfg.data, cfg.model)  # data.max_length within the hf: model's position embeddings
    check_cache_dir(cfg.cache_dir)
    check_traffic(cfg.serving.traffic)  # serving.traffic: its profile's rates, hours and CSV
    if cfg.hardware.cores <= 0 or cfg.hardware.intra_op_threads < 0:
        raise RecipeError("hardware.cores must be positive and hardware.intra_op_threads non-negative")


def check_cache_dir(cache_dir: str) -> None:
    """The cache directory exists or can be made, and can be written: a probe file is created and removed."""
    import os
    import tempfile

    root = Path(os.path.expanduser(str(cache_dir)))
    if root.exists() and not root.is_dir():
        raise RecipeError(f"cache_dir {str(root)!r} is a file, not a directory; point cache_dir (or "
                          f"OPTIMIZER_CACHE_DIR) at a directory")
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".probe-"):
            pass
    except OSError as e:
        raise RecipeError(f"cache_dir {str(root)!r} cannot be written ({e.strerror or e}); point cache_dir (or "
                          f"OPTIMIZER_CACHE_DIR) at a writable directory") from None


def check_environment(steps: List[Step], cfg) -> None:
    """What this machine must offer the recipe, checked before any work (RecipeError naming what is missing):
    each step's own ``requires`` (a GPU and TensorRT for the tensorrt pass), then a GPU for a cuda hardware
    entry. CPU recipes load no CUDA library here."""
    for step in steps:
        if step.spec.requires is not None:
            step.spec.requires(step.config, cfg, f"passes.{step.label}")
    if gpu.is_cuda(cfg.hardware):
        if not gpu.gpus():
            raise RecipeError(f"hardware entry {cfg.hardware.name!r} is for a GPU (hardware.device=cuda) but the CUDA "
                              f"driver sees no GPU on this machine; choose a CPU entry such as hardware=local_cpu")
    if cfg.hardware.onnx_provider not in ("cuda", "tensorrt"):
        raise RecipeError(f"hardware.onnx_provider: expected cuda or tensorrt, got {cfg.hardware.onnx_provider!r}")
