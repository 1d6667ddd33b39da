#!/usr/bin/env bash
# Refreshes the lock files from pyproject.toml's version ranges: every package the two README
# commands install, pinned with its hashes. Run after changing a dependency, commit the result.
#   scripts/lock.sh              keep the locked versions that still satisfy the ranges
#   scripts/lock.sh --upgrade    take the newest versions the ranges allow
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x .venv/bin/pip-compile ]] || .venv/bin/python -m pip install -q "pip-tools>=7.4"
common=(--quiet --generate-hashes --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links "$@")
.venv/bin/pip-compile "${common[@]}" --output-file requirements/runtime.lock pyproject.toml
.venv/bin/pip-compile "${common[@]}" --extra dev --output-file requirements/dev.lock pyproject.toml
echo "wrote requirements/runtime.lock and requirements/dev.lock"
