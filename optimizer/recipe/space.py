"""The search space: ``search.space`` maps ``<label>`` (a whole step: null drops it, true keeps it as the recipe has
it, a mapping replaces its options), ``<label>.<option>``, or ``hardware.<option>`` (a session option of the trial's
variant: ``config.RUNTIME_OPTIONS``; its chain is unchanged, so it shares the cache) to the values to try. A trial is one value per key
applied to the recipe's ``passes``; the recipe's own chain is trial 0 (the incumbent). Every key and value is
planned at plan time, so a mistake is exit 2 naming ``search.space.<key>`` before anything runs."""

import copy
from dataclasses import replace
from typing import Any, Dict, List, Mapping, Tuple

from optimizer.errors import RecipeError


def apply(passes: Mapping[str, Any], params: Mapping[str, Any]) -> Dict[str, Any]:
    """``passes`` with a trial's ``params`` applied (an option of a dropped step does not apply)."""
    out = copy.deepcopy(dict(passes))
    for key, value in params.items():
        label, _, option = key.partition(".")
        if label == HARDWARE:
            continue
        if not option:
            if value is None or value is False:
                out[label] = None
            elif isinstance(value, Mapping):
                out[label] = {"type": (out.get(label) or passes[label])["type"], **copy.deepcopy(dict(value))}
        elif out.get(label) is not None:
            out[label] = {**out[label], option: copy.deepcopy(value)}
    return out


HARDWARE = "hardware"  # hardware.<option>: a runtime option, not a step


def runtime(params: Mapping[str, Any], hw=None) -> Dict[str, Any]:
    """A trial's session options, ``{option: value}``, from its ``hardware.<option>`` parameters; given the hardware
    entry ``hw``, only those that differ from the entry's (a trial that sets the entry's own value is the same)."""
    from optimizer.formats import with_runtime

    out = {k.partition(".")[2]: v for k, v in params.items() if k.partition(".")[0] == HARDWARE}
    if hw is not None:
        out = {k: v for k, v in out.items() if getattr(with_runtime(hw, {k: v}), k) != getattr(hw, k)}
    return out


def _container(value):
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _flat(space: Mapping, prefix: str = ""):
    """``(key, values)`` pairs, nested mappings joined with dots (``search.space.quantize.mode=[...]`` on the command
    line nests ``mode`` under ``quantize``)."""
    for key, value in space.items():
        if isinstance(value, Mapping):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def check(cfg) -> Dict[str, List[Any]]:
    """The space as plain lists, every key and value checked against the recipe (RecipeError naming the key)."""
    from optimizer.recipe.plan import plan

    s = cfg.search
    for key, value, ok, need in (("max_trials", s.max_trials, s.max_trials >= 1, "at least 1"),
                                 ("max_minutes", s.max_minutes, s.max_minutes > 0, "positive"),
                                 ("finalists", s.finalists, s.finalists >= 1, "at least 1")):
        if not ok:
            raise RecipeError(f"search.{key}={value}: must be {need}")
    passes = {k: _container(v) for k, v in (cfg.passes or {}).items()}
    space = dict(_flat(_container(s.space)))
    for key, values in space.items():
        label = key.partition(".")[0]
        if label == HARDWARE:
            _check_runtime(cfg, key, values)
            continue
        if label not in passes or passes[label] is None:
            raise RecipeError(f"search.space.{key}: the recipe has no step {label!r}; its steps are "
                              f"{[k for k, v in passes.items() if v is not None]}")
        if not isinstance(values, list) or not values:
            raise RecipeError(f"search.space.{key}: give a non-empty list of values to try, got {values!r}")
        for value in values:
            try:
                plan(replace(cfg, passes=apply(passes, {key: value})))
            except RecipeError as e:
                raise RecipeError(f"search.space.{key}: {value!r} does not plan: {e}") from None
    for n, params in enumerate(s.incumbents):
        flat = dict(_flat(_container(params)))
        try:
            plan(replace(cfg, passes=apply(passes, flat)))
        except (RecipeError, KeyError, TypeError) as e:
            raise RecipeError(f"search.incumbents[{n}]: {flat!r} does not plan: {e}") from None
    return space


def _check_runtime(cfg, key: str, values) -> None:
    from optimizer.formats import RUNTIME_OPTIONS, with_runtime

    option = key.partition(".")[2]
    if option not in RUNTIME_OPTIONS:
        raise RecipeError(f"search.space.{key}: a trial may set only the runtime options "
                          f"{['hardware.' + o for o in RUNTIME_OPTIONS]}")
    if not isinstance(values, list) or not values:
        raise RecipeError(f"search.space.{key}: give a non-empty list of values to try, got {values!r}")
    for value in values:
        try:
            with_runtime(cfg.hardware, {option: value})
        except (ValueError, TypeError) as e:
            raise RecipeError(f"search.space.{key}: {value!r} is not a value of {option}: {e}") from None


def fit_source(cfg) -> Tuple[Any, List[str]]:
    """A search recipe on a source its torch-only steps cannot take (``prune`` on an ONNX file): those steps are left
    out of the chain, the space and the incumbents, so one ``auto`` recipe serves every source; the labels left out."""
    from optimizer.registry import load_passes
    from optimizer.sources.models import source_format

    if not cfg.search.space or source_format(cfg.model.source) == "torch":
        return cfg, []
    specs = load_passes()
    passes = {k: _container(v) for k, v in (cfg.passes or {}).items()}
    drop = [k for k, v in passes.items() if isinstance(v, Mapping) and v.get("type") in specs
            and specs[v["type"]].takes == specs[v["type"]].makes == "torch"]
    if not drop:
        return cfg, []
    keep = lambda params: {k: v for k, v in dict(_flat(_container(params))).items()  # noqa: E731
                           if k.partition(".")[0] not in drop}
    search = replace(cfg.search, space=keep(cfg.search.space), incumbents=[keep(p) for p in cfg.search.incumbents])
    return replace(cfg, passes={k: None if k in drop else v for k, v in passes.items()}, search=search), drop


def incumbents(cfg) -> List[Dict[str, Any]]:
    """The hand recipes run first, as flat ``{key: value}`` trials."""
    return [dict(_flat(_container(p))) for p in cfg.search.incumbents]


def signature(steps) -> Tuple:
    """What makes two trials the same chain: their steps' labels, passes and options."""
    from dataclasses import asdict

    return tuple((s.label, s.spec.name, repr(sorted(asdict(s.config).items()))) for s in steps)
