"""The Triton deployment target (``targets.TARGETS["triton"]``): tune the chosen variant on this machine, emit its
Triton model repository (and Kubernetes manifests), optionally smoke-test it on a real server.

``preflight`` checks the serving, cost and repository settings at plan time; ``deploy`` does the work
(``triton.deploy``) and returns the run's ``TargetRecord``, whose ``to_dict`` is summary.json's ``triton`` block."""

from dataclasses import asdict
from pathlib import Path

from optimizer.files import check_name, content_key
from optimizer.errors import RecipeError
from optimizer.records import TargetRecord
from optimizer.targets import DeployInputs


def enabled(cfg) -> bool:
    """Whether the recipe asks for a Triton repository (``triton.emit``)."""
    return bool(cfg.triton.emit)


def repository_dir(cfg, out_dir: Path) -> Path:
    """``triton.repository``, else ``<run directory>/model_repository``."""
    return Path(cfg.triton.repository).expanduser() if cfg.triton.repository else Path(out_dir) / "model_repository"


def plan_id(cfg) -> str:
    """What a repository's model is made from: the model, the data and the passes (not how it was measured).
    A re-run of the same recipe may replace its own emitted model; another recipe's is a conflict."""
    from omegaconf import OmegaConf

    passes = {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
              for k, v in (cfg.passes or {}).items()}
    return content_key(asdict(cfg.model), asdict(cfg.data), passes)[:16]


def preflight(cfg, out_dir: Path) -> None:
    """Serving, cost and repository settings checked before anything runs (RecipeError, exit 2); a shared
    ``triton.repository`` is then claimed for this run (``repository.reserve``), so that a run of another recipe
    started meanwhile is refused here too, not after its passes ran."""
    from optimizer.decide.cost import check
    from optimizer.triton import repository

    check(cfg)
    _check_serving(cfg.serving)
    if not cfg.triton.emit:
        return
    check_name(cfg.model.name, "model.name")
    repo = repository_dir(cfg, out_dir)
    blocker = next((p for p in [repo, *repo.parents] if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise RecipeError(f"triton.repository {str(repo)!r}: {str(blocker)!r} is a file, not a directory; "
                          f"choose a directory")
    repository.check_target(repo, cfg.model.name, Path("/nonexistent"), cfg.triton.overwrite, plan=plan_id(cfg))
    if cfg.triton.smoke_test:
        from optimizer.tritonserver.server import find_server

        find_server()  # raises a RecipeError saying how to provision one
    if cfg.triton.repository:  # a shared one (not the run's own): claimed until this process exits
        repository.reserve(repo, cfg.model.name, cfg.triton.overwrite, plan_id(cfg))


def _check_serving(s) -> None:
    """``serving``: a positive SLA, sane caps and thread options, and the QoS tiers."""
    if (s.p99_ms is not None and s.p99_ms <= 0) or s.overhead_ms < 0:
        raise RecipeError(f"serving.p99_ms must be positive and serving.overhead_ms ≥ 0, "
                          f"got {s.p99_ms} and {s.overhead_ms}")
    if s.max_batch_cap < 1 or s.queue_delay_cap_us < 0 or any(t < 0 for t in s.thread_options) or not s.thread_options:
        raise RecipeError("serving.max_batch_cap must be ≥ 1, serving.queue_delay_cap_us ≥ 0, "
                          "serving.thread_options a non-empty list of thread counts ≥ 0")
    _check_tiers(s)


def _check_tiers(s) -> None:
    """``serving.tiers``: name -> positive p99 ms or null; ``serving.default_tier`` one of them."""
    names = [t.name for t in s.tiers]
    for i, t in enumerate(s.tiers):
        if t.p99_ms is not None and t.p99_ms <= 0:
            raise RecipeError(f"serving.tiers[{i}] ({t.name}): p99_ms must be positive milliseconds or null (no SLA), "
                              f"got {t.p99_ms}")
    if len(set(names)) != len(names) or not all(names):
        raise RecipeError(f"serving.tiers: names must be non-empty and unique, got {names}")
    if s.default_tier and s.default_tier not in names:
        raise RecipeError(f"serving.default_tier {s.default_tier!r} is not one of serving.tiers "
                          f"({', '.join(names) or 'none defined'})")


def deploy(cfg, inputs: DeployInputs) -> TargetRecord:
    """Tune, emit and (optionally) smoke-test the chosen variant (``triton.deploy.run``).

    ``gate`` is set when the SLA cannot be met even at batch 1 (nothing is emitted then), or when the smoke
    test's p99 missed an SLA (the repository stays, the run exits 3); ``failed`` when the smoke test failed."""
    from optimizer.triton.deploy import run

    from optimizer.triton.repository import release

    repo = repository_dir(cfg, inputs.out_dir)
    try:
        info = run(cfg, inputs, repo, plan_id(cfg))
    finally:  # tuning.json now names this recipe; the claim from preflight is not needed any more
        if cfg.triton.repository:
            release(repo, cfg.model.name)
    details = {k: v for k, v in info.items() if k not in ("emitted", "gate", "failed")}
    return TargetRecord("triton", info["emitted"], info.get("gate"), info.get("failed"), info.get("model_repository"),
                        details)
