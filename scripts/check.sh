#!/usr/bin/env bash
# What CI checks, in its order: format, lint, types (seconds), then the whole test suite.
# Arguments go to pytest (scripts/check.sh tests/chat -x).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff format --check
.venv/bin/ruff check
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
