"""Cache integrity: an entry's ``artifact.json`` records the sha256 and size of every file the entry holds
(``files``) and a digest of its own other fields (``record_sha256``), and an entry is verified before it is
used. A damaged entry (a file missing, truncated, edited or not a regular file, an edited ``artifact.json``,
a path that leads outside the entry, a factory no recipe names) is moved aside to ``<cache>/.quarantine/`` —
kept for inspection, never read again — and the step runs again. Measurement and tuning records
(``<dir>/<name>.record.json``) carry their own digest and are treated alike: a damaged one is quarantined and
measured again. Only regular files are opened: a FIFO or device in the cache is damage, never read.

Leftovers of killed runs (``.tmp-<key>-<pid>-<random>~<host>`` build directories) are pruned: on start those
whose owner process is gone and that are older than ``STALE_SECONDS``; ``python -m optimizer cache prune``
every one whose owner is gone. Only the owner's host can tell whether it is gone, so a cache shared by
several hosts never loses another host's build in progress. ``python -m optimizer cache verify`` checks the whole cache."""

import json
import os
import shutil
import stat
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from optimizer.artifact import DIGEST, SIDECAR, Artifact, record_digest
from optimizer.errors import EXIT_FAILED, EXIT_OK, EXIT_RECIPE, RecipeError
from optimizer.factory import check
from optimizer.files import content_key, file_digest
from optimizer.host import host_name, owner_gone

QUARANTINE = ".quarantine"  # damaged entries moved aside, one directory each
TMP_PREFIX = ".tmp-"  # build directories of entries not yet committed
STALE_SECONDS = 600  # a build directory this old whose owner is gone is a killed run's leftover
RECORD = ".record.json"  # measurement and tuning records kept beside an entry, each with its own digest


def regular(path: Path) -> bool:
    """``path`` is a regular file (not a link, FIFO, device or directory): the only kind the cache opens."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def manifest(directory: Path) -> Dict[str, Dict]:
    """``{relative path: {sha256, size}}`` of every regular file under ``directory`` but ``artifact.json``."""
    directory = Path(directory)
    out = {}
    for p in sorted(directory.rglob("*")):
        rel = p.relative_to(directory).as_posix()
        if rel != SIDECAR and p.is_file() and not p.is_symlink():
            out[rel] = {"sha256": file_digest(p), "size": p.stat().st_size}
    return out


def _inside(entry: Path, rel: str) -> bool:
    root = os.path.realpath(entry)
    target = os.path.realpath(os.path.join(entry, rel))
    return not os.path.isabs(rel) and os.path.commonpath([root, target]) == root and target != root


def problems(entry: Path, factories: Optional[Iterable[str]] = None) -> List[str]:
    """What is wrong with cache entry ``entry`` (empty when it is intact). ``factories``: the factories a
    recipe names; a recorded ``meta.factory`` outside them is a problem (None: only the factory rule)."""
    sidecar = Path(entry) / SIDECAR
    if not regular(sidecar):
        return [f"{SIDECAR}: not a regular file"]  # a FIFO or device is never opened
    try:
        record = json.loads(sidecar.read_text())
        files, path = record["files"], str(record["path"])
        meta = record.get("meta") or {}
        if not isinstance(files, dict) or not isinstance(meta, dict) or not all(isinstance(v, dict) for v in files.values()):
            raise TypeError("files and meta must be objects")
    except (OSError, ValueError, KeyError, TypeError) as e:
        return [f"{SIDECAR}: no readable file record ({type(e).__name__}: {e})"]
    bad = [f"{Path(entry).name}: the entry is a link"] if Path(entry).is_symlink() else []
    bad += _file_problems(Path(entry), files)
    if not _inside(entry, path):
        bad.append(f"{SIDECAR}: path {path!r} lies outside the entry")
    elif Path(path).as_posix() not in files:
        bad.append(f"{SIDECAR}: path {path!r} is not among the entry's recorded files")
    if path.endswith(".pt2"):
        bad.append(f"{path}: a cache entry never holds a pickled .pt2 program")
    bad += _factory_problems(meta.get("factory"), factories)
    if not bad:
        bad += _record_problems(entry, record)
    return bad


def _record_problems(entry: Path, record: Dict) -> List[str]:
    """The sidecar's own fields are as written (its digest matches) and make an artifact."""
    try:
        Artifact.load(entry)
    except (TypeError, ValueError) as e:
        return [f"{SIDECAR}: not an artifact record ({type(e).__name__}: {e})"]
    if DIGEST not in record:
        return [f"{SIDECAR}: no record digest (written by an older version)"]
    if record[DIGEST] != record_digest(record):
        return [f"{SIDECAR}: edited after the entry was written (its fields no longer match their digest)"]
    return []


