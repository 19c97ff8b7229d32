"""The built wheel carries the recipes and the Triton templates: installed non-editable into a fresh venv, the
tool lists its recipes and runs one from an empty directory (no source tree in sight)."""

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import FAST, ROOT

SOURCES = ["pyproject.toml", "setup.py", "README.md", "optimizer", "recipes", "model_repository_templates"]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A wheel built from a copy of the source (the checkout gets no build/ folder), installed into a venv that
    sees the running interpreter's site-packages through a .pth file (torch and the rest are not re-installed).
    Not ``--system-site-packages``: from inside a venv (``.ci/run``'s) that would be the base Python's
    site-packages, empty on a fresh machine. About 5 s."""
    root = tmp_path_factory.mktemp("wheel")
    src, dist, venv = root / "src", root / "dist", root / "venv"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip"]
    subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(src)],
                   check=True, cwd=root, capture_output=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    wheel = next(dist.glob("optimizer-*.whl"))
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    target = subprocess.run([str(venv / "bin" / "python"), "-c", purelib], check=True, capture_output=True,
                            text=True).stdout.strip()
    subprocess.run([*pip, "install", "-q", "--no-deps", "--no-index", "--target", target, str(wheel)],
                   check=True, capture_output=True)
    # Plain path lines, appended after the venv's own site-packages (the wheel wins) and without running the
    # running env's .pth files, so an editable install of the checkout stays out of sight.
    (Path(target) / "running-env.pth").write_text("".join(f"{path}\n" for path in running_site_packages()))
    empty = root / "empty"
    empty.mkdir()
    return wheel, venv / "bin" / "python", empty


def running_site_packages() -> list[str]:
    """The site-packages directories of the interpreter running the tests (its venv's, not the base Python's)."""
    paths = site.getsitepackages() + ([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])
    return [path for path in dict.fromkeys(paths) if Path(path).is_dir()]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed package, not the checkout
    return {**env, **extra}


def test_wheel_contains_recipes_and_templates(installed):
    names = set(zipfile.ZipFile(installed[0]).namelist())
    for path in (ROOT / "recipes").rglob("*.yaml"):
        assert f"optimizer/_recipes/{path.relative_to(ROOT / 'recipes').as_posix()}" in names
    for path in (ROOT / "model_repository_templates").glob("*.pbtxt"):
        assert f"optimizer/_templates/{path.name}" in names
    for path in (ROOT / "optimizer" / "triton" / "schemas").glob("*.json"):  # package data: the CRD schemas
        assert f"optimizer/triton/schemas/{path.name}" in names


def test_installed_package_lists_its_recipes(installed):
    _, python, empty = installed
    where = subprocess.run([str(python), "-c", "import optimizer.resources as r; print(r.RECIPES); print(r.TEMPLATES)"],
                           cwd=empty, env=_env(), capture_output=True, text=True, check=True).stdout.split()
    assert all("site-packages" in w and "/optimizer/_" in w for w in where), where
    proc = subprocess.run([str(python), "-m", "optimizer", "list"], cwd=empty, env=_env(), capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert "  int8: export -> fuse -> static INT8" in proc.stdout
    assert "  quantize  (onnx -> onnx)" in proc.stdout and "aws_c7i_large: aws-c7i.large" in proc.stdout


def test_installed_package_runs_a_recipe_from_an_empty_directory(installed, cache_dir, builtin):
    """The slowest part (about 30-60 s on 2 cores): a FAST baseline run with the Triton repository emitted."""
    _, python, empty = installed
    proc = subprocess.run(
        [str(python), "-m", "optimizer", "recipe=baseline", *FAST, "triton.emit=true", "serving.max_batch_cap=4",
         "serving.thread_options=[1]", "hydra.run.dir=run"],
        cwd=empty, env=_env(OPTIMIZER_CACHE_DIR=str(cache_dir)), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    config = empty / "run" / "model_repository" / "digits_resnet" / "config.pbtxt"
    assert 'platform: "onnxruntime_onnx"' in config.read_text()
    assert (empty / "run" / "summary.json").is_file()
