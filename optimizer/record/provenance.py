"""Where a summary came from and how it is written: schema version, timestamps, the model source's git revision,
the overrides, and paths relative to the run directory (absolute ones only under ``paths``)."""

import copy
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

from optimizer.sources.models import source_directory

SCHEMA_VERSION = 2  # 2: schema_version, started/finished, git, overrides, paths; relative paths


def now() -> str:
    """The current UTC time, ISO 8601 with seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_revision(directory: Optional[Path]) -> Optional[Dict[str, Any]]:
    """``{commit, dirty, root}`` of the git work tree holding ``directory``, or None outside one (or without git)."""
    if directory is None or not directory.is_dir():
        return None

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        root = git("rev-parse", "--show-toplevel")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": dirty, "root": root}


def overrides(out_dir: Path) -> List[str]:
    """The command line's overrides, as Hydra recorded them in the run directory (none outside the CLI)."""
    path = Path(out_dir) / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    from omegaconf import OmegaConf

    return [str(o) for o in OmegaConf.load(path)]


def record(model_source: str, out_dir: Path, started: str) -> Dict[str, Any]:
    """The provenance fields of a summary (``model_source``: the recipe's ``model.source``)."""
    return {"schema_version": SCHEMA_VERSION, "started": started, "overrides": overrides(out_dir),
            "git": git_revision(source_directory(model_source))}


def _relative(value: Any, base: str) -> Any:
    if isinstance(value, dict):
        return {k: _relative(v, base) for k, v in value.items()}
    if isinstance(value, list):
        return [_relative(v, base) for v in value]
    if isinstance(value, str) and (value == base or value.startswith(base + os.sep)):
        return os.path.relpath(value, base)
    return value


def portable(summary: Dict) -> Dict:
    """What goes into summary.json: every path under the run directory relative to it, each variant's file relative
    to the cache directory, and the absolute locations once, under ``paths``."""
    out = copy.deepcopy(summary)
    run_dir = out.pop("output_dir", None)
    cache_dir = out.pop("cache_dir", None)
    summary_path = out.pop("summary_path", None)
    out["paths"] = {"run_dir": run_dir, "cache_dir": cache_dir, "summary": summary_path,
                    "model_repository": summary.get("model_repository"),
                    "note": "every other path is relative to run_dir; variants[].path is relative to cache_dir"}
    if cache_dir:
        for r in out.get("variants", []):
            if r.get("path", "").startswith(cache_dir + os.sep):
                r["path"] = os.path.relpath(r["path"], cache_dir)
    if run_dir:
        out = {k: (v if k == "paths" else _relative(v, str(run_dir))) for k, v in out.items()}
    return {"schema_version": out.pop("schema_version", SCHEMA_VERSION), **out}
