"""Checks on the command line and the recipe files it names, made before Hydra composes anything, so a
mistake is one line naming the file and line to fix instead of Hydra's traceback."""

from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from optimizer.errors import RecipeError

GROUPS = ("recipe", "model", "data", "hardware")  # config groups a user's --config-dir may add files to


def config_dirs(argv: Sequence[str]) -> List[Path]:
    """The ``--config-dir``/``-cd`` directories on the command line, in both ``flag DIR`` and ``flag=DIR`` form."""
    dirs = []
    for i, arg in enumerate(argv):
        if arg in ("--config-dir", "-cd") and i + 1 < len(argv):
            dirs.append(Path(argv[i + 1]).expanduser())
        elif arg.startswith(("--config-dir=", "-cd=")):
            dirs.append(Path(arg.split("=", 1)[1]).expanduser())
    return dirs


def choices(argv: Sequence[str]) -> Dict[str, List[str]]:
    """``{group: [option, ...]}`` chosen by overrides such as ``recipe=int8`` or ``model=vit_digits``."""
    out: Dict[str, List[str]] = {}
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq and key.lstrip("+~") in GROUPS and not arg.startswith("-"):
            out.setdefault(key.lstrip("+~"), []).extend(v for v in value.split(",") if v)
    return out


def check_file(path: Path) -> Optional[dict]:
    """``path`` is UTF-8 YAML whose top level is a mapping without duplicate keys; else RecipeError with the line.
    Returns the mapping (None for an empty file)."""
    import yaml

    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise RecipeError(f"recipe file {path}: not UTF-8 text (byte 0x{raw[e.start]:02x} at line {line}); "
                          f"save it as UTF-8 YAML") from None
    if "\x00" in text:
        raise RecipeError(f"recipe file {path}: binary data, not YAML") from None
    try:
        data = yaml.load(text, Loader=_unique_key_loader())
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RecipeError(f"recipe file {path}{where}: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise RecipeError(f"recipe file {path}: {str(e).splitlines()[0]}") from None
    if data is not None and not isinstance(data, dict):
        raise RecipeError(f"recipe file {path}: the top level must be a mapping of keys, got a {type(data).__name__}")
    return data


def check_includes(path: Path, roots: Sequence[Path], seen: Tuple[Path, ...] = ()) -> None:
    """Every file ``path`` includes through its ``defaults:`` list, checked like ``path`` itself, recursively: none
    may climb out of the config directories (``..``) or include itself; a name no directory holds is Hydra's
    to report."""
    here = path.resolve()
    if here in seen:
        raise RecipeError(f"recipe file {path}: its defaults include it again ({' -> '.join(p.name for p in seen)})")
    defaults = (check_file(path) or {}).get("defaults") or []
    if not isinstance(defaults, list):
        raise RecipeError(f"recipe file {path}: 'defaults' must be a list, got a {type(defaults).__name__}")
    for entry in defaults:
        for group, name in _entries(entry):
            if ".." in Path(group, name).parts or "\\" in f"{group}{name}":
                raise RecipeError(f"recipe file {path}: defaults entry {entry!r} climbs out of the config directory")
            if group:  # {/group: name} from the config root, {group: name} beside this file's own group
                base = [r / group.lstrip("/") for r in roots] if group.startswith("/") else [path.parent / group]
            else:
                base = list(roots) if name.startswith("/") else [path.parent]
            name = name.lstrip("/")
            found = next((b / f"{name}.yaml" for b in base if (b / f"{name}.yaml").is_file()), None)
            if found is not None:
                check_includes(found, roots, (*seen, here))


def _entries(entry) -> List[Tuple[str, str]]:
    """``(group, name)`` of a defaults entry: ``name``, ``{group: name}``, ``{override group: name}``."""
    if isinstance(entry, str):
        return [] if entry == "_self_" else [("", entry)]
    if isinstance(entry, dict):
        return [(str(k).split()[-1], str(v)) for k, v in entry.items() if isinstance(v, str)]
    return []


def _unique_key_loader():
    """A safe loader that refuses a key given twice (PyYAML keeps the last one silently)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first at line {seen[key] + 1}); "
                                    f"keys and step labels must be unique", key_node.start_mark)
                seen[key] = key_node.start_mark.line
            return super().construct_mapping(node, deep)

    return Loader


def check_command_line(argv: Sequence[str], builtin: Path) -> None:
    """Every recipe file the command line names, in ``--config-dir`` directories or the built-in ones."""
    dirs = config_dirs(argv)
    for d in dirs:
        if not d.is_dir():
            raise RecipeError(f"--config-dir {str(d)!r}: no such directory")
    for arg in argv:
        key, eq, value = arg.partition("=")
        if eq and key in ("hydra.run.dir", "hydra.sweep.dir"):
            static = value.split("${", 1)[0]  # ${now:...} is resolved by Hydra: check the directory above it
            fixed = static if "${" not in value else static.rpartition("/")[0] + "/" if "/" in static else ""
            if fixed:
                check_writable_dir(Path(fixed).expanduser(), key)
    for group, names in choices(argv).items():
        for name in names:
            for d in [*dirs, builtin]:
                path = d / group / f"{name}.yaml"
                if path.is_file():
                    check_includes(path, [*dirs, builtin])


def check_writable_dir(path: Path, key: str) -> None:
    """``path`` is, or can be made, a directory this process may write (RecipeError naming ``key``)."""
    import os

    existing = next((p for p in [path, *path.absolute().parents] if p.exists()), None)
    if existing is None:
        return
    if not existing.is_dir():
        raise RecipeError(f"{key}={path}: {existing} is a file, not a directory; choose another directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RecipeError(f"{key}={path}: {existing} is not writable; choose a writable directory")


_NOISE = ("full_key:", "reference_type=", "object_type=", "Set the environment variable HYDRA_FULL_ERROR",
          "usage:", "[", "Traceback", "File ", "^")


def composition_error(text: str) -> str:
    """Hydra's or argparse's error text (several lines: usage, keys, a hint) as at most two lines."""
    import re

    made = re.search(r"(?:FileNotFoundError|PermissionError|NotADirectoryError|FileExistsError|OSError): "
                     r"\[Errno \d+\] ([^\n;]+)", text)
    if made and "mkdir" in text:  # Hydra could not create the run (or sweep) directory
        return f"error: cannot create the run directory: {made.group(1).strip()}; choose another with hydra.run.dir=DIR"
    if made and re.search(r"\[Errno (28|27|122)\]", made.group(0)):  # ENOSPC, EFBIG, EDQUOT writing .hydra/
        return (f"error: the run directory is full ({made.group(1).strip()}): free space there or choose another "
                f"with hydra.run.dir=DIR")
    lines = [ln.strip() for ln in text.split("Config search path:")[0].splitlines() if ln.strip()]
    lines = [ln.split(": error: ", 1)[1] if ": error: " in ln else ln for ln in lines]
    kept = [ln for ln in lines if not ln.startswith(_NOISE)] or lines[-1:] or ["the recipe could not be composed"]
    first, rest = kept[0], "; ".join(kept[1:]).replace(":; ", ": ")
    return f"error: {first}" + (f"\n  {rest[:300]}" if rest else "")
