"""Provision a real Triton Inference Server for the smoke test, from PyPI, without touching
the project's environment.

``python -m optimizer.tritonserver.provision`` (CI runs it before pytest; it needs PyPI access):

1. ``pip download nvidia-pytriton`` and *unzip* the wheel (installing it would pin numpy < 2
   into the project's environment); it bundles ``tritonserver`` 2.51 with the python backend.
2. Copy ``python_backend_stubs/<major.minor>/triton_python_backend_stub`` into
   ``backends/python/`` and restore the executable bits the unzip dropped.
3. Create a small venv for the stub (``numpy<2`` and onnxruntime): the stub embeds Python in
   isolated mode, so it ignores ``PYTHONPATH`` and uses the first ``python3`` on ``PATH``;
   with numpy 2 every inference silently returns empty or mis-sized outputs.

Everything lands under ``$OPTIMIZER_TRITON_HOME`` (default ``~/.cache/optimizer/triton``);
a second run finds it there and does nothing."""

import argparse
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PYTRITON = "nvidia-pytriton==0.7.0"  # bundles tritonserver 2.51 (python backend only)
STUB_PACKAGES = ["numpy<2", "onnxruntime"]  # what the generated model.py imports


def home() -> Path:
    """Where the provisioned server lives: ``$OPTIMIZER_TRITON_HOME`` or the user cache."""
    default = Path("~/.cache/optimizer/triton")
    return Path(os.path.expanduser(os.environ.get("OPTIMIZER_TRITON_HOME") or default))


def pyver() -> str:
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def server_dir(root: Path) -> Path:
    return root / "pytriton" / "tritonserver"


def stub_venv(root: Path) -> Path:
    return root / f"stub-venv-{pyver()}"


def _chmod_x(path: Path) -> None:
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def unpack_server(root: Path) -> Path:
    """Download and unzip the wheel, install the stub for this Python; returns the server dir."""
    server = server_dir(root)
    stub = server / "backends" / "python" / "triton_python_backend_stub"
    if (server / "bin" / "tritonserver").exists() and stub.exists():
        return server
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", PYTRITON, "-d", tmp], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        staging = Path(tmp) / "unzipped"
        with zipfile.ZipFile(wheel) as z:
            z.extractall(staging)
        s = staging / "pytriton" / "tritonserver"
        stub = s / "python_backend_stubs" / pyver() / "triton_python_backend_stub"
        if not stub.exists():
            raise SystemExit(f"{PYTRITON} has no python backend stub for Python {pyver()}")
        shutil.copy(stub, s / "backends" / "python" / "triton_python_backend_stub")
        for exe in [s / "bin" / "tritonserver", s / "backends" / "python" / "triton_python_backend_stub"]:
            _chmod_x(exe)
        if (root / "pytriton").exists():
            shutil.rmtree(root / "pytriton")
        shutil.move(str(staging / "pytriton"), root / "pytriton")
        shutil.move(str(staging / "nvidia_pytriton.libs"), root / "pytriton" / "libs")
    return server


def make_stub_venv(root: Path) -> Path:
    """A venv of this Python version with numpy < 2 and onnxruntime, for the python backend stub."""
    venv = stub_venv(root)
    marker = venv / ".complete"
    if marker.exists():
        return venv
    if venv.exists():
        shutil.rmtree(venv)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", *STUB_PACKAGES], check=True)
    marker.write_text("ok\n")
    return venv


def provision(root: Path) -> Path:
    """Everything the smoke test needs under ``root``; idempotent."""
    root.mkdir(parents=True, exist_ok=True)
    unpack_server(root)
    make_stub_venv(root)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m optimizer.tritonserver.provision",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None, help="target directory (default: $OPTIMIZER_TRITON_HOME)")
    args = parser.parse_args()
    root = provision(args.home or home())
    print(f"tritonserver ready under {root}")


if __name__ == "__main__":
    main()
