"""Child-run helpers of ``tracking.py`` (mlflow imported inside functions): metrics and params in one batch, times,
and a search's trials (``recipe=auto``): a finalist's own options, one run per other trial with its screening
figures."""

import time
from typing import Dict, Optional

from optimizer.record.tracking_owner import owner_tags
from optimizer.record.tracking_values import trial_metrics, trial_params


def log_batch(client, run_id: str, metrics: Optional[Dict[str, float]] = None, series=(),
              params: Optional[Dict[str, str]] = None) -> None:
    """Metrics (step 0), ``series`` (``(key, value, step)``) and params of a run in one call."""
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    ms = [Metric(k, v, now, 0) for k, v in (metrics or {}).items()] + [Metric(k, v, now, s) for k, v, s in series]
    client.log_batch(run_id, metrics=ms, params=[Param(k, v) for k, v in (params or {}).items()])


def epoch_ms(iso: Optional[str] = None) -> int:
    """Milliseconds since the epoch of an ISO time (``summary["started"]``), or of now."""
    from datetime import datetime

    return int((datetime.fromisoformat(iso).timestamp() if iso else time.time()) * 1000)


def trial_steps(cfg, trial: Dict) -> Dict:
    """The steps a search trial ran: the recipe's passes with the trial's options."""
    from dataclasses import replace

    from optimizer.recipe.plan import plan
    from optimizer.recipe.space import apply

    return {s.label: s for s in plan(replace(cfg, passes=apply(cfg.passes, trial["params"])))}


def log_trial(client, exp_id: str, parent_id: str, trial: Dict, summary: Dict) -> str:
    """A search trial that was not a finalist: a child run with its options, tags and screening figures."""
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    tags = {MLFLOW_PARENT_RUN_ID: parent_id, "recipe": summary["recipe"], "variant": f"trial{trial['trial']}",
            "chain": ">".join(trial["chain"]), "status": trial["status"], "finalist": "false", **owner_tags()}
    if trial.get("error"):
        tags["error"] = str(trial["error"])[:5000]
    run_id = client.create_run(exp_id, run_name=f"{summary['recipe']}/trial{trial['trial']}", tags=tags,
                               start_time=epoch_ms(summary.get("started"))).info.run_id
    log_batch(client, run_id, trial_metrics(trial), params=trial_params(trial))
    client.set_terminated(run_id, "FINISHED" if trial["status"] == "ok" else "FAILED", end_time=epoch_ms())
    return run_id
