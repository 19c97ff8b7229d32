#!/usr/bin/env bash
# Source from .ci/run after the project is installed and before pytest:
#   . .ci/provision_triton.sh
# Unpacks the real tritonserver bundled in the nvidia-pytriton wheel (PyPI) and a small venv for its
# python backend stub under $OPTIMIZER_TRITON_HOME (kept between CI runs when that directory is cached),
# and makes the smoke tests in tests/test_triton_server.py fail rather than skip if that did not work.
export OPTIMIZER_TRITON_HOME="${OPTIMIZER_TRITON_HOME:-$HOME/.cache/optimizer/triton}"
python -m optimizer.tritonserver.provision
export OPTIMIZER_TRITON_REQUIRED=1
