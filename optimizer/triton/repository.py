"""The emitted model repository on disk, and who may write it.

Layout: ``<repository>/<name>/config.pbtxt``, ``<name>/1/model.onnx``, ``<name>/tuning.md`` and
``tuning.json`` (the tuned values and the measurements behind them), ``<name>/reference.npz``
(evaluation inputs and the model's answers, for ``python -m optimizer.tritonserver.serve_check``). The config
itself comes from ``emit.py``."""

import contextlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional

import numpy as np

from optimizer.files import file_digest, write_atomic
from optimizer.errors import RecipeError
from optimizer.host import host_name, owner_gone

RESERVED = ".reserved"  # ``.<model>.reserved``: the run that claimed the repository at plan time


def check_target(repository: Path, name: str, model: Path, overwrite: bool, file_name: str = "model.onnx",
                 plan: Optional[str] = None) -> None:
    """Refuse to write over a repository that holds another model, unless ``overwrite``.

    ``plan`` identifies the recipe that emits (``target.plan_id``): a model directory the same recipe emitted
    is replaced, one another recipe emitted is refused (before any pass runs, when called at plan time). A
    directory without that record is compared by file content. Hidden entries (a killed writer's
    ``.<name>.tmp``) are not models: ``write_repository`` replaces its own."""
    if overwrite or not repository.exists():
        return
    others = sorted(p.name for p in repository.iterdir() if p.is_dir() and p.name != name and not p.name.startswith("."))
    existing = repository / name / "1" / file_name
    made_by = _emitted_by(repository / name)
    if existing.exists() and plan is not None and made_by is not None:
        if made_by != plan:
            others.append(f"{name}, emitted by another recipe")
    elif existing.exists() and model.exists() and file_digest(existing) != file_digest(model):
        others.append(f"{name} (a different {file_name})")
    if others:
        raise RecipeError(f"triton.repository {str(repository)!r} already holds another model ({', '.join(others)}); "
                          f"choose another directory or set triton.overwrite=true")


def _emitted_by(model_dir: Path) -> Optional[str]:
    """The ``plan`` recorded in ``<model dir>/tuning.json`` by the run that wrote it, if any."""
    try:
        return json.loads((model_dir / "tuning.json").read_text()).get("plan")
    except (OSError, ValueError, AttributeError):
        return None


def reserve(repository: Path, name: str, overwrite: bool, plan: str) -> None:
    """Claim ``repository`` for this run at plan time, before any pass runs. Under the repository's lock:
    ``check_target``, then a live run's claim for another model or another recipe (``plan``) is refused; then
    ``.<name>.reserved`` names this run (model, plan, host, pid), and ``release`` removes it when the process exits.
    A claim whose owner is gone, or this process's own (an earlier job of a sweep), is replaced."""
    repository.mkdir(parents=True, exist_ok=True)
    with locked(repository):
        check_target(repository, name, Path("/nonexistent"), overwrite, plan=plan)
        for marker in [] if overwrite else sorted(repository.glob(f".*{RESERVED}")):
            claim = _claim(marker)
            ours = claim.get("host") == host_name() and claim.get("pid") == os.getpid()
            if not claim or ours or owner_gone(claim.get("host"), str(claim.get("pid"))) or \
                    (claim.get("model"), claim.get("plan")) == (name, plan):
                continue  # unreadable (its writer was killed mid-write), ours, its owner gone, or the same recipe
            what = "another recipe" if claim.get("model") == name else f"model {claim.get('model')!r}"
            raise RecipeError(f"triton.repository {str(repository)!r} is being written by another run ({what}, pid "
                              f"{claim.get('pid')} on {claim.get('host')}); choose another directory, set "
                              f"triton.overwrite=true, or delete {marker} if that run is gone")
        owner = {"model": name, "plan": plan, "host": host_name(), "pid": os.getpid()}
        write_atomic(repository / f".{name}{RESERVED}", json.dumps(owner).encode())
    import atexit

    atexit.register(release, repository, name)


def _claim(marker: Path) -> Dict:
    try:
        claim = json.loads(marker.read_text())
    except (OSError, ValueError):
        return {}  # unreadable: a writer killed mid-write; no owner to wait for
    return claim if isinstance(claim, dict) else {}


def release(repository: Path, name: str) -> None:
    """Remove this process's claim on ``repository`` (``reserve``), if it is still its own."""
    marker = repository / f".{name}{RESERVED}"
    if not repository.is_dir():
        return
    with locked(repository):
        claim = _claim(marker)
        if claim.get("host") == host_name() and claim.get("pid") == os.getpid():
            marker.unlink(missing_ok=True)


def config_text(config, provenance: Optional[Dict] = None) -> str:
    """config.pbtxt's text; ``provenance`` becomes ``# key: value`` comment lines at the top (Triton and protobuf
    skip comments)."""
    from google.protobuf import text_format

    lines = ["# Generated by optimizer; how each value was set: tuning.md beside this file."] if provenance else []
    lines += [f"# {k}: {' '.join(v) if isinstance(v, list) else v}" for k, v in (provenance or {}).items()]
    return "".join(line.replace("\n", " ") + "\n" for line in lines) + text_format.MessageToString(config)


def write_repository(repository: Path, name: str, model: Path, config, reference: Dict[str, np.ndarray],
                     file_name: str = "model.onnx", provenance: Optional[Dict] = None,
                     check: Optional[Callable[[], None]] = None) -> Path:
    """Write ``<repository>/<name>/`` (model file, config.pbtxt, reference.npz) in a temporary directory of this
    writer's own and rename it into place, holding an exclusive lock on the repository directory so that
    concurrent writers take turns (and a killed writer's leftovers can be removed); ``check`` (who may write here)
    runs under the lock. ``provenance`` becomes a comment block at the top
    of config.pbtxt. The tuning docs follow with ``write_docs`` once everything they report is known."""
    repository.mkdir(parents=True, exist_ok=True)
    with locked(repository):
        if check is not None:
            check()
        for leftover in repository.glob(f".{name}.tmp*"):  # a killed writer's: none is active, we hold the lock
            shutil.rmtree(leftover, ignore_errors=True)
        for leftover in repository.glob(f".{name}.old-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        tmp = repository / f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        old = repository / f".{name}.old-{uuid.uuid4().hex[:8]}"
        final = repository / name
        try:
            (tmp / "1").mkdir(parents=True)
            shutil.copyfile(model, tmp / "1" / file_name)
            (tmp / "config.pbtxt").write_text(config_text(config, provenance))
            np.savez(tmp / "reference.npz", **reference)
            if final.exists():
                final.rename(old)  # the old model stays whole until the new one takes its name
            tmp.rename(final)
        except BaseException:
            if old.exists() and not final.exists():
                old.rename(final)
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
    return final


@contextlib.contextmanager
def locked(directory: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``directory`` itself for the duration of the block (no lock file is left)."""
    import fcntl

    fd = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def write_config(model_dir: Path, config, provenance: Optional[Dict] = None) -> None:
    """Rewrite config.pbtxt of a written repository (the overload check shortened its queue policies, and the
    server it probes next must see them)."""
    write_atomic(Path(model_dir) / "config.pbtxt", config_text(config, provenance).encode())


def write_docs(model_dir: Path, tuning_md: str, tuning: Dict) -> None:
    """Write tuning.md and tuning.json beside config.pbtxt: once per run, with everything the run found."""
    write_atomic(Path(model_dir) / "tuning.md", tuning_md.encode())
    write_atomic(Path(model_dir) / "tuning.json", json.dumps(tuning, indent=2, default=str).encode())
