#!/usr/bin/env bash
# `make lock` / `make upgrade`: three lock files, every package with its hashes:
#   requirements/runtime.txt  pyproject.toml's dependencies (what the images run)
#   requirements/build.txt    the build backend (setuptools, wheel) that installs the project
#   requirements/dev.txt      the test venv: all of the above, the dev extra, and pip itself
#
# pip-tools runs from its own venv (.lock-tools/), not the project's, so the tool that writes
# the lock is never among the pinned packages. It resolves against PyPI alone, with this
# machine's pip settings left out (local wheel folders, extra indexes), so the hashes are
# PyPI's and hold on any machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP_TOOLS_VERSION=7.7.0
TOOLS=.lock-tools
upgrade=()
[[ "${1:-}" == "--upgrade" ]] && upgrade=(--upgrade)

if [[ ! -x "$TOOLS/bin/pip-compile" ]] || ! "$TOOLS/bin/pip-compile" --version | grep -q "$PIP_TOOLS_VERSION"; then
    python3.11 -m venv "$TOOLS"
    "$TOOLS/bin/python" -m pip install --quiet "pip-tools==$PIP_TOOLS_VERSION"
fi

export PIP_CONFIG_FILE=/dev/null
unset PIP_FIND_LINKS PIP_INDEX_URL PIP_EXTRA_INDEX_URL
compile=("$TOOLS/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras
         --index-url https://pypi.org/simple --no-emit-index-url --no-emit-find-links
         "${upgrade[@]}")
# runtime and build first: dev.in constrains dev.txt to their pins, so the image and the test
# venv hold the same version of every package they share.
"${compile[@]}" --output-file requirements/runtime.txt pyproject.toml
"${compile[@]}" --output-file requirements/build.txt requirements/build.in
"${compile[@]}" --extra dev --output-file requirements/dev.txt pyproject.toml requirements/dev.in
echo "locked: $(grep -c '^[a-z].*==' requirements/runtime.txt) runtime and" \
     "$(grep -c '^[a-z].*==' requirements/dev.txt) dev packages"
