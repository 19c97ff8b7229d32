"""Content keys, file digests, atomic writes and safe file names: the small file helpers every floor uses (the
cache, its integrity checks, reports, the Triton repository), kept here so none of them imports another."""

import hashlib
import json
import os
import re
import uuid
from pathlib import Path
from typing import Any

from optimizer.errors import RecipeError

NAME = re.compile(r"[A-Za-z0-9_.-]+")  # what a name that becomes one file or directory name may hold


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
    """Write ``data`` to a temporary name beside ``path`` and rename it into place, so a reader never sees a
    half-written file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:  # a full disk, a signal: nothing half-written stays behind
        tmp.unlink(missing_ok=True)
        raise


def check_name(value, key: str) -> None:
    """``value`` is safe as one file or directory name (step labels, ``model.name``: the Triton model
    directory); RecipeError naming ``key`` otherwise."""
    name = str(value)
    if not NAME.fullmatch(name) or ".." in name or name.startswith("."):
        raise RecipeError(f"{key} {name!r}: a name may only hold letters, digits and '_-.', "
                          f"with no '/', no '..' and no leading '.'")


def safe_name(name: str) -> str:
    """``name`` made safe as one path component (unsafe runs become ``_``); ``model`` when nothing is left."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).lstrip(".").replace("..", "_")
    return name or "model"
