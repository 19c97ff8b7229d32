"""The Triton target behind ``targets.TARGETS["triton"]``: ``deploy.preflight``/``deploy.deploy`` seen through
the seam (``enabled``, ``preflight``, ``deploy`` -> ``TargetRecord``)."""
from types import SimpleNamespace as NS

from optimizer.records import TargetRecord
from optimizer.triton import deploy as triton_deploy

preflight = triton_deploy.preflight  # (cfg, out_dir)


def enabled(cfg) -> bool:
    return bool(cfg.triton.emit)


def deploy(cfg, inputs) -> TargetRecord:
    d = triton_deploy.deploy(cfg, {"name": inputs.variant}, [NS(name=inputs.variant, artifact=inputs.artifact)],
                             NS(evaluation=inputs.evaluation), inputs.cache, inputs.out_dir,
                             {"recipe": inputs.recipe, "measurement_id": inputs.measurement_id})
    return TargetRecord("triton", d.get("emitted", False), d.get("gate"), d.get("failed"), d.get("model_repository"),
                        {k: v for k, v in d.items() if k not in ("emitted", "gate", "failed")})
