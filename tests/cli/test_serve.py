"""The README's run command, as a newcomer types it: a real process, a real port."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(
    args: list[str], data_dir: Path, log_level: str
) -> tuple[subprocess.Popen[str], Queue[str], threading.Thread]:
    """``accord serve ARGS`` on a fresh data dir; its output lines arrive on the queue."""
    env = {**os.environ, "ACCORD_DATA_DIR": str(data_dir), "ACCORD_LOG_LEVEL": log_level}
    env.pop("ACCORD_DATABASE_URL", None)
    accord = Path(sys.executable).parent / "accord"
    proc = subprocess.Popen(
        [str(accord), "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    queue: Queue[str] = Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            queue.put(line)

    pumping = threading.Thread(target=pump, daemon=True)
    pumping.start()
    return proc, queue, pumping


def test_serve_demo_prints_url_and_token_and_serves_a_populated_estate(tmp_path: Path) -> None:
    port = _free_port()
    proc, queue, _pumping = _start(["--demo", "--port", str(port)], tmp_path, "warning")
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        token = url = None
        while time.monotonic() < deadline and not (token and url):
            try:
                line = queue.get(timeout=1)
            except Empty:
                continue
            lines.append(line)
            if m := re.search(r"Accord gateway: (http://\S+)", line):
                url = m.group(1)
            if m := re.search(r"Admin token: (acd_\S+)", line):
                token = m.group(1)
        assert url == f"http://127.0.0.1:{port}", lines
        assert token, lines
        headers = {"Authorization": f"Bearer {token}"}
        sources: list[dict[str, object]] = []
        jobs: dict[str, object] = {}
        while time.monotonic() < deadline:
            try:
                sources = httpx.get(f"{url}/api/v1/sources", headers=headers).json()
                jobs = httpx.get(f"{url}/api/v1/jobs?total=true", headers=headers).json()
                if sources and all(s["last_success_at"] for s in sources):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        names = {s["name"] for s in sources}
        assert {"demo-etl", "demo-platform"} <= names
        assert all(s["demo"] for s in sources), "everything in the demo is labelled demo"
        assert isinstance(jobs["total"], int) and jobs["total"] >= 10
        runs = httpx.get(f"{url}/api/v1/runs?limit=5", headers=headers).json()["items"]
        assert runs, "the demo has run history"
        assert httpx.get(f"{url}/api/v1/jobs").status_code == 401
        # OpenLineage both ways: run changes are appended to a file of the demo's data
        # directory, and a dbt-like project feeds the demo's openlineage source.
        while not queue.empty():
            lines.append(queue.get_nowait())
        assert any("OpenLineage events: appended to" in line for line in lines), lines
        events = tmp_path / "demo" / "openlineage" / "events.jsonl"
        received: list[object] = []
        while time.monotonic() < deadline + 30 and not (
            received and events.exists() and events.stat().st_size
        ):
            received = httpx.get(f"{url}/api/v1/runs?source=demo-lineage", headers=headers).json()[
                "items"
            ]
            time.sleep(0.5)
        assert received, "the demo's openlineage source received runs"
        assert events.exists() and events.read_text().count("\n") > 0
        # The first start takes a few real actions, so the audit page shows what it is for.
        wanted = {
            ("dana", "trigger", "demo-etl/ingest_orders", "allow", "ok"),
            ("dana", "trigger", "demo-etl/finance_report", "allow", "pending"),
            ("priya", "approve", "approval:1", "allow", "ok"),
            ("dana", "pause", "demo-etl/finance_report", "deny", "denied"),
        }
        seen: set[tuple[str, ...]] = set()
        while time.monotonic() < deadline + 60 and not wanted <= seen:
            items = httpx.get(f"{url}/api/v1/audit?limit=200", headers=headers).json()["items"]
            seen = {
                (r["subject"], r["action"], r["target"], r["decision"], r["outcome"]) for r in items
            }
            time.sleep(0.5)
        assert wanted <= seen, sorted(seen)
        # The approval ran the held trigger, and the demo people's tokens are gone.
        held = [r for r in items if r["action"] == "trigger" and r["subject"] == "priya"]
        assert held or any(
            r["action"] == "trigger"
            and r["target"] == "demo-etl/finance_report"
            and r["outcome"] == "ok"
            for r in items
        ), sorted(seen)
        # An SLA at risk because of an upstream job in another tool: the finance pack
        # (Jenkins simulator) waits for the books to close (demo scheduler).
        pack: list[dict[str, object]] = []
        while time.monotonic() < deadline + 120 and not (pack and pack[0]["state"] == "at_risk"):
            pack = httpx.get(f"{url}/api/v1/slas?sla=finance-pack-on-time", headers=headers).json()
            time.sleep(1)
        assert pack and pack[0]["state"] == "at_risk", pack
        assert pack[0]["job_uid"] == "demo-jenkins/finance/publish-pack"
        assert pack[0]["critical_path"] == ["demo-etl/close_books"], pack
        assert str(pack[0]["reason"]).startswith("waiting on demo-etl/close_books"), pack

        # Notifications reach the gateway's demo inbox, signed, and the inbox checks the
        # signature: the SLA at risk is there; a forged message is refused.
        def messages(inbox: dict[str, Any]) -> list[dict[str, Any]]:
            # A message is one notification or a digest of several.
            return [m for i in inbox["items"] for m in i["payload"].get("items", [i["payload"]])]

        inbox: dict[str, Any] = {"items": []}
        while time.monotonic() < deadline + 150 and not any(
            m.get("type") == "sla.at_risk" and m.get("job") == "demo-jenkins/finance/publish-pack"
            for m in messages(inbox)
        ):
            inbox = httpx.get(f"{url}/api/v1/demo/notifications", headers=headers).json()
            time.sleep(1)
        got = [m for m in messages(inbox) if m.get("type") == "sla.at_risk"]
        assert got and all(i["signature_verified"] for i in inbox["items"]), inbox
        assert any("demo-etl/close_books" in str(m["text"]) for m in got), got
        forged = httpx.post(
            f"{url}/api/v1/demo/notifications",
            content=b'{"type": "run.failed"}',
            headers={"X-Accord-Timestamp": str(int(time.time())), "X-Accord-Signature": "x"},
        )
        assert forged.status_code == 401
        after = httpx.get(f"{url}/api/v1/demo/notifications", headers=headers).json()
        assert after["rejected"] == 1 and len(messages(after)) >= len(got)
        assert httpx.get(f"{url}/api/v1/demo/notifications").status_code == 401
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_real_installation_never_prints_its_first_admin_token(tmp_path: Path) -> None:
    """Service and pod logs keep stdout: the first token goes to a 0600 file only."""
    port = _free_port()
    proc, queue, pumping = _start(["--no-sync", "--port", str(port)], tmp_path, "info")
    out: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                out.append(queue.get(timeout=1))
            except Empty:
                continue
            # "Application startup complete" comes before the socket is bound; "Uvicorn
            # running" after it.
            if "Uvicorn running" in out[-1]:
                break
        token_file = tmp_path / "admin-token"
        assert any(f"written to {token_file}" in line for line in out), out
        token = token_file.read_text().strip()
        assert token.startswith("acd_")
        assert (token_file.stat().st_mode & 0o777) == 0o600
        r = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/me", headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 200 and r.json()["subject"] == "admin"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        pumping.join(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
    while not queue.empty():
        out.append(queue.get())
    assert not any(token in line for line in out), "the token never reaches the output"
