#!/usr/bin/env bash
# `make proto-lint`: buf lint (buf.yaml), then buf breaking so that no change to protos/
# renames, renumbers, retypes or drops what callers use: the working tree against the last
# commit, and every commit on this branch's first-parent history that changed protos/ against
# the one before it (on main in CI, that is every version main had, the landing's included).
set -euo pipefail
cd "$(dirname "$0")/.."
buf=node_modules/.bin/buf
"$buf" lint
if ! git rev-parse -q --verify HEAD >/dev/null; then
  exit 0
fi
"$buf" breaking --against '.git#ref=HEAD,subdir=protos'
checked=0
for commit in $(git rev-list --first-parent HEAD -- protos); do
  parent=$(git rev-parse -q --verify "$commit^" 2>/dev/null) || continue
  git cat-file -e "$parent:protos" 2>/dev/null || continue
  "$buf" breaking ".git#ref=$commit,subdir=protos" --against ".git#ref=$parent,subdir=protos"
  checked=$((checked + 1))
done
echo "proto-lint: lint clean; no breaking change (working tree and $checked earlier changes of protos/)"
