"""Where the built-in recipes and Triton templates are: inside the installed package (a wheel carries them as
``optimizer/_recipes`` and ``optimizer/_templates``, see setup.py), else the top of a source checkout."""

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def _located(packaged: str, source: str) -> Path:
    inside = PACKAGE / packaged
    return inside if inside.is_dir() else PACKAGE.parent / source


RECIPES = _located("_recipes", "recipes")  # config.yaml + groups recipe/ model/ data/ hardware/
TEMPLATES = _located("_templates", "model_repository_templates")  # one <platform>.pbtxt per Triton platform
