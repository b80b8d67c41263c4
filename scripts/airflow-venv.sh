#!/usr/bin/env bash
# Create (idempotently) a separate virtualenv holding the newest Apache Airflow 3.x, used by
# Accord's Airflow tests (tests/airflow). Accord itself never depends on apache-airflow: the
# adapter only speaks Airflow's REST API.
#
#   scripts/airflow-venv.sh            # creates ./.airflow-venv (or $ACCORD_AIRFLOW_VENV)
#
# Environment:
#   ACCORD_AIRFLOW_VENV     where the virtualenv lives (default: .airflow-venv in the repo root)
#   ACCORD_AIRFLOW_SPEC     the requirement to install (default: apache-airflow>=3,<4)
#   ACCORD_AIRFLOW_PYTHON   the Python the virtualenv uses (default: 3.11)
#
# Prints the virtualenv's path on its last line. A second call with a complete virtualenv
# returns at once.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ACCORD_AIRFLOW_VENV:-$repo_root/.airflow-venv}"
spec="${ACCORD_AIRFLOW_SPEC:-apache-airflow>=3,<4}"
python="${ACCORD_AIRFLOW_PYTHON:-3.11}"
marker="$venv/.accord-airflow-ready"

if [[ -f "$marker" && -x "$venv/bin/airflow" ]]; then
    echo "$venv"
    exit 0
fi

if ! command -v uv >/dev/null 2>&1; then
    echo "airflow-venv: uv is required (https://docs.astral.sh/uv/)" >&2
    exit 2
fi

mkdir -p "$venv"
lock="$venv/.accord-lock"
# Two callers at once (CI and a test fixture) must not install into the same directory.
exec 9>"$lock"
if command -v flock >/dev/null 2>&1; then
    flock -w 1800 9
fi
if [[ -f "$marker" && -x "$venv/bin/airflow" ]]; then
    echo "$venv"
    exit 0
fi

started=$(date +%s)
uv venv --quiet --allow-existing --python "$python" "$venv"
uv pip install --quiet --python "$venv/bin/python" "$spec"
version="$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("apache-airflow"))')"
case "$version" in
    3.*) ;;
    *)
        echo "airflow-venv: expected Airflow 3.x, got $version" >&2
        exit 1
        ;;
esac
echo "$version" >"$marker"
echo "airflow-venv: apache-airflow $version installed in $(( $(date +%s) - started ))s" >&2
echo "$venv"
