"""``python -m optimizer list`` and ``python -m optimizer explain recipe=<name> [overrides]``: what the tool
offers (recipes, passes with every option, hardware entries) and what a recipe would run, without running it."""

import inspect
import re
from dataclasses import MISSING, fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Dict, List, Sequence

from optimizer.resources import RECIPES

SECTIONS = ("recipes", "passes", "hardware")


def field_comments(cls: type) -> Dict[str, str]:
    """``{field: comment}`` from the ``name: type = default  # comment`` lines of a dataclass's source."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    out = {}
    for m in re.finditer(r"^\s+(\w+)\s*:[^#\n]*#\s*(.+)$", source, re.M):
        out.setdefault(m.group(1), m.group(2).strip())
    return out


def _text(value) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if value == "":
        return '""'
    return "null" if value is None else str(value)


def options(cls: type, instance=None) -> List[Dict[str, str]]:
    """Every field of a config dataclass: name, type, default, value (of ``instance``) and comment."""
    comments = field_comments(cls)
    rows = []
    for f in fields(cls):
        default = f.default if f.default is not MISSING else (
            f.default_factory() if f.default_factory is not MISSING else None)
        t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        comment = comments.get(f.name, "")
        if isinstance(f.type, type) and issubclass(f.type, Enum):
            comment = f"[{'|'.join(str(m.value) for m in f.type)}] {comment}".strip()
        row = {"name": f.name, "type": str(t).replace("typing.", ""), "default": _text(default), "comment": comment}
        if instance is not None:
            row["value"] = _text(getattr(instance, f.name))
        rows.append(row)
    return rows


def recipes(dirs: Sequence[Path] = ()) -> List[Dict]:
    """Each recipe (built-in, and in the ``--config-dir`` directories): name, description, chain of
    ``label (pass type)``."""
    from optimizer.recipe.compose import available, compose

    out = []
    for name in available(dirs):
        cfg = compose(name, dirs=dirs)
        chain = [f"{label} ({entry['type']})" for label, entry in (cfg.passes or {}).items() if entry]
        out.append({"name": name, "description": cfg.description, "chain": chain})
    return out


def passes() -> List[Dict]:
    from optimizer.registry import load_passes

    return [{"name": s.name, "takes": s.takes, "makes": s.makes, "doc": (s.fn.__doc__ or "").strip().split("\n")[0],
             "options": options(s.config_cls)} for s in sorted(load_passes().values(), key=lambda s: s.name)]


def hardware(dirs: Sequence[Path] = ()) -> List[Dict]:
    from omegaconf import OmegaConf

    out = []
    entries = {p.stem: p for d in (RECIPES, *map(Path, dirs)) for p in (d / "hardware").glob("*.yaml")}
    for path in sorted(entries.values(), key=lambda p: p.stem):
        h = OmegaConf.to_container(OmegaConf.load(path))
        out.append({"entry": path.stem, **{k: h.get(k) for k in (
            "name", "device", "cores", "gpu", "price_per_hour", "price_source", "price_date")}})
    return out


def _option_lines(rows: List[Dict], indent: str, with_value: bool = False) -> List[str]:
    width = max((len(r["name"]) for r in rows), default=0)
    lines = []
    for r in rows:
        shown = r["value"] if with_value else r["default"]
        mark = "" if not with_value or r["value"] == r["default"] else f"   (default {r['default']})"
        lines.append(f"{indent}{r['name']:<{width}} = {shown}{mark}" + (f"   # {r['comment']}" if r["comment"] else ""))
    return lines


def list_text(section: str = "", dirs: Sequence[Path] = ()) -> str:
    """The text of ``python -m optimizer list [recipes|passes|hardware]``."""
    lines: List[str] = []
    if section in ("", "recipes"):
        lines.append("Recipes (python -m optimizer recipe=<name>; "
                     "explain one: python -m optimizer explain recipe=<name>)")
        for r in recipes(dirs):
            lines += [f"  {r['name']}: {r['description']}", f"      chain: {' -> '.join(r['chain']) or '(none)'}"]
        lines.append("")
    if section in ("", "passes"):
        lines.append("Passes (recipe key passes.<step>.<option>; every option with its default)")
        for p in passes():
            lines.append(f"  {p['name']}  ({p['takes']} -> {p['makes']})" + (f": {p['doc']}" if p["doc"] else ""))
            lines += _option_lines(p["options"], "      ")
        lines.append("")
    if section in ("", "hardware"):
        lines.append("Hardware (hardware=<entry>)")
        for h in hardware(dirs):
            price = (f"${h['price_per_hour']}/h ({h['price_source']}, {h['price_date']})"
                     if h["price_per_hour"] is not None else "no price (no cost figures)")
            kind = h["gpu"] or f"{h['cores']} cores"
            lines.append(f"  {h['entry']}: {h['name']}, {h['device']}, {kind}, {price}")
    return "\n".join(lines).rstrip() + "\n"


def explain_text(recipe: str, overrides: Sequence[str] = (), dirs: Sequence[Path] = ()) -> str:
    """The text of ``python -m optimizer explain recipe=<name> [overrides]``: the planned chain with every
    resolved option, and the settings that decide the outcome. Nothing is loaded or run."""
    from optimizer.recipe.plan import plan
    from optimizer.recipe.compose import compose

    from optimizer.recipe.space import fit_source

    cfg, dropped = fit_source(compose(recipe, overrides, dirs))
    steps = plan(cfg)
    lines = [f"recipe {recipe}: {cfg.description}" + (f"  (overrides: {' '.join(overrides)})" if overrides else ""),
             *([f"left out for this source (torch only): {', '.join(dropped)}"] if dropped else []),
             f"model {cfg.model.source} ({cfg.model.name}), data {cfg.data.source}, hardware {cfg.hardware.name}",
             "", "Chain:"]
    for i, s in enumerate(steps, 1):
        lines.append(f"  {i}. {s.label}: {s.spec.name} ({s.spec.takes} -> {s.spec.makes})")
        lines += _option_lines(options(s.spec.config_cls, s.config), "       ", with_value=True)
    if not steps:
        lines.append("  (no steps: only the reference is measured)")
    if cfg.search.space:
        from optimizer.recipe.space import check

        space, s = check(cfg), cfg.search
        n = 1
        for values in space.values():
            n *= len(values)
        lines += ["", f"Search ({s.sampler.value}, {n} combinations, at most {s.max_trials} trials and {s.max_minutes:g} "
                      f"minutes; trial 0 is the chain above; {s.finalists} finalists measured together):"]
        whole = {None: "drop the step", True: "as above"}
        lines += [f"  {key}: {', '.join(whole[v] if '.' not in key and v in (None, True) else repr(v) for v in values)}"
                  for key, values in space.items()]
    for section in ("constraints", "gates", "benchmark", "evaluation", "serving", "triton", "tracking"):
        value = getattr(cfg, section, None)
        if is_dataclass(value):
            lines += ["", f"{section}:"] + _option_lines(options(type(value), value), "  ", with_value=True)
    lines += ["", f"objective: {cfg.objective.value}", "nothing was run; drop 'explain' to run it"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str]) -> int:
    """Dispatch ``list`` / ``explain``; returns the exit code."""
    import sys

    from optimizer.errors import EXIT_RECIPE, OptimizerError

    from optimizer.recipe.files import config_dirs

    command, dirs = argv[0], config_dirs(argv)
    rest = [a for i, a in enumerate(argv[1:], 1) if not a.startswith(("--config-dir", "-cd"))
            and argv[i - 1] not in ("--config-dir", "-cd")]  # the user's recipe directories, as Hydra takes them
    missing = [str(d) for d in dirs if not d.is_dir()]
    try:
        if missing:
            print(f"error: --config-dir {missing[0]} is not a directory", file=sys.stderr)
            return EXIT_RECIPE
        if command == "list":
            if rest and rest[0] not in SECTIONS:
                print(f"error: list takes one of {', '.join(SECTIONS)}, got {rest[0]!r}", file=sys.stderr)
                return EXIT_RECIPE
            print(list_text(rest[0] if rest else "", dirs), end="")
            return 0
        recipe = next((a.split("=", 1)[1] for a in rest if a.startswith("recipe=")), "int8")
        from optimizer.recipe.compose import available

        if recipe not in available(dirs):
            print(f"error: unknown recipe {recipe!r}; available: {', '.join(available(dirs))}", file=sys.stderr)
            return EXIT_RECIPE
        print(explain_text(recipe, [a for a in rest if not a.startswith("recipe=")], dirs), end="")
        return 0
    except OptimizerError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except Exception as e:  # Hydra's composition errors: a bad override or an unknown recipe
        from optimizer.errors import one_line

        print(f"error: {one_line(e)}", file=sys.stderr)
        return EXIT_RECIPE
