"""Single sign-on in a real browser: the console signs in through a real OpenID provider
(node-oidc-provider, started here), shows only what the person's groups allow, and is
refused once the session is revoked or has expired."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_console import ROOT, WEB, _free_port, console_built  # noqa: F401
from tests.peers.oidc_provider import OidcPeer, start_provider
from tests.sso.conftest import CLIENT_ID, CLIENT_SECRET, provider_config

DANA_PASSWORD = secrets.token_urlsafe(12)  # made per run, like every test credential

SESSION_TTL = 20
BINDING = """
apiVersion: accord.dev/v1
kind: GroupBinding
metadata: {name: platform-viewers}
spec: {claim: groups, values: [platform-team], role: viewer, domains: [platform]}
"""


@pytest.fixture(scope="module")
def sso_gateway(
    console_built: None,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, str, OidcPeer]]:
    data = tmp_path_factory.mktemp("accord-sso")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    config = provider_config(url)
    config["users"] = {"dana": {"password": DANA_PASSWORD, "groups": ["platform-team"]}}
    peer = start_provider(config, data)
    accord = Path(sys.executable).parent / "accord"
    env = {
        **os.environ,
        "ACCORD_DATA_DIR": str(data),
        "ACCORD_OIDC_ISSUER": peer.issuer,
        "ACCORD_OIDC_CLIENT_ID": CLIENT_ID,
        "ACCORD_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "ACCORD_OIDC_SESSION_TTL": str(SESSION_TTL),
    }
    with (data / "gateway.log").open("w") as log:
        proc = subprocess.Popen(
            [str(accord), "serve", "--demo", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
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
            pytest.fail("the gateway did not start:\n" + (data / "gateway.log").read_text())
        token = (data / "demo" / "admin-token").read_text().strip()
        auth = {"Authorization": f"Bearer {token}"}
        r = httpx.post(url + "/api/v1/config/apply", content=BINDING, headers=auth, timeout=60)
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            sources = httpx.get(url + "/api/v1/sources", headers=auth, timeout=60).json()
            if sources and all(s["last_success_at"] for s in sources):
                break
            time.sleep(0.5)
        yield url, token, peer
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        peer.stop()


def test_sign_in_through_the_provider_see_only_the_groups_domains_then_be_refused(
    sso_gateway: tuple[str, str, OidcPeer],
) -> None:
    url, token, _peer = sso_gateway
    done = subprocess.run(
        ["node", "e2e/sso.mjs", url, token, "dana", DANA_PASSWORD, str(SESSION_TTL)],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=240,
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"the scenario printed no result:\n{done.stdout}\n{done.stderr}"
    out = json.loads(lines[-1])
    assert out["ok"], f"{out.get('error')}\n{done.stderr[-2000:]}"
    res = out["result"]
    assert res["subject"] == "oidc:dana"
    assert res["domains"] == ["platform"]
    admin = {"Authorization": f"Bearer {token}"}
    platform = httpx.get(
        url + "/api/v1/jobs",
        params={"domain": "platform", "total": "true", "limit": 1},
        headers=admin,
        timeout=60,
    ).json()["total"]
    everything = httpx.get(
        url + "/api/v1/jobs", params={"total": "true", "limit": 1}, headers=admin, timeout=60
    )
    assert res["jobs"] == platform < everything.json()["total"]
    # Refused no earlier than the session lifetime (and not long after it).
    assert SESSION_TTL - 3 <= res["expiredAfter"] <= SESSION_TTL + 15
    # The only console errors are the refusals themselves (401 once the session ended)
    # and requests a page reload aborted.
    expected = ("401 (Unauthorized)", "ERR_ABORTED")
    unexpected = [e for e in res["errors"] if not any(x in e for x in expected)]
    assert unexpected == []
