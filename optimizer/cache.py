"""Content-addressed cache: ``<root>/<id>/`` holds one step's output and its ``artifact.json``.

An entry is built in a temporary directory and renamed into place, and only counts once its
``artifact.json`` exists, so a killed run never leaves a half-written entry that is read. The
``artifact.json`` records the sha256 and size of the entry's files, and ``get`` verifies them (and the
factory a torch artifact asks for) before returning the entry; see ``optimizer/integrity.py``.
Measurements of an artifact live beside it as small sealed JSON records (value plus digest)."""

import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable, List, Optional

from optimizer.artifact import SIDECAR, Artifact
from optimizer.errors import OptimizerError
from optimizer.files import write_atomic
from optimizer.integrity import RECORD, manifest, problems, prune, quarantine, seal, tmp_name, unseal


class Cache:
    def __init__(self, root: Path, factories: Optional[Iterable[str]] = None):
        """``factories``: the factories the recipe names (``recipe.guards.recipe_factories``); a cached artifact
        asking for another is treated as damaged. None: only the factory rule applies."""
        self.root = Path(os.path.expanduser(str(root)))
        self.root.mkdir(parents=True, exist_ok=True)
        self.factories = None if factories is None else frozenset(factories)
        self.warnings: List[str] = []  # one line per damaged entry moved aside during this run
        self.built = 0  # entries this run produced (``put``), so a step can say whether it built or reused
        prune(self.root, stale_only=True)  # build directories of killed runs

    def get(self, key: str, step: str = "") -> Optional[Artifact]:
        """The artifact stored under ``key``, or None when there is no complete, intact entry (a damaged
        one is moved to the quarantine and reported in ``warnings``, naming ``step`` and the file)."""
        entry = self.root / key
        if not os.path.lexists(entry / SIDECAR):
            return None
        bad = problems(entry, self.factories)
        if not bad:
            return Artifact.load(entry)
        moved = quarantine(self.root, entry)
        self.warnings.append(f"cache entry of step '{step or key[:12]}' is damaged ({'; '.join(bad[:2])}); "
                             f"moved to {moved or 'the quarantine'} and rebuilt")
        return None

    def put(self, key: str, produce: Callable[[Path], Artifact]) -> Artifact:
        """Run ``produce(tmp_dir)`` and commit its artifact as entry ``key``, with the sha256 and size of
        every file it holds."""
        tmp = self.root / tmp_name(key)
        tmp.mkdir()
        try:
            art = produce(tmp).evolve(id=key)
            files = manifest(tmp)
            if Path(os.path.relpath(Path(art.path).resolve(), tmp.resolve())).as_posix() not in files:
                raise OptimizerError(f"the model file {art.path} was not written inside its cache entry {tmp}")
            art.save(tmp, files)
            final = self.root / key
            if final.exists() and not (final / SIDECAR).exists():
                shutil.rmtree(final)  # a half-written entry left by a killed run
            try:
                os.rename(tmp, final)
            except OSError:
                if not (final / SIDECAR).exists():  # not a concurrent writer that won the race
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.built += 1
        return Artifact.load(final)

    def read_json(self, key: str, name: str) -> Optional[Any]:
        """A record stored beside entry ``key`` (measurements, tuning sweeps), or None when there is none or
        it is damaged (then it is moved to the quarantine, reported in ``warnings``, and measured again)."""
        path = self.root / key / f"{name}{RECORD}"
        if not os.path.lexists(path):
            return None
        value, bad = unseal(path)
        if bad is None:
            return value
        moved = quarantine(self.root, path)
        self.warnings.append(f"cached record {key[:12]}/{name} is damaged ({bad}); moved to {moved or 'the quarantine'} "
                             f"and measured again")
        return None

    def write_json(self, key: str, name: str, value: Any) -> None:
        entry = self.root / key
        entry.mkdir(parents=True, exist_ok=True)
        write_atomic(entry / f"{name}{RECORD}", seal(value))
