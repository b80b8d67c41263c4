"""The console and the API answer with security headers: a script policy without
'unsafe-inline', no framing, no MIME sniffing, no referrer."""

from __future__ import annotations

import re

from gateway.api.app import CONSOLE_CSP

from .conftest import Api


def _script_src(csp: str) -> str:
    m = re.search(r"script-src ([^;]*)", csp)
    assert m, csp
    return m.group(1)


def test_console_and_api_answers_carry_security_headers(api: Api) -> None:
    for path in ("/", "/index.html", "/api/v1/jobs", "/healthz", "/api/v1/nope"):
        r = api.get("admin", path)
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["referrer-policy"] == "no-referrer", path
        assert r.headers["x-frame-options"] == "DENY", path
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp, path
        assert "unsafe-inline" not in _script_src(csp), path
        assert "unsafe-eval" not in _script_src(csp), path
    # Static assets of the console get the same headers.
    index = api.client.get("/")
    for asset in re.findall(r'(?:src|href)="(/[^"]+\.(?:js|css))"', index.text):
        r = api.client.get(asset)
        assert r.status_code == 200, asset
        assert r.headers["x-content-type-options"] == "nosniff", asset
        assert r.headers["content-security-policy"] == CONSOLE_CSP, asset


def test_the_api_docs_page_keeps_working_and_cannot_be_framed(api: Api) -> None:
    r = api.client.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-security-policy"] == "frame-ancestors 'none'"
