"""Record the demo Airflow: run the demo DAGs on a real Airflow 3 and save its API answers.

    uv run python -m tests.airflow.record_demo [OUTPUT_DIR]

Starts Airflow from the test virtualenv (``scripts/airflow-venv.sh``) with the DAGs in
``tests/airflow/demo_dags`` (scheduled ones catch up six hours of history), adds a few
manual runs, waits until every run has finished, and writes the answers of the endpoints
the adapter reads to ``adapters/airflow/demo_data`` (the replay server serves them).
Anything that names the recording machine (paths, host names, process ids, signed file
tokens) is replaced by neutral values.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .deployment import AirflowDeployment, copy_dags, ensure_venv

DEMO_DAGS = Path(__file__).resolve().parent / "demo_dags"
OUT = Path(__file__).resolve().parents[2] / "adapters" / "airflow" / "demo_data"
_SETTLE_TIMEOUT = 900.0


def _all(dep: AirflowDeployment, path: str, key: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    sep = "&" if "?" in path else "?"
    for _ in range(1000):
        body = dep.api("GET", f"{path}{sep}limit=100&offset={len(items)}")
        items.extend(body[key])
        if len(body[key]) < 100:
            return items
    raise RuntimeError(f"{path}: too many pages")


def _settle(dep: AirflowDeployment, expected_dags: set[str]) -> None:
    """Wait until no run is queued or running and the run count holds still for 20s."""
    deadline = time.monotonic() + _SETTLE_TIMEOUT
    last_count, still_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        runs = _all(dep, "/api/v2/dags/~/dagRuns?order_by=id", "dag_runs")
        busy = [r for r in runs if r["state"] in ("queued", "running")]
        dags_with_runs = {r["dag_id"] for r in runs}
        if len(runs) != last_count or busy or not expected_dags <= dags_with_runs:
            last_count, still_since = len(runs), time.monotonic()
        elif time.monotonic() - still_since > 20:
            return
        time.sleep(2)
    raise TimeoutError("the demo deployment did not settle")


def _scrub(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        out = {k: _scrub(v, k) for k, v in value.items()}
        if "fileloc" in out and out.get("relative_fileloc"):
            out["fileloc"] = f"/opt/airflow/dags/{out['relative_fileloc']}"
        return out
    if isinstance(value, list):
        return [_scrub(v, key) for v in value]
    if key == "file_token" and isinstance(value, str):
        return "demo-file-token"
    if key == "hostname" and value:
        return "airflow-worker-1"
    if key == "unixname" and value:
        return "airflow"
    if key == "pid" and value is not None:
        return 4242
    return value


def record(out: Path = OUT) -> dict[str, int]:
    venv = ensure_venv()
    start = (datetime.now(UTC) - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
    with tempfile.TemporaryDirectory(prefix="accord-airflow-demo-") as tmp:
        home = Path(tmp)
        dags = copy_dags(home / "dags", DEMO_DAGS)
        dep = AirflowDeployment(venv, home, dags, {"ACCORD_DEMO_START": start.isoformat()})
        dep.start()
        try:
            dag_ids = {p.stem for p in DEMO_DAGS.glob("*.py") if not p.stem.startswith("_")}
            dep.wait_parsed(dag_ids)
            # Manual runs besides the scheduled history: one by a person's program, one to
            # show a skipped step.
            dep.api(
                "POST",
                "/api/v2/dags/ingest_orders/dagRuns",
                {"logical_date": None, "conf": {"full_refresh": True}, "note": "Backfill fix"},
            )
            dep.api("POST", "/api/v2/dags/warehouse_vacuum/dagRuns", {"logical_date": None})
            expected = dag_ids - {"legacy_export"}
            _settle(dep, expected)
            dags_body = _all(dep, "/api/v2/dags?order_by=dag_id", "dags")
            runs = _all(dep, "/api/v2/dags/~/dagRuns?order_by=id", "dag_runs")
            tis: list[dict[str, Any]] = []
            for i in range(1000):
                body = dep.api(
                    "POST",
                    "/api/v2/dags/~/dagRuns/~/taskInstances/list",
                    {"page_limit": 100, "page_offset": i * 100, "order_by": "id"},
                )
                tis.extend(body["task_instances"])
                if len(body["task_instances"]) < 100:
                    break
            assets = _all(dep, "/api/v2/assets?order_by=id", "assets")
            events = _all(dep, "/api/v2/assets/events?order_by=timestamp", "asset_events")
            tasks = {
                d["dag_id"]: dep.api("GET", f"/api/v2/dags/{quote(d['dag_id'])}/tasks")["tasks"]
                for d in dags_body
            }
            version = dep.api("GET", "/api/v2/version")
        finally:
            dep.stop()
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "dags.json": {"dags": dags_body, "total_entries": len(dags_body)},
        "dag_runs.json": {"dag_runs": runs, "total_entries": len(runs)},
        "task_instances.json": {"task_instances": tis, "total_entries": len(tis)},
        "assets.json": {"assets": assets, "total_entries": len(assets)},
        "asset_events.json": {"asset_events": events, "total_entries": len(events)},
        "tasks.json": {
            dag: [{"task_id": t["task_id"], "operator_name": t.get("operator_name")} for t in ts]
            for dag, ts in sorted(tasks.items())
        },
        "version.json": {"version": version["version"]},
    }
    for name, body in files.items():
        (out / name).write_text(json.dumps(_scrub(body), indent=1, sort_keys=True) + "\n")
    return {"dags": len(dags_body), "runs": len(runs), "task_instances": len(tis)}


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    print(json.dumps(record(target)))
