"""Ship the top-level ``recipes/`` and ``model_repository_templates/`` inside the built package.

They stay at the top of the source tree, where users read and copy them; a wheel (and a non-editable
install) carries them as ``optimizer/_recipes`` and ``optimizer/_templates`` (see optimizer/resources.py).
Everything else is configured in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA = {"recipes": "_recipes", "model_repository_templates": "_templates"}  # source folder -> package folder


class BuildWithData(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads them from the source tree
            return
        for src, dst in DATA.items():
            target = Path(self.build_lib) / "optimizer" / dst
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(ROOT / src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": BuildWithData})
