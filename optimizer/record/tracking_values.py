"""What MLflow gets from a run, as pure functions of the config and ``summary.json``'s records: params,
metrics (flat per batch size and as ``*_by_batch`` series), tags, the chosen variant's headline figures and
the gate results. No mlflow import; ``tracking.py`` sends them."""

import json
import re
from dataclasses import asdict, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

_LATENCY = ("p50", "p90", "p95", "p99")
MAX_PARAM = 6000  # MLflow's limit on a param value's length


def flatten(prefix: str, value: Any) -> Dict[str, str]:
    """``{"a.b.c": "value"}`` for nested dicts/dataclasses; lists as JSON, enums by value, None as null."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, dict):
        out: Dict[str, str] = {}
        for k, v in value.items():
            out.update(flatten(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    if isinstance(value, Enum):
        value = value.value
    text = "null" if value is None else json.dumps(value) if isinstance(value, (list, tuple)) else str(value)
    return {prefix: text[:MAX_PARAM]}


def variant_params(cfg, steps: Dict[str, Any], chain: List[str], runtime=None) -> Dict[str, str]:
    """Model, data and hardware settings (with a search trial's session options, ``runtime``), and the full config
    of every pass in ``chain``."""
    from optimizer.formats import with_runtime

    hw = with_runtime(cfg.hardware, runtime or {})
    out = {**flatten("model", cfg.model), **flatten("data", cfg.data), **flatten("hardware", hw)}
    for label in chain:
        step = steps[label]
        out[f"pass.{label}.type"] = step.spec.name
        out.update(flatten(f"pass.{label}", step.config))
    return out


def variant_metrics(rec: Dict) -> Tuple[Dict[str, float], List[Tuple[str, float, int]]]:
    """Flat metrics of one summary record, and the per-batch-size series as ``(key, value, step)``."""
    flat: Dict[str, float] = {}
    series: List[Tuple[str, float, int]] = []
    for k, v in (rec.get("evaluation") or {}).items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            flat[k] = float(v)
    for bs, b in (rec.get("benchmark") or {}).items():
        values = {f"latency_{p}_ms": b[f"{p}_ms"] for p in _LATENCY}
        values.update(latency_mean_ms=b["mean_ms"], throughput=b["throughput"])
        if bs in rec.get("speedup", {}):
            values["speedup"] = rec["speedup"][bs]
        if bs in rec.get("speedup_interval", {}):
            values["speedup_lo"], values["speedup_hi"] = rec["speedup_interval"][bs]
        for k, v in values.items():
            flat[f"{k}_b{bs}"] = float(v)
            series.append((f"{k}_by_batch", float(v), int(bs)))  # step = batch size; the name says so
    for k in ("peak_memory_mb", "size_bytes", "seconds"):
        if rec.get(k) is not None:
            flat["pass_seconds" if k == "seconds" else k] = float(rec[k])
    if "size_bytes" in rec:
        flat["size_mb"] = rec["size_bytes"] / 1e6
    flat.update({k: float(v) for k, v in (rec.get("cost") or {}).items()})
    prof = rec.get("profile") or {}
    if prof.get("op_types"):  # where the time goes: the top op types' shares of a call, and what they cover
        flat["profile_covered"] = float(prof["covered"])
        flat.update({"time_share." + re.sub(r"[^\w.\- /]", "_", t): float(v) for t, v in list(prof["op_types"].items())[:5]})
    return flat, series


def trial_params(trial: Dict) -> Dict[str, str]:
    """A search trial's options as params (``trial.<key>``; none: the recipe's own chain)."""
    params = {f"trial.{k}": json.dumps(v)[:MAX_PARAM] for k, v in trial["params"].items()}
    return {"trial": str(trial["trial"]), **params}


def trial_metrics(trial: Dict) -> Dict[str, float]:
    """A search trial's screening figures (against the reference, in its own short measurement set)."""
    return {f"screening_{k}": float(trial[k]) for k in ("speedup", "p99_ratio", "score") if trial.get(k) is not None}


def variant_tags(rec: Dict, summary: Dict) -> Dict[str, str]:
    tags = {
        "recipe": summary["recipe"], "variant": rec["name"], "chain": ">".join(rec["chain"]) or "source",
        "status": rec["status"], "cached": str(rec["status"] == "ok" and not rec["ran"] and bool(rec["chain"])).lower(),
        "chosen": str(rec["name"] == summary.get("chosen")).lower(), "pareto": str(bool(rec.get("pareto"))).lower(),
    }
    for k in ("artifact_id", "parent_id", "precision", "format", "error"):
        if rec.get(k) is not None:
            tags[k] = str(rec[k])
    if rec.get("violations"):
        tags["violations"] = "; ".join(rec["violations"])
    return tags


def chosen_metrics(summary: Dict) -> Dict[str, float]:
    """The chosen variant's headline figures for the parent run (``chosen_score``, ``chosen_throughput_b32``, ...)."""
    rec = next((r for r in summary["variants"] if r["name"] == summary.get("chosen")), None)
    if rec is None:
        return {}
    flat, _ = variant_metrics(rec)
    keep = ("score", "score_drop", "mean_cosine", "size_mb", "peak_memory_mb", "cost_per_million")
    return {f"chosen_{k}": v for k, v in flat.items()
            if k in keep or k.startswith(("throughput_b", "speedup_b", "latency_p50_ms_b", "latency_p99_ms_b"))}


def gate_tags(summary: Dict) -> Dict[str, str]:
    """Gate results on the parent run: ``gates`` (passed/failed), one ``gate.<name>`` tag per failed gate, and one
    ``gate.regression.<variant>.<metric>`` per regression gate."""
    failures = summary.get("gate_failures") or {}
    regression = (summary.get("regression") or {}).get("gates", [])
    tags = {"gates": "failed" if failures else "passed"}
    for name, why in failures.items():
        if name != "regression":
            tags[f"gate.{name}"] = "; ".join(why)[:MAX_PARAM]
    for g in regression:
        tags[f"gate.regression.{g['variant']}.{g['name']}"] = "passed" if g["passed"] else g["message"][:MAX_PARAM]
    told = summary.get("story") or {}
    if told.get("verdict"):  # the verdict in words, as the terminal and report.md give it
        tags["verdict"] = ". ".join(told["verdict"])[:MAX_PARAM]
    return tags


def run_params(cfg) -> Dict[str, str]:
    """The parent run's params: the settings every variant shares."""
    out = {**flatten("model", cfg.model), **flatten("data", cfg.data), **flatten("hardware", cfg.hardware)}
    out.update(flatten("evaluation", cfg.evaluation))
    out.update(flatten("benchmark", cfg.benchmark))
    out.update(flatten("constraints", cfg.constraints))
    out.update(objective=cfg.objective.value, seed=str(cfg.seed))
    return out


def repository_files(repo: Path) -> List[Tuple[Path, Optional[str]]]:
    """Every file of an emitted model repository with its artifact directory under ``model_repository/``; hidden
    entries (a run's claim, a killed writer's temporaries) are not the repository's."""
    files = sorted(p for p in Path(repo).rglob("*") if p.is_file())
    return [(f, "/".join(("model_repository",) + f.relative_to(repo).parent.parts)) for f in files
            if not any(part.startswith(".") for part in f.relative_to(repo).parts)]
