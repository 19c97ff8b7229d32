"""MLflow tracking: one parent run per recipe run, one child run per variant. The only module that
imports mlflow, and only inside functions, so ``import optimizer`` never loads it.

Tracking never fails a run: an unreachable server or any MLflow error becomes one console line
and ``summary["tracking"]["skipped"]``; ``summary.json`` is complete either way."""

import contextlib
import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

from optimizer.artifact import SIDECAR
from optimizer.record import chargeback
from optimizer.record.tracking_owner import end_orphans, owner_tags
from optimizer.record.tracking_runs import epoch_ms, log_batch
from optimizer.record.tracking_store import store_lock
from optimizer.record.tracking_values import (chosen_metrics, flatten, gate_tags, repository_files, run_params,
                                       variant_metrics, variant_params, variant_tags)

# Defaults for the MLflow HTTP client while we log: a server that dies mid-run costs seconds,
# not the minutes of MLflow's own retry schedule. Values the user exported win.
_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # we print one line, not one per run
}
_STATUS = {"ok": "FINISHED", "failed": "FAILED", "skipped": "KILLED"}


def resolve_uri(uri: str, cache_dir: str) -> str:
    """``uri``, or the default local store: a SQLite file in the shared cache directory."""
    if uri:
        return uri
    root = Path(os.path.expanduser(str(cache_dir))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlruns.db'}"


def _artifact_location(uri: str) -> Optional[str]:
    """For a SQLite store, artifacts go beside the database (MLflow would use ``./mlruns`` of the cwd)."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).resolve().parent / "mlartifacts").as_uri()
    return None


def unreachable(uri: str, timeout: float) -> Optional[str]:
    """Why the tracking server at ``uri`` cannot be used, or None. Only HTTP(S) servers are probed."""
    if not uri.startswith(("http://", "https://")):
        return None
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout).close()
    except urllib.error.HTTPError:
        return None  # it answered; authentication or routing problems surface with a clearer message later
    except (urllib.error.URLError, OSError, ValueError) as e:  # ValueError: a URI urllib cannot open
        reason = getattr(e, "reason", e)
        return f"MLflow server {uri} is unreachable ({reason})"
    return None


@contextlib.contextmanager
def _env(values: Dict[str, str]) -> Iterator[None]:
    added = [k for k in values if k not in os.environ]
    os.environ.update({k: values[k] for k in added})
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """MLflow's and alembic's INFO lines (a fresh store's table creation and migrations) stay out of the terminal."""
    import logging

    import mlflow  # noqa: F401  (importing it configures its logger at INFO: set the level after)

    loggers = [logging.getLogger(name) for name in ("mlflow", "alembic")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def log_run(cfg, summary: Dict, out_dir: Path) -> Dict:
    """Log the run to MLflow and return what goes into ``summary["tracking"]``; never raises."""
    from optimizer.console import console

    tc = cfg.tracking
    if not tc.enabled:
        return {"skipped": "tracking.enabled=false"}
    uri = resolve_uri(tc.uri, cfg.cache_dir)
    t0 = time.perf_counter()
    why = unreachable(uri, tc.timeout_seconds)
    if why is None:
        try:
            with _env(_ENV), _quiet(), store_lock(uri):
                record = _log(cfg, summary, Path(out_dir), uri)
            record["seconds"] = round(time.perf_counter() - t0, 2)
            where = record.get("ui") or (f"mlflow ui --backend-store-uri {uri}, then open "
                                         f"http://127.0.0.1:5000/#/experiments/{record['experiment_id']}/runs")
            console.print(f"tracking: run {record['parent_run_id']} in experiment '{tc.experiment}': {where}",
                          highlight=False, soft_wrap=True)
            return record
        except Exception as e:  # recorded in the summary and printed: tracking must not fail the run
            first = (str(e).strip().splitlines() or [""])[0]
            why = f"MLflow logging to {uri} failed: {type(e).__name__}: {first}"
    console.print(f"[yellow]tracking skipped:[/yellow] {why}; the run itself completed and summary.json is written",
                  highlight=False, soft_wrap=True)
    return {"skipped": why, "uri": uri, "experiment": tc.experiment, "seconds": round(time.perf_counter() - t0, 2)}


# ---------------------------------------------------------------- talking to MLflow

# MLflow 3's UI opens an experiment without this tag in its GenAI overview, where no runs show; with it, on
# the runs table (the tag's values are in MLflow's UI code: genai_development, custom_model_development)
KIND = {"mlflow.experimentKind": "custom_model_development"}


def _experiment(client, name: str, uri: str) -> str:
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, artifact_location=_artifact_location(uri), tags=KIND)
        except MlflowException:  # another job of a sweep created it first
            exp = client.get_experiment_by_name(name)
    if exp is None or exp.lifecycle_stage == "deleted":
        raise RuntimeError(f"experiment '{name}' is deleted; restore it or choose another tracking.experiment")
    if not any(k in exp.tags for k in KIND):  # made before this tag: tagged once; a kind someone set is kept
        client.set_experiment_tag(exp.experiment_id, *next(iter(KIND.items())))
    return exp.experiment_id


def _log_model_files(client, run_id: str, rec: Dict) -> None:
    """The model file, its ``artifact.json`` and any external-data files beside it, under ``model/``."""
    path = Path(rec["path"])
    files = [path] + [p for p in path.parent.glob(f"{path.name}*") if p != path and p.is_file()]
    if (path.parent / SIDECAR).is_file():
        files.append(path.parent / SIDECAR)
    for f in files:
        client.log_artifact(run_id, str(f), "model")


def _log_child(client, exp_id: str, parent_id: str, rec: Dict, summary: Dict, params: Dict, log_models: bool) -> str:
    from mlflow.entities import RunTag
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    tags = {MLFLOW_PARENT_RUN_ID: parent_id, **variant_tags(rec, summary), **owner_tags()}
    run_id = client.create_run(exp_id, run_name=f"{summary['recipe']}/{rec['name']}", tags=tags,
                               start_time=epoch_ms(summary.get("started"))).info.run_id
    flat, series = variant_metrics(rec)
    log_batch(client, run_id, flat, series, params)
    if log_models and rec.get("path") and Path(rec["path"]).is_file():
        uploader = _uploaded(client, exp_id, rec.get("artifact_id"))
        if uploader is None:
            _log_model_files(client, run_id, rec)
            client.set_tag(run_id, "model_uploaded", "true")
            uploader = client.get_run(run_id)
        # where this artifact id's files are: uploaded once per experiment, referenced by later runs
        client.log_batch(run_id, tags=[RunTag("model_uri", f"{uploader.info.artifact_uri}/model"),
                                       RunTag("model_run_id", uploader.info.run_id)])
    client.set_terminated(run_id, _STATUS.get(rec["status"], "FAILED"), end_time=epoch_ms())
    return run_id


def _uploaded(client, exp_id: str, artifact_id: Optional[str]):
    """The earlier run in the experiment that uploaded ``artifact_id``'s files, or None."""
    if not artifact_id:
        return None
    runs = client.search_runs([exp_id], f"tags.artifact_id = '{artifact_id}' and tags.model_uploaded = 'true'",
                              max_results=1)
    return runs[0] if runs else None


def log_once(client, exp_id: str, run_id: str, path: Path, where: Optional[str] = None) -> None:
    """Upload ``path`` under ``where`` and tag the run ``sha256.<digest>`` = its artifact path, unless a run of
    the experiment already holds the same bytes: then tag ``file.<artifact path>`` = that copy's URI instead.
    A warm re-run's model repository (its model file, reference.npz) and unchanged plots are not stored again."""
    from optimizer.files import file_digest

    name = f"{where}/{path.name}" if where else path.name
    key = f"sha256.{file_digest(path)}"
    found = client.search_runs([exp_id], f"tags.`{key}` LIKE '%'", max_results=1)
    if found:
        client.set_tag(run_id, f"file.{name}", f"{found[0].info.artifact_uri}/{found[0].data.tags[key]}")
    else:
        client.log_artifact(run_id, str(path), where)
        client.set_tag(run_id, key, name)


def _log_parent_files(client, exp_id: str, run_id: str, summary: Dict, out_dir: Path) -> None:
    files = [(out_dir / ".hydra" / n, "recipe") for n in ("config.yaml", "overrides.yaml")]
    files += [(out_dir / n, "plots") for n in summary.get("plots", [])]
    files += [(out_dir / n, None) for n in (summary.get("reports") or {}).values()]
    files += [(f, "logs") for f in sorted(out_dir.glob("*.log")) + sorted(out_dir.glob("*.error.txt"))
              if f.stat().st_size]
    repo = summary.get("model_repository")
    if repo and Path(repo).is_dir():
        files += repository_files(Path(repo))
    for path, where in files:
        if path.is_file():
            log_once(client, exp_id, run_id, path, where)


def _register(client, cfg, run_id: str, rec: Dict) -> Dict:
    """The chosen variant's ``model/`` artifacts as a new version of the registered model."""
    from mlflow.exceptions import MlflowException

    name = cfg.tracking.registered_model or cfg.model.name
    try:
        client.create_registered_model(name, description="variants chosen by optimizer recipes")
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    run_id = client.get_run(run_id).data.tags.get("model_run_id", run_id)  # the run that holds the files
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    tags = {k: str(rec[k]) for k in ("artifact_id", "precision", "format") if rec.get(k) is not None}
    mv = client.create_model_version(name, source, run_id=run_id, tags={**tags, "chain": ">".join(rec["chain"])},
                                     description=f"variant {rec['name']} ({'>'.join(rec['chain']) or 'source'})",
                                     await_creation_for=0)  # files are already uploaded; don't poll or log
    return {"name": name, "version": str(mv.version)}


def _log(cfg, summary: Dict, out_dir: Path, uri: str) -> Dict:
    from mlflow import MlflowClient

    from optimizer.recipe.plan import plan

    from mlflow.entities import RunTag

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    name = cfg.tracking.experiment
    exp_id = _experiment(client, name, uri)
    end_orphans(client, exp_id)  # runs a killed process left RUNNING
    parent_tags = {"recipe": summary["recipe"], "status": summary["status"], "chosen": str(summary["chosen"]),
                   "objective": summary["objective"], "mlflow.note.content": summary.get("description") or "",
                   **owner_tags()}
    parent_id = client.create_run(exp_id, run_name=summary["recipe"], tags=parent_tags,
                                  start_time=epoch_ms(summary.get("started"))).info.run_id
    record: Dict[str, Any] = {"uri": uri, "experiment": name, "experiment_id": exp_id, "parent_run_id": parent_id}
    if uri.startswith(("http://", "https://")):
        record["ui"] = f"{uri.rstrip('/')}/#/experiments/{exp_id}/runs"  # the runs table, this run at the top
    from optimizer.record.tracking_runs import log_trial, trial_steps
    from optimizer.record.tracking_values import trial_params

    try:
        steps = {s.label: s for s in plan(cfg)}
        trials = {f"trial{t['trial']}": t for t in (summary.get("search") or {}).get("trials", [])}
        children = {}
        for rec in summary["variants"]:
            trial = trials.get(rec["name"])  # a search's finalist: its own trial's options, not the recipe's
            params = variant_params(cfg, trial_steps(cfg, trial) if trial else steps, rec["chain"], rec.get("runtime"))
            params.update(trial_params(trial) if trial else {})
            children[rec["name"]] = _log_child(client, exp_id, parent_id, rec, summary, params, cfg.tracking.log_models)
        for name, trial in trials.items():  # every other trial: its options and screening figures
            if name not in children:
                children[name] = log_trial(client, exp_id, parent_id, trial, summary)
        record["child_run_ids"] = children
        params = run_params(cfg)
        for step in steps.values():
            params[f"pass.{step.label}.type"] = step.spec.name
            params.update(flatten(f"pass.{step.label}", step.config))
        metrics = {k: float(summary[k]) for k in ("passes_run", "passes_cached", "exit_code")}
        metrics.update(chosen_metrics(summary))
        metrics.update(chargeback.metrics(cfg, summary))  # each tenant's part of the cost (serving.tenants)
        log_batch(client, parent_id, metrics, params=params)
        client.log_batch(parent_id, tags=[RunTag(k, v) for k, v in gate_tags(summary).items()])
        _log_parent_files(client, exp_id, parent_id, summary, out_dir)
        if cfg.tracking.register and summary.get("chosen"):
            chosen = next(r for r in summary["variants"] if r["name"] == summary["chosen"])
            record["registered"] = _register(client, cfg, children[chosen["name"]], chosen)
        elif cfg.tracking.register:
            record["registered"] = {"skipped": "no variant met the recipe's constraints"}
        from optimizer.record.provenance import portable

        logged = portable({**summary, "tracking": record})  # as written next to the run
        client.log_text(parent_id, json.dumps(logged, indent=2, default=str), "summary.json")
    except BaseException:
        client.set_terminated(parent_id, "FAILED", end_time=epoch_ms())
        raise
    client.set_terminated(parent_id, "FAILED" if summary["status"] == "failed" else "FINISHED", end_time=epoch_ms())
    return record
