"""Compose a recipe without the command line (tests, experiments, notebooks)."""

from pathlib import Path
from typing import Sequence

from optimizer.resources import RECIPES


def available(dirs: Sequence[Path] = ()) -> list:
    """Names of the recipes under ``recipes/recipe`` and under ``<dir>/recipe`` of each ``--config-dir``."""
    return sorted({p.stem for d in (RECIPES, *map(Path, dirs)) for p in (d / "recipe").glob("*.yaml")})


def compose(recipe: str = "int8", overrides: Sequence[str] = (), dirs: Sequence[Path] = ()):
    """The typed ``OptimizerConfig`` that ``python -m optimizer recipe=<recipe> <overrides>`` would run;
    ``dirs`` are the command line's ``--config-dir`` directories (searched before the built-in recipes)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    from optimizer.config import register_schema

    register_schema()
    with initialize_config_dir(config_dir=str(RECIPES), version_base="1.3"):
        search = [f"hydra.searchpath=[{','.join(f'file://{Path(d).resolve()}' for d in dirs)}]"] if dirs else []
        dcfg = hydra_compose(config_name="config", overrides=[*search, f"recipe={recipe}", *overrides])
    return OmegaConf.to_object(dcfg)
