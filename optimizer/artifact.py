"""Artifact: the frozen record of one model file and its metadata."""

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Optional

from optimizer.files import write_atomic

SIDECAR = "artifact.json"


@dataclass(frozen=True)
class Artifact:
    path: Path  # the model file
    format: str  # a format name of optimizer.formats (torch, onnx, tensorrt)
    id: str = ""  # content address; set by the pipeline
    parent: Optional[str] = None  # id of the artifact this one was made from
    step: str = "source"  # recipe step label that made it
    meta: Mapping[str, Any] = field(default_factory=dict)  # inherited from the parent, then updated

    def evolve(self, **changes: Any) -> "Artifact":
        """A copy with ``changes`` applied; ``meta`` is merged into the parent's meta."""
        meta = {**self.meta, **changes.pop("meta", {})}
        return replace(self, meta=meta, **changes)

    def save(self, directory: Path, files: Optional[Mapping[str, Any]] = None) -> Path:
        """Write ``artifact.json`` into ``directory`` (the path stored relative to it when inside); ``files``:
        the cache's record of the entry's files (sha256 and size), checked before the entry is used."""
        directory = Path(directory)
        record = asdict(self)
        if files is not None:
            record["files"] = dict(files)
        path = Path(self.path)
        try:
            record["path"] = str(path.resolve().relative_to(directory.resolve()))
        except ValueError:
            record["path"] = str(path)
        sidecar = directory / SIDECAR
        write_atomic(sidecar, json.dumps(record, indent=2, sort_keys=True, default=str).encode())
        return sidecar

    @classmethod
    def load(cls, directory: Path) -> "Artifact":
        """Read the artifact recorded in ``directory/artifact.json``."""
        directory = Path(directory)
        record = json.loads((directory / SIDECAR).read_text())
        record.pop("files", None)
        path = Path(record.pop("path"))
        return cls(path=path if path.is_absolute() else directory / path, **record)
