"""Every numeric setting checked at plan time: finite (no nan, no inf anywhere in the recipe, pass options
included) and within its domain, with the key in the message. Checks that need more than one key live with the
stage that reads them (cost, serving); this table holds the single-key ranges no other check covers."""

import math
import re
from dataclasses import fields, is_dataclass
from enum import Enum
from typing import Any, Callable, Iterator, Tuple

from optimizer.errors import RecipeError

MAX_OVERLOAD_FACTOR = 10.0  # past 10x capacity a probe measures nothing but rejections
MAX_TIMEOUT_SECONDS = 600.0

Rule = Tuple[str, Callable[[Any], bool], str]
RULES: Tuple[Rule, ...] = (
    ("seed", lambda v: 0 <= v < 2 ** 32, "an integer in [0, 2**32)"),
    ("data.max_length", lambda v: v >= 1, "at least 1 token"),
    ("tracking.timeout_seconds", lambda v: 0 < v <= MAX_TIMEOUT_SECONDS, f"in (0, {MAX_TIMEOUT_SECONDS:g}] seconds"),
    ("triton.smoke_concurrency", lambda v: len(v) > 0 and all(c >= 1 for c in v), "a non-empty list of counts ≥ 1"),
    ("triton.smoke_requests", lambda v: v >= 1, "at least 1"),
    ("triton.smoke_seconds", lambda v: v > 0, "positive"),
    ("triton.capacity_seconds", lambda v: v > 0, "positive"),
    ("triton.overload_factor", lambda v: 1 < v <= MAX_OVERLOAD_FACTOR, f"in (1, {MAX_OVERLOAD_FACTOR:g}]"),
    ("triton.overload_seconds", lambda v: v > 0, "positive"),
    ("triton.response_cache_mb", lambda v: v >= 1, "at least 1"),
    ("kubernetes.prometheus_url", lambda v: re.fullmatch(r"https?://[^\s/]+(/\S*)?", v) is not None,
     "an http:// or https:// URL of the Prometheus server (kubernetes.autoscaler=keda queries it)"),
)


def numbers(value: Any, key: str) -> Iterator[Tuple[str, float]]:
    """``(key, number)`` for every int or float in a config tree (dataclasses, mappings, lists)."""
    if isinstance(value, bool) or isinstance(value, (str, Enum)) or value is None:
        return
    if isinstance(value, (int, float)):
        yield key, value
    elif is_dataclass(value):
        for f in fields(value):
            yield from numbers(getattr(value, f.name), f"{key}.{f.name}" if key else f.name)
    elif hasattr(value, "items"):
        for k, v in value.items():
            yield from numbers(v, f"{key}.{k}" if key else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from numbers(v, f"{key}[{i}]")


def check_finite(value: Any, key: str = "") -> None:
    """RecipeError naming the first setting under ``key`` that is nan or infinite."""
    for where, number in numbers(value, key):
        if isinstance(number, float) and not math.isfinite(number):
            raise RecipeError(f"{where} must be a finite number, got {number}")


def lookup(cfg: Any, key: str) -> Any:
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


def check_ranges(cfg: Any) -> None:
    """RecipeError naming the first setting of ``RULES`` outside its domain."""
    for key, ok, need in RULES:
        value = lookup(cfg, key)
        if not ok(value):
            shown = list(value) if not isinstance(value, str) and hasattr(value, "__len__") else value
            raise RecipeError(f"{key} must be {need}, got {shown}")


def check_registered_name(tracking: Any) -> None:
    """MLflow refuses a registered model name with '/' or ':' (and loses the whole record then): say so now."""
    name = tracking.registered_model
    if name and (any(c in name for c in "/:") or name.strip() != name or name in (".", "..")):
        raise RecipeError(f"tracking.registered_model {name!r}: an MLflow registered model name cannot contain "
                          f"'/' or ':', nor be '.', '..' or padded with spaces")