def _file_problems(entry: Path, files: Dict[str, Dict]) -> List[str]:
    """Each recorded file is inside the entry, a regular file, of its recorded size and sha256."""
    bad = []
    for rel, info in files.items():
        p = entry / rel
        if not _inside(entry, rel):
            bad.append(f"{rel}: lies outside the entry")
        elif not os.path.lexists(p):
            bad.append(f"{rel}: missing")
        elif not regular(p):
            bad.append(f"{rel}: not a regular file")
        elif p.stat().st_size != info.get("size"):
            bad.append(f"{rel}: {p.stat().st_size} bytes, {info.get('size')} recorded")
        elif file_digest(p) != info.get("sha256"):
            bad.append(f"{rel}: sha256 differs from the recorded one")
    return bad


def _factory_problems(factory, factories: Optional[Iterable[str]]) -> List[str]:
    """A recorded factory passes the factory rule and, given the recipe's ``factories``, is one of them."""
    if factory is None:
        return []
    try:
        check(str(factory), "meta.factory")
    except RecipeError as e:
        return [f"{SIDECAR}: {e}"]
    if factories is not None and factory not in factories:
        return [f"{SIDECAR}: meta.factory {factory!r} is not a factory the recipe names"]
    return []


def quarantine(root: Path, entry: Path) -> Optional[Path]:
    """Move ``entry`` (an entry directory or one record file) to ``<root>/.quarantine/<name>-<time>``; None
    when another run moved it first."""
    box = Path(root) / QUARANTINE
    if os.path.lexists(box) and (box.is_symlink() or not box.is_dir()):
        raise RecipeError(f"{box} is not a directory: the cache moves damaged entries there; remove or rename it")
    stem = entry.name if entry.parent == Path(root) else f"{entry.parent.name}-{entry.name}"
    dest = box / f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"
    box.mkdir(exist_ok=True)
    try:
        os.rename(entry, dest)
    except FileNotFoundError:
        return None
    return dest


def seal(value: Any) -> bytes:
    """A measurement or tuning record as stored: the value and its digest."""
    value = json.loads(json.dumps(value))
    return json.dumps({"sha256": content_key(value), "value": value}, indent=2, sort_keys=True).encode()


def unseal(path: Path) -> Tuple[Any, Optional[str]]:
    """``(value, None)`` for an intact record at ``path``, ``(None, problem)`` for a damaged one; a FIFO or
    device is never opened."""
    if not regular(path):
        return None, "not a regular file"
    try:
        record = json.loads(path.read_text())
        value = record["value"]
        if record["sha256"] != content_key(value):
            return None, "edited after it was written (its digest differs)"
        return value, None
    except (OSError, ValueError, KeyError, TypeError) as e:
        return None, f"not a readable record ({type(e).__name__}: {e})"


def records(root: Path) -> List[Path]:
    """Every measurement and tuning record in the cache (``<root>/<dir>/<name>.record.json``)."""
    return [p for p in sorted(Path(root).glob(f"*/*{RECORD}")) if not p.parent.name.startswith(".")]


def tmp_name(key: str) -> str:
    """The build directory's name for entry ``key``: it names the owner process and its host."""
    return f"{TMP_PREFIX}{key[:16]}-{os.getpid()}-{uuid.uuid4().hex[:8]}~{host_name()}"


def _owner_alive(name: str) -> Optional[bool]:
    rest, _, host = name[len(TMP_PREFIX):].partition("~")
    if host and host != host_name():
        return True  # another host's process: only that host can tell, so it counts as alive
    parts = rest.split("-")
    if len(parts) != 3 or not parts[1].isdigit():
        return None  # written by an older version: the owner is unknown
    return not owner_gone(host_name(), parts[1])


