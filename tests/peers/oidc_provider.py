"""Starts the real OpenID provider (node-oidc-provider, tests/peers/oidc/provider.js) on
127.0.0.1 on a free port, and drives its login form without a browser."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

HERE = Path(__file__).resolve().parent / "oidc"
AUDIENCE = "urn:accord:api"
OTHER_AUDIENCE = "urn:other:api"


@dataclass
class OidcPeer:
    issuer: str
    proc: subprocess.Popen[bytes]
    log: Path
    clients: dict[str, str] = field(default_factory=dict)  # client_id -> secret

    def client_token(self, client_id: str, resource: str = AUDIENCE) -> str:
        """A JWT access token by the client_credentials grant."""
        r = httpx.post(
            self.issuer + "/token",
            auth=(client_id, self.clients[client_id]),
            data={"grant_type": "client_credentials", "resource": resource},
        )
        assert r.status_code == 200, r.text
        token: str = r.json()["access_token"]
        return token

    def rotate(self) -> str:
        r = httpx.post(self.issuer + "/__test/rotate")
        r.raise_for_status()
        kid: str = r.json()["kid"]
        return kid

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_provider(config: dict[str, Any], workdir: Path) -> OidcPeer:
    if shutil.which("node") is None:
        pytest.fail("node is not installed: the single sign-on tests need Node.js")
    if not (HERE / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("the test OpenID provider is not installed: run scripts/test-deps.sh")
    log = workdir / "oidc-provider.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["node", str(HERE / "provider.js")],
            cwd=HERE,
            env={**os.environ, "ACCORD_TEST_OIDC_CONFIG": json.dumps(config)},
            stdout=subprocess.PIPE,
            stderr=out,
            start_new_session=True,
        )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    line = b""
    while time.monotonic() < deadline and proc.poll() is None:
        line = proc.stdout.readline()
        if line.startswith(b"ready "):
            break
    if not line.startswith(b"ready "):
        proc.kill()
        proc.wait(timeout=5)
        proc.stdout.close()
        pytest.fail("the OpenID provider did not start:\n" + log.read_text())
    issuer = line.decode().split()[1]
    clients = {c["client_id"]: c.get("client_secret", "") for c in config.get("clients", [])}
    return OidcPeer(issuer, proc, log, clients)


_FORM = re.compile(r'<form[^>]*action="([^"]+)"', re.I)


def browserless_login(
    start: httpx.Response,
    follow: Callable[[str], httpx.Response],
    *,
    login: str,
    password: str,
) -> httpx.Response:
    """Go through the provider's login and consent forms the way a browser would.

    ``start`` is the gateway's answer to /auth/login (a redirect to the provider);
    ``follow(url)`` asks the gateway for a URL on it (the callback). Returns the
    gateway's answer to the callback."""
    assert start.status_code == 302, start.text
    with httpx.Client(follow_redirects=False) as browser:
        url = start.headers["location"]
        for _ in range(12):
            r = browser.get(url)
            while r.status_code in (302, 303):
                url = urljoin(url, r.headers["location"])
                if not url.startswith(browser_base(start)):
                    return follow(url)
                r = browser.get(url)
            form = _FORM.search(r.text)
            assert form, f"no form on the provider's page:\n{r.text[:2000]}"
            action = urljoin(url, unescape(form.group(1)))
            fields = {"login": login, "password": password} if 'name="login"' in r.text else {}
            prompt = re.search(r'name="prompt" value="([^"]+)"', r.text)
            if prompt:
                fields["prompt"] = prompt.group(1)
            r = browser.post(action, data=fields)
            if r.status_code == 403:
                return r
            assert r.status_code in (302, 303), r.text[:2000]
            url = urljoin(action, r.headers["location"])
            if not url.startswith(browser_base(start)):
                return follow(url)
    raise AssertionError("the provider's login did not end")


def browser_base(start: httpx.Response) -> str:
    m = re.match(r"(https?://[^/]+)", start.headers["location"])
    assert m
    return m.group(1)
