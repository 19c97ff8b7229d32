"""Resolve ``pkg.mod:fn`` strings given in recipes, under the factory rule.

The rule is checked on the module's *name*, before anything is imported: a factory's module may not be
part of the standard library (``sys.stdlib_module_names``), ``builtins`` or ``__main__`` (``os:system``
would run a shell command); a recipe can narrow it further with ``model.allow_factories`` (when given, a
factory must match one pattern) and ``model.deny_factories`` (a factory matching one is refused). The
tool's own built-in factories always pass. Patterns are shell-style (``mypkg.*``) and match the module
name or the whole ``module:function``."""

import fnmatch
import importlib
import sys
from dataclasses import dataclass
from typing import Callable, Iterable, Optional, Tuple

from optimizer.errors import RecipeError

# factories the tool ships; kept in sync with sources/builtin.py (BUILTINS) and sources/hf_dir.py
BUILTIN_FACTORIES = frozenset({"optimizer.sources.builtin:digits_resnet", "optimizer.sources.vit:vit_digits"})
HF_FACTORY = "optimizer.sources.hf:load_module"


@dataclass(frozen=True)
class Rule:
    allow: Tuple[str, ...] = ()  # when non-empty, a factory must match one of these patterns
    deny: Tuple[str, ...] = ()  # a factory matching one of these is refused

    @classmethod
    def of(cls, model_cfg) -> "Rule":
        """The rule a recipe's ``model`` section sets (``allow_factories``, ``deny_factories``)."""
        return cls(tuple(getattr(model_cfg, "allow_factories", None) or ()),
                   tuple(getattr(model_cfg, "deny_factories", None) or ()))


def _matches(patterns: Iterable[str], module: str, spec: str) -> bool:
    return any(fnmatch.fnmatchcase(module, p) or fnmatch.fnmatchcase(spec, p) for p in patterns)


def check(spec: str, what: str, rule: Optional[Rule] = None) -> Tuple[str, str]:
    """``(module, function)`` of ``spec`` when the rule allows it; RecipeError naming ``what`` otherwise.

    Nothing is imported: the module is judged by its name."""
    rule = rule or Rule()
    module, sep, attr = str(spec).partition(":")
    if not sep or not module or not attr:
        raise RecipeError(f"{what} {spec!r}: expected a factory written as 'package.module:function'")
    if not attr.isidentifier() or not all(part.isidentifier() for part in module.split(".")):
        raise RecipeError(f"{what} {spec!r}: 'package.module:function' must be dotted Python names")
    if spec in BUILTIN_FACTORIES or spec == HF_FACTORY:
        return module, attr
    top = module.split(".")[0]
    if top in sys.stdlib_module_names or top in ("builtins", "__main__"):
        raise RecipeError(f"{what} {spec!r}: factory rule: a factory may not come from the standard library "
                          f"or builtins (module {top!r}); name a function of your own package")
    if _matches(rule.deny, module, spec):
        raise RecipeError(f"{what} {spec!r}: factory rule: refused by model.deny_factories {list(rule.deny)}")
    if rule.allow and not _matches(rule.allow, module, spec):
        raise RecipeError(f"{what} {spec!r}: factory rule: not in model.allow_factories {list(rule.allow)}")
    return module, attr


def resolve(spec: str, what: str, rule: Optional[Rule] = None) -> Callable:
    """Check ``spec`` against the rule, then import ``pkg.mod`` and return its attribute ``fn``; ``what``
    names the recipe key."""
    module_name, attr = check(spec, what, rule)
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or any error raised while importing the user's module
        raise RecipeError(f"{what} {spec!r}: cannot import module {module_name!r} ({type(e).__name__}: {e})") from e
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise RecipeError(f"{what} {spec!r}: module {module_name!r} has no callable {attr!r}")
    return fn

