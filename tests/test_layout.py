"""The floor plan, enforced by reading the source (``ast``; nothing is imported): no import cycle in
``optimizer/`` (imports inside functions count), lower floors never import higher ones (the registry's pass
discovery is the one exception), no private name (``_x``) used outside its module (tests included), no
module over 300 lines and no function over 60.

The floors, lowest first, are ``FLOORS``; a new module needs a place there."""

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple


ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "optimizer"

# Floors, lowest first: a module may import its own floor and those below, never one above.
FLOORS: List[Tuple[str, ...]] = [
    ("optimizer", "optimizer.errors", "optimizer.io", "optimizer.files", "optimizer.config", "optimizer.console",
     "optimizer.gpu", "optimizer.host", "optimizer.resources", "optimizer.factory", "optimizer.artifact", "optimizer.integrity",
     "optimizer.cache", "optimizer.evaluate"),
    ("optimizer.formats",),
    ("optimizer.sources",),
    ("optimizer.registry", "optimizer.passes"),
    ("optimizer.recipe",),
    ("optimizer.measure",),
    ("optimizer.decide", "optimizer.records", "optimizer.targets"),
    ("optimizer.record",),
    ("optimizer.tritonserver",),
    ("optimizer.triton",),
    ("optimizer.chain", "optimizer.search"),
    ("optimizer.pipeline", "optimizer.job", "optimizer.__main__"),
]
EXCEPTIONS = {("optimizer.registry", "optimizer.passes")}  # load_passes imports every pass module
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 300, 60


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources(root: Path) -> Dict[str, Path]:
    return {module_name(p): p for p in sorted(root.rglob("*.py"))}


MODULES = sources(PACKAGE)


def floor(name: str) -> int:
    best = (-1, 0)  # (length of the matching prefix, floor)
    for i, names in enumerate(FLOORS):
        for prefix in names:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best[0]:
                best = (len(prefix), i)
    return best[1]


def imported(tree: ast.AST, here: str, known: Dict[str, Path]) -> Iterator[Tuple[str, ast.AST]]:
    """``(module, node)`` for every import of a known module anywhere in ``tree`` (inside functions too);
    ``from pkg import mod`` names the submodule."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    yield alias.name, node
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, one level up per extra dot
                is_package = here in known and known[here].name == "__init__.py"
                parts = here.split(".")[: len(here.split(".")) - node.level + is_package]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in known:
                    yield sub, node
                elif base in known:
                    yield base, node


def graph() -> Dict[str, Set[str]]:
    edges = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        edges[name] = {m for m, _ in imported(tree, name, MODULES) if m != name}
    return edges


def cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle():
    found = cycles(graph())
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_lower_floors_never_import_higher_ones():
    bad = sorted(f"{a} (floor {floor(a)}) imports {b} (floor {floor(b)})" for a, targets in graph().items()
                 for b in targets if floor(b) > floor(a)
                 and not any(a.startswith(x) and b.startswith(y) for x, y in EXCEPTIONS))
    assert not bad, "\n".join(bad)


def test_every_module_has_a_floor():
    unplaced = [m for m in MODULES if not any(m == p or m.startswith(p + ".") for f in FLOORS for p in f)]
    assert not unplaced, f"give these modules a floor in FLOORS: {unplaced}"


def private_uses(path: Path, here: str, known: Dict[str, Path]) -> Iterator[str]:
    """Private names of other modules that ``path`` imports or reads as a module attribute."""
    tree = ast.parse(path.read_text())
    aliases = {}  # local name -> module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    aliases[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom):
            for module in {m for m, _ in imported(ast.Module([node], []), here, known)}:
                for alias in node.names:
                    if module.endswith("." + alias.name):
                        aliases[alias.asname or alias.name] = module
                    elif alias.name.startswith("_") and not alias.name.startswith("__") and module != here:
                        yield f"{here}:{node.lineno} imports {module}.{alias.name}"
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name) and aliases.get(node.value.id, here) != here):
            yield f"{here}:{node.lineno} reads {aliases[node.value.id]}.{node.attr}"


def test_no_private_name_outside_its_module():
    known = {**MODULES, **sources(ROOT / "tests")}
    bad = [use for name, path in known.items() for use in private_uses(path, name, known)]
    assert not bad, "\n".join(bad)


def long_functions(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                yield f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {lines} lines"


def test_modules_and_functions_are_small():
    mine = list(MODULES.items())
    big = [f"{p.relative_to(ROOT)}: {n} lines" for _, p in mine
           if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES]
    long = [f for _, p in mine for f in long_functions(p)]
    assert not big + long, "\n".join(big + long)
