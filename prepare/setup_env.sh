#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv.
#
#   bash prepare/setup_env.sh            # idempotent: returns at once when .venv matches requirements
#   PYTHON=python3.11 bash prepare/setup_env.sh
#
# The venv is rebuilt from scratch whenever requirements.txt or pyproject.toml change (a hash of both is
# stored in .venv/.requirements.sha256). GPU nodes add flash-attn afterwards, see requirements-gpu.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
python_bin=${PYTHON:-python3}
stamp=.venv/.requirements.sha256
wanted=$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && .venv/bin/python -c "import torch, models" 2>/dev/null; then
  exit 0
fi
echo "setup_env: building .venv from requirements.txt (first time: about 2 minutes)" >&2
rm -rf .venv
"$python_bin" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements.txt
.venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
echo "$wanted" > "$stamp"
echo "setup_env: .venv ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))" >&2
