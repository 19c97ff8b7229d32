"""Compose a recipe without the command line (tests, experiments, notebooks)."""

from typing import Sequence

from optimizer.resources import RECIPES


def available() -> list:
    """Names of the recipes under ``recipes/recipe``."""
    return sorted(p.stem for p in (RECIPES / "recipe").glob("*.yaml"))


def compose(recipe: str = "int8", overrides: Sequence[str] = ()):
    """The typed ``OptimizerConfig`` that ``python -m optimizer recipe=<recipe> <overrides>`` would run."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from optimizer.config import register_schema

    register_schema()
    with initialize_config_dir(config_dir=str(RECIPES), version_base="1.3"):
        dcfg = hydra_compose(config_name="config", overrides=[f"recipe={recipe}", *overrides])
    return OmegaConf.to_object(dcfg)
