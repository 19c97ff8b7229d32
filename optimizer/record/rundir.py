"""The run directory belongs to one run: files a previous run left there are removed before this one starts,
so its summary, logs, error files and plots (and what tracking uploads from them) are never stale."""

import json
import shutil
from pathlib import Path
from typing import Iterable, List

from optimizer.record.ci import JUNIT, REPORT
from optimizer.record.plots import ACCURACY, LATENCY, THROUGHPUT

OWN_FILES = ("summary.json", "error.txt", LATENCY, THROUGHPUT, ACCURACY, REPORT, JUNIT)


def _hydra_log() -> str:
    """The log file Hydra opened for this job (``<job name>.log``), which must stay; "" outside Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return f"{HydraConfig.get().job.name}.log" if HydraConfig.initialized() else ""
    except Exception:  # noqa: BLE001 - no Hydra job: nothing to keep
        return ""


def clean(out_dir: Path, labels: Iterable[str], own_repository: bool) -> List[str]:
    """Remove what an earlier run wrote into ``out_dir``; returns the names removed.

    Only files this tool writes are touched: the summary, plots, ``error.txt``, ``*.error.txt``, and the
    ``<step>.log`` of this recipe's steps (``labels``) and of the steps the previous summary lists.
    ``own_repository``: the Triton repository is the default ``<run dir>/model_repository`` (one the user
    named with ``triton.repository`` is theirs and is left alone)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    logs = {f"{label}.log" for label in [*labels, *_previous_steps(out_dir)]} - {_hydra_log()}
    stale = [p for p in out_dir.iterdir() if p.is_file() and (
        p.name in OWN_FILES or p.name.endswith(".error.txt") or p.name in logs)]
    if own_repository and (out_dir / "model_repository").is_dir():
        shutil.rmtree(out_dir / "model_repository")
        stale.append(out_dir / "model_repository")
    for p in stale:
        if p.is_file():
            p.unlink()
    return sorted(p.name for p in stale)


def _previous_steps(out_dir: Path) -> List[str]:
    """The step labels the summary already in ``out_dir`` names (none when there is no readable one)."""
    try:
        summary = json.loads((out_dir / "summary.json").read_text())
        return [str(v["name"]) for v in summary.get("variants", []) if "/" not in str(v["name"])]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []
