#!/usr/bin/env bash
# Prints the path of a uv binary, installing uv from PyPI for this user if it is missing.
set -euo pipefail
if command -v uv >/dev/null 2>&1; then
  command -v uv
  exit 0
fi
for cand in "$HOME/.local/bin/uv"; do
  if [ -x "$cand" ]; then echo "$cand"; exit 0; fi
done
echo "installing uv (from PyPI) for $(id -un)..." >&2
python3 -m pip install --user --quiet uv >&2 || python3 -m pip install --quiet uv >&2
if command -v uv >/dev/null 2>&1; then command -v uv; else echo "$HOME/.local/bin/uv"; fi
