"""Artifact: the frozen record of one model file and its metadata."""

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Optional

from optimizer.files import content_key, write_atomic

SIDECAR = "artifact.json"
DIGEST = "record_sha256"  # the sidecar's digest of its own other fields: an edited record is damage


def record_digest(record: Mapping[str, Any]) -> str:
    """The digest ``artifact.json`` stores of its other fields (as read back from JSON)."""
    return content_key({k: v for k, v in record.items() if k != DIGEST})


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
        record = json.loads(json.dumps(record, default=str))  # the record as it will be read back
        if files is not None:
            record[DIGEST] = record_digest(record)
        sidecar = directory / SIDECAR
        write_atomic(sidecar, json.dumps(record, indent=2, sort_keys=True).encode())
        return sidecar

    @classmethod
    def load(cls, directory: Path) -> "Artifact":
        """Read the artifact recorded in ``directory/artifact.json``."""
        directory = Path(directory)
        record = json.loads((directory / SIDECAR).read_text())
        record.pop("files", None)
        record.pop(DIGEST, None)
        path = Path(record.pop("path"))
        return cls(path=path if path.is_absolute() else directory / path, **record)
