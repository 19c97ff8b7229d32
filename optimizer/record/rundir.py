"""The run directory belongs to one run: files a previous run left there are removed before this one starts,
so its summary, logs, error files and plots (and what tracking uploads from them) are never stale."""

import json
import re
import shutil
from pathlib import Path
from typing import Dict, Iterable, List

from optimizer.errors import RecipeError

from optimizer.record.ci import JUNIT, REPORT
from optimizer.record.plots import ACCURACY, DASHBOARD, LATENCY, THROUGHPUT

OWN_FILES = ("summary.json", "error.txt", LATENCY, THROUGHPUT, ACCURACY, DASHBOARD, REPORT, JUNIT)


def _hydra_log() -> str:
    """The log file Hydra opened for this job (``<job name>.log``), which must stay; "" outside Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return f"{HydraConfig.get().job.name}.log" if HydraConfig.initialized() else ""
    except Exception:  # noqa: BLE001 - no Hydra job: nothing to keep
        return ""


def user_inputs(cfg) -> Dict[str, Path]:
    """The files and directories the recipe names as inputs (baseline, model, data), resolved, by key."""
    named = {"gates.baseline": cfg.gates.baseline, "model.source": cfg.model.source, "data.source": cfg.data.source}
    out = {}
    for key, value in named.items():
        text = re.sub(r"^[a-z]{2,8}:(?!//)", "", str(value or ""))  # hf:<dir>, text:<file>; not pkg.mod:fn
        try:
            if text and Path(text).expanduser().exists():
                out[key] = Path(text).expanduser().resolve()
        except (OSError, RuntimeError):  # a symlink loop or an unreadable path is the source's check to report
            continue
    return out


def check_inputs(out_dir: Path, inputs: Dict[str, Path], own_repository: bool) -> None:
    """Refuse an input this run would overwrite or remove: a file it writes into the run directory, or anything
    inside the run directory's own ``model_repository`` (replaced by each run)."""
    root = Path(out_dir).resolve()
    for key, path in inputs.items():
        if path.parent == root and path.name in OWN_FILES:
            raise RecipeError(f"{key} {str(path)!r} is a file this run writes ({path.name} in the run directory): "
                              f"copy it out, or choose another run directory with hydra.run.dir=DIR")
        if own_repository and (path == root / "model_repository" or root / "model_repository" in path.parents):
            raise RecipeError(f"{key} {str(path)!r} lies in the run directory's model_repository, which this run "
                              f"replaces: copy it out, or choose another run directory with hydra.run.dir=DIR")


def clean(out_dir: Path, labels: Iterable[str], own_repository: bool, keep: Iterable[Path] = ()) -> List[str]:
    """Remove what an earlier run wrote into ``out_dir``; returns the names removed.

    Only files this tool writes are touched: the summary, plots, ``error.txt``, ``*.error.txt``, and the
    ``<step>.log`` of this recipe's steps (``labels``) and of the steps the previous summary lists.
    ``own_repository``: the Triton repository is the default ``<run dir>/model_repository`` (one the user
    named with ``triton.repository`` is theirs and is left alone). Nothing in ``keep`` (the recipe's inputs)
    is removed."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    logs = {f"{label}.log" for label in [*labels, *_previous_steps(out_dir)]} - {_hydra_log()}
    kept = {Path(k).resolve() for k in keep}
    stale = [p for p in out_dir.iterdir() if p.is_file() and p.resolve() not in kept and (
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
