"""``POST /api/v1/config/apply`` on generated documents (hypothesis, the generator of
``tests/cli/test_validate_fuzz.py``): applied, or 400/422 with problems naming the request
and the document, never a 500, and a refused body changes nothing."""

from __future__ import annotations

from typing import Any

from hypothesis import given

from ..cli.test_apply_fuzz import state_of
from ..cli.test_validate_fuzz import FUZZ, _files
from .conftest import Api


@FUZZ
@given(text=_files)
def test_the_apply_endpoint_never_answers_500(api: Api, text: Any) -> None:
    before = state_of(str(api.engine.url))
    res = api.client.post(
        "/api/v1/config/apply",
        content=text.encode("utf-8"),
        headers={**api.as_("admin"), "Content-Type": "application/yaml"},
    )
    assert res.status_code in (200, 400, 422), (res.status_code, res.text, text)
    if res.status_code == 200:
        return
    body = res.json()
    assert state_of(str(api.engine.url)) == before, (res.text, text)
    if res.status_code == 400:
        assert body["error"]["code"] == "malformed_yaml", body
        return
    problems = body["error"]["details"]
    assert problems, body
    for p in problems:
        assert p.startswith("request:") and "document" in p, (p, text)
