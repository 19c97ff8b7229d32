"""Resolve ``pkg.mod:fn`` strings given in recipes."""

import importlib
from typing import Callable

from optimizer.errors import RecipeError


def resolve(spec: str, what: str) -> Callable:
    """Import ``pkg.mod`` and return its attribute ``fn``; ``what`` names the recipe key."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise RecipeError(f"{what} {spec!r}: expected a factory written as 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or any error raised while importing the user's module
        raise RecipeError(f"{what} {spec!r}: cannot import module {module_name!r} ({type(e).__name__}: {e})") from e
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise RecipeError(f"{what} {spec!r}: module {module_name!r} has no callable {attr!r}")
    return fn
