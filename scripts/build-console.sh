#!/usr/bin/env bash
# Builds the web console into gateway/console/ (served by the gateway at /).
# Idempotent: installs the Node packages only when package-lock.json changed, and builds
# only when a source file is newer than the last build.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v npm >/dev/null 2>&1; then
  echo "npm not found: the web console is not built (the API works without it)" >&2
  exit 1
fi

out=gateway/console/index.html
stamp=web/node_modules/.package-lock.json

if [ ! -f "$stamp" ] || [ web/package-lock.json -nt "$stamp" ]; then
  echo "installing the console's Node packages (npm ci)"
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
fi

newer=""
if [ -f "$out" ]; then
  newer=$(find web/src web/index.html web/vite.config.ts web/package-lock.json web/tsconfig.json \
    -newer "$out" -print -quit)
fi
if [ -f "$out" ] && [ -z "$newer" ]; then
  echo "web console is up to date ($out)"
  exit 0
fi

echo "building the web console"
(cd web && npx --no-install vite build --logLevel warn)
touch "$out"
echo "web console built into gateway/console/"
