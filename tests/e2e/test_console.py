"""The web console in a real browser (Debian's Chromium driven by playwright-core) against a
demo gateway: log in, overview numbers, job filters, trigger a run, lineage, audit export.

Each scenario is a node script (web/e2e/scenarios.mjs, also run by ``npm run e2e``); this
module builds the console, starts ``accord serve --demo`` on a free port, runs each
scenario and checks what it reports against the API.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")


@dataclass
class Gateway:
    url: str
    token: str
    viewer_token: str
    data: Path
    accord: Path

    def get(self, path: str, **params: Any) -> Any:
        r = httpx.get(
            self.url + path, params=params, headers={"Authorization": f"Bearer {self.token}"}
        )
        r.raise_for_status()
        return r.json()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def console_built() -> None:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: the console tests need Node.js and npm")
    if not any(Path(p).exists() for p in CHROMIUM):
        pytest.fail("Chromium is not installed: apt-get install -y chromium")
    build = subprocess.run(
        [str(ROOT / "scripts" / "build-console.sh")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert (ROOT / "gateway" / "console" / "index.html").exists()


@pytest.fixture(scope="module")
def gateway(console_built: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    data = tmp_path_factory.mktemp("accord-e2e")
    port = _free_port()
    accord = Path(sys.executable).parent / "accord"
    log = (data / "gateway.log").open("w")
    proc = subprocess.Popen(
        [str(accord), "serve", "--demo", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env={**os.environ, "ACCORD_DATA_DIR": str(data)},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        else:
            pytest.fail("the demo gateway did not start:\n" + (data / "gateway.log").read_text())
        token = (data / "demo" / "admin-token").read_text().strip()
        gw = Gateway(url, token, _viewer_token(accord, data), data, accord)
        # The demo sources sync in the background; wait until every one has jobs.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            sources = gw.get("/api/v1/sources")
            if sources and all(s["last_success_at"] for s in sources):
                break
            time.sleep(0.5)
        yield gw
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        log.close()


def _viewer_token(accord: Path, data: Path) -> str:
    """A viewer of the platform domain, made with the CLI in the demo's database."""
    return _cli_token(accord, data, "viewer-platform", "viewer", "platform")


