"""Content-addressed cache: ``<root>/<id>/`` holds one step's output and its ``artifact.json``.

An entry is built in a temporary directory and renamed into place, and only counts once its
``artifact.json`` exists, so a killed run never leaves a half-written entry that is read.
Measurements of an artifact live beside it as small JSON files."""

import hashlib
import json
import os
import shutil
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from optimizer.artifact import SIDECAR, Artifact


def versions() -> Dict[str, str]:
    """Versions of the libraries whose behaviour changes what a pass produces (each format names its own)."""
    from optimizer import formats

    out = {}
    for dist in sorted({d for name in formats.names() for d in formats.get(name).libraries}):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "absent"
    return out


def content_key(*parts: Any) -> str:
    """sha256 over a canonical JSON encoding of ``parts``."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary name beside ``path`` and rename it into place."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Cache:
    def __init__(self, root: Path):
        self.root = Path(os.path.expanduser(str(root)))
        self.root.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> Optional[Artifact]:
        """The artifact stored under ``key``, or None when there is no complete entry."""
        entry = self.root / key
        if (entry / SIDECAR).exists():
            return Artifact.load(entry)
        return None

    def put(self, key: str, produce: Callable[[Path], Artifact]) -> Artifact:
        """Run ``produce(tmp_dir)`` and commit its artifact as entry ``key``."""
        tmp = self.root / f".tmp-{key[:16]}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            art = produce(tmp).evolve(id=key)
            art.save(tmp)
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
        return Artifact.load(final)

    def read_json(self, key: str, name: str) -> Optional[Any]:
        """A JSON record stored beside entry ``key`` (measurements), or None."""
        path = self.root / key / f"{name}.json"
        return json.loads(path.read_text()) if path.exists() else None

    def write_json(self, key: str, name: str, value: Any) -> None:
        entry = self.root / key
        entry.mkdir(parents=True, exist_ok=True)
        write_atomic(entry / f"{name}.json", json.dumps(value, indent=2, sort_keys=True).encode())