def prune(root: Path, stale_only: bool = False) -> List[Path]:
    """Remove build directories left by killed runs: those whose owner process is gone (``stale_only``:
    and older than STALE_SECONDS), and those of unknown owner older than STALE_SECONDS."""
    removed = []
    now = time.time()
    for p in sorted(Path(root).glob(f"{TMP_PREFIX}*")):
        if not p.is_dir() or p.is_symlink():
            continue
        try:
            old = now - p.stat().st_mtime > STALE_SECONDS
        except FileNotFoundError:
            continue
        alive = _owner_alive(p.name)
        if (alive is False and (old or not stale_only)) or (alive is None and old):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


def entries(root: Path) -> List[Path]:
    """The committed entries under ``root`` (directories holding an ``artifact.json``)."""
    return [p for p in sorted(Path(root).iterdir()) if not p.name.startswith(".") and os.path.lexists(p / SIDECAR)]


USAGE = "usage: python -m optimizer cache {verify [--quarantine] | prune} [cache_dir=PATH]"


def _root(args: List[str]) -> Path:
    for a in args:
        if a.startswith("cache_dir="):
            return Path(os.path.expanduser(a.split("=", 1)[1]))
    return Path(os.path.expanduser(os.environ.get("OPTIMIZER_CACHE_DIR") or "~/.cache/optimizer"))


def _step(entry: Path) -> str:
    if not regular(entry / SIDECAR):
        return "?"
    try:
        return str(json.loads((entry / SIDECAR).read_text()).get("step", "?"))
    except (OSError, ValueError, AttributeError):
        return "?"


def main(argv: List[str]) -> int:
    """``python -m optimizer cache verify|prune``: exit 0 when the cache is intact (verify) or pruned, 1 when
    verify found damaged entries (one line each), 2 for a usage mistake."""
    args = list(argv)
    command = args.pop(0) if args else ""
    unknown = [a for a in args if not a.startswith("cache_dir=") and a != "--quarantine"]
    if command not in ("verify", "prune") or unknown or ("--quarantine" in args and command != "verify"):
        print(f"error: {USAGE}", file=sys.stderr)
        return EXIT_RECIPE
    root = _root(args)
    if any(a == "cache_dir=" for a in args):
        print("error: cache_dir= is empty; name the cache directory (cache_dir=DIR)", file=sys.stderr)
        return EXIT_RECIPE
    if root.exists() and not root.is_dir():
        print(f"error: cache_dir={root} is a file, not a cache directory", file=sys.stderr)
        return EXIT_RECIPE
    if not root.is_dir():
        print(f"no cache at {root}: nothing to {command}")
        return EXIT_OK
    if command == "prune":
        removed = prune(root)
        for p in removed:
            print(f"removed {p}")
        print(f"cache {root}: {len(removed)} leftover build director{'y' if len(removed) == 1 else 'ies'} removed")
        return EXIT_OK
    try:
        return _verify(root, "--quarantine" in args)
    except RecipeError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_RECIPE


def _verify(root: Path, move: bool) -> int:
    """Check every entry and every record; print one line per damaged one (moved aside when ``move``)."""
    found, kept = entries(root), records(root)
    bad = {e: why for e, why in ((e, problems(e)) for e in found) if why}
    for e, why in bad.items():
        moved = quarantine(root, e) if move else None
        print(f"damaged {e.name} (step '{_step(e)}'): {'; '.join(why)}" + (f" (moved to {moved})" if moved else ""), file=sys.stderr)
    damaged = 0
    for r in kept:
        why = unseal(r)[1] if os.path.lexists(r) else None  # gone: moved with its damaged entry
        if why:
            damaged += 1
            moved = quarantine(root, r) if move else None
            print(f"damaged record {r.parent.name}/{r.name}: {why}" + (f" (moved to {moved})" if moved else ""), file=sys.stderr)
    print(f"cache {root}: {len(found)} entries, {len(bad)} damaged; {len(kept)} records, {damaged} damaged")
    return EXIT_FAILED if bad or damaged else EXIT_OK