def _cli_token(accord: Path, data: Path, subject: str, role: str, domain: str) -> str:
    made = subprocess.run(
        [
            *(str(accord), "tokens", "create"),
            *("--subject", subject, "--role", role, "--domain", domain),
        ],
        cwd=ROOT,
        env={
            **os.environ,
            "ACCORD_DATA_DIR": str(data),
            "ACCORD_DATABASE_URL": f"sqlite:///{data / 'demo' / 'accord.db'}",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    tokens = [w for w in made.stdout.split() if w.startswith("acd_")]
    assert made.returncode == 0 and tokens, made.stdout + made.stderr
    return tokens[0]


def scenario(gw: Gateway, name: str, other_token: str | None = None) -> dict[str, Any]:
    done = subprocess.run(
        ["node", "e2e/scenario.mjs", name, gw.url, gw.token, other_token or gw.viewer_token],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=180,
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"scenario {name} printed no result:\n{done.stdout}\n{done.stderr}"
    out: dict[str, Any] = json.loads(lines[-1])
    assert out["ok"], f"scenario {name} failed:\n{out.get('error')}\n{done.stderr[-2000:]}"
    assert done.returncode == 0
    return out


def test_login_and_overview_numbers_match_the_api(gateway: Gateway) -> None:
    out = scenario(gateway, "overview")
    api = gateway.get("/api/v1/overview")
    assert out["result"]["seen"]["jobs"] == api["jobs"] > 0
    assert out["result"]["seen"]["sources"] == api["sources"]


def test_filter_jobs_open_one_and_trigger_a_run(gateway: Gateway) -> None:
    out = scenario(gateway, "jobs")
    run_uid = out["result"]["run"]
    run = gateway.get(f"/api/v1/runs/{run_uid}")
    assert run["job_uid"] == "demo-etl/ingest_orders" and run["trigger"] == "manual"
    etl = gateway.get("/api/v1/jobs", source="demo-etl", limit=1000)["items"]
    assert out["result"]["filtered"] == len(etl)


def test_lineage_graph_renders_the_api_nodes(gateway: Gateway) -> None:
    out = scenario(gateway, "lineage")
    api = gateway.get("/api/v1/lineage", job="demo-etl/finance_report", depth=3)
    assert out["result"]["nodes"] == len(api["nodes"]) > 1
    assert out["result"]["edges"] == len(api["edges"])


def test_run_page_shows_caused_by_and_caused_and_the_run_graph(gateway: Gateway) -> None:
    out = scenario(gateway, "runLineage")
    child = gateway.get(f"/api/v1/runs/{out['result']['child']}")
    assert child["upstream"][0]["uid"] == out["result"]["parent"]
    parent = gateway.get(f"/api/v1/runs/{out['result']['parent']}")
    assert out["result"]["child"] in {d["uid"] for d in parent["downstream"]}
    graph = gateway.get(f"/api/v1/runs/{out['result']['parent']}/lineage", depth=3)
    assert out["result"]["runs"] == len(graph["runs"]) > 1
    assert out["result"]["edges"] == len(graph["edges"])


def test_audit_verify_and_export_downloads(gateway: Gateway) -> None:
    out = scenario(gateway, "audit")
    assert out["result"]["rows"] >= 1
    assert out["result"]["signed"].endswith(".jsonl.zip")


def test_every_page_renders_and_keyboard_navigation(gateway: Gateway) -> None:
    out = scenario(gateway, "pages")
    assert out["result"]["visited"] == ["runs", "governance", "sources", "jobs-all"]
    # The Sources page shows the cluster; on SQLite it says one process syncs every source.
    enabled = [s for s in gateway.get("/api/v1/sources") if s["enabled"]]
    assert out["result"]["cluster"]["mode"] == "single"
    assert out["result"]["cluster"]["sources"] == len(enabled) > 0
    assert "One process" in out["result"]["cluster"]["shown"]


def test_dependencies_page_shows_the_chains_and_their_firings(gateway: Gateway) -> None:
    out = scenario(gateway, "dependencies")
    names = out["result"]["dependencies"]
    assert {"books-to-finance-pack", "revenue-mart-to-shop-build"} <= set(names)
    assert names == [d["name"] for d in gateway.get("/api/v1/dependencies")]


def test_token_stays_out_of_urls_and_sign_out_forgets_it(gateway: Gateway) -> None:
    scenario(gateway, "session")


def test_a_domain_viewer_sees_only_that_domain_and_no_actions(gateway: Gateway) -> None:
    out = scenario(gateway, "viewer")
    assert out["result"]["domains"] == ["platform"]
    admin_jobs = gateway.get("/api/v1/overview")["jobs"]
    assert 0 < out["result"]["jobs"] < admin_jobs


def test_an_approval_round_trip(gateway: Gateway) -> None:
    """The admin's trigger of a finance job is held (demo guardrail finance-four-eyes);
    a data approver approves it in the browser; the run starts."""
    held = httpx.post(
        gateway.url + "/api/v1/jobs/demo-etl/finance_report/trigger",
        headers={"Authorization": f"Bearer {gateway.token}"},
        json={"reason": "month-end rerun"},
    ).json()
    assert held["outcome"] == "pending"
    approver = _cli_token(gateway.accord, gateway.data, "alice", "approver", "data")
    out = scenario(gateway, "approval", approver)
    assert out["result"]["id"] == held["approval_id"]
    (done,) = [a for a in gateway.get("/api/v1/approvals") if a["id"] == held["approval_id"]]
    assert done["status"] == "approved" and done["approved_by"] == ["alice"]
    assert done["outcome"].startswith("ok")
    runs = gateway.get("/api/v1/runs", job="demo-etl/finance_report", limit=5)["items"]
    assert runs[0]["trigger"] == "manual" and runs[0]["state"] in ("running", "success")


LAYOUT_PAGES = (
    "overview",
    "jobs",
    "job",
    "runs",
    "run",
    "lineage",
    "governance",
    "audit",
    "sources",
)


def test_layout_at_1440_and_414_px_with_screenshots(gateway: Gateway) -> None:
    """Every page at 1440 px and 414 px: screenshots (tests/e2e/screenshots/layout-*.png)
    and what a user notices about the layout."""
    # The demo's first start takes its actions in the background; wait for them.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        subjects = {r["subject"] for r in gateway.get("/api/v1/audit", limit=500)["items"]}
        if {"dana", "priya"} <= subjects:
            break
        time.sleep(0.5)
    out = scenario(gateway, "layout")["result"]
    shots = ROOT / "tests" / "e2e" / "screenshots"
    for width in ("1440", "414"):
        facts = out[width]
        for name in LAYOUT_PAGES:
            assert (shots / f"layout-{width}-{name}.png").stat().st_size > 10_000, name
            page = facts["pages"][name]
            assert not page["pageScrollsSideways"], f"{name} at {width} px scrolls sideways"
            assert page["alerts"] == 0, f"{name} at {width} px shows an error"
        table = facts["jobsTable"]
        assert table["cutCellsWithoutTooltip"] == 0, table
        side = facts["sidebar"]
        assert side["pageTallerThanWindow"], side
        lin = facts["lineage"]
        assert lin["edgeTexts"] == 0, lin  # no edge labels to overlap
        assert lin["overlappingNodes"] == 0 and lin["nodesOutside"] == 0, lin
        assert lin["cutNames"] == 0, lin
        assert max(lin["fillWidth"], lin["fillHeight"]) >= 0.6, lin  # fitted, not a speck
    wide, narrow = out["1440"], out["414"]
    # 1440 px: every jobs column in view, no sideways scrolling; the sidebar spans the
    # window at the bottom of a long page.
    assert not wide["jobsTable"]["scrollsSideways"], wide["jobsTable"]
    assert wide["jobsTable"]["tableWidth"] <= wide["jobsTable"]["boxWidth"] + 1
    assert wide["jobsTable"]["columnsInView"] == wide["jobsTable"]["columns"] == 9
    assert (
        wide["sidebar"]["top"] <= 0 and wide["sidebar"]["bottom"] >= wide["sidebar"]["windowHeight"]
    )
    assert wide["sidebar"]["bottomLeftIsSidebar"] and wide["sidebar"]["navVisible"]
    assert not wide["sidebar"]["toggleVisible"]
    # 414 px: the navigation folds into a menu (closed until asked, closed again after a
    # choice); the jobs table scrolls sideways in its box with the job column pinned.
    assert not narrow["sidebar"]["navVisible"] and narrow["sidebar"]["toggleVisible"]
    assert narrow["sidebar"]["width"] >= 400, narrow["sidebar"]
    assert narrow["menuClosesAfterNavigation"]
    assert narrow["jobsTable"]["scrollsSideways"] and narrow["jobsTable"]["firstColumnSticky"]
    assert narrow["jobsTable"]["columnsInView"] >= 2, narrow["jobsTable"]
    assert abs(narrow["jobsTable"]["firstColumnAfterScroll"]) <= 2, narrow["jobsTable"]
    assert (shots / "layout-414-menu-open.png").exists()
    assert (shots / "layout-1440-governance-bottom.png").exists()
    # The audit page of a fresh demo shows the demo's own actions.
    assert set(out["auditShows"]) == {"dana", "priya", "trigger", "approve", "pause"}
