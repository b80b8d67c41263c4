"""Hostile input: property-based fuzzing of the whole published API (schemathesis).

Every operation of the OpenAPI document, with generated parameters and bodies, as each
default role (admin, operator, viewer, approver, auditor): no 500, every response matches
its documented schema, and no list answer holds an object outside the caller's domains.
Short mode: 10 examples per operation; ACCORD_LONG_TESTS=1: 100. The event stream is not
fuzzed (it does not end by itself).
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis

# Imported here, at collection, rather than lazily by ``from_dict`` inside a test: pytest
# rewrites schemathesis' modules (it is a pytest plugin), and CPython 3.11's parser can
# fail with "AST constructor recursion depth mismatch" when that happens deep in a stack.
import schemathesis.specs.openapi.converter
import schemathesis.specs.openapi.schemas
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from gateway.store import session_scope
from gateway.store.services.tokens import create_token

from .conftest import Api

EXAMPLES = 100 if os.environ.get("ACCORD_LONG_TESTS") == "1" else 10
# role -> the domains its token holds
ROLES = {
    "admin": "*",
    "operator": "data",
    "viewer": "ops",
    "approver": "data",
    "auditor": "ops",
}


@pytest.fixture
def fuzz_api(api: Api) -> tuple[Api, dict[str, str]]:
    tokens: dict[str, str] = {}
    with session_scope(api.engine) as s:
        for role, dom in ROLES.items():
            tokens[role] = create_token(s, subject=f"fuzz-{role}", role=role, domain=dom).token
    return api, tokens


def _outside(body: Any, allowed: str) -> list[str]:
    """Objects of a list answer whose domain the caller may not see."""
    if allowed == "*":
        return []
    items = body.get("items") if isinstance(body, dict) else body
    if not isinstance(items, list):
        return []
    return [
        f"{i.get('uid') or i.get('name') or i.get('seq')} in {i['domain']}"
        for i in items
        if isinstance(i, dict)
        and isinstance(i.get("domain"), str)
        and i["domain"] not in (allowed, "*")
    ]


def test_every_operation_as_every_role(fuzz_api: tuple[Api, dict[str, str]]) -> None:
    api, tokens = fuzz_api
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app)
    failures: dict[str, str] = {}
    operations = 0
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path.startswith(("/api/v1/events", "/mcp")):
            continue
        operations += 1

        @given(case=op.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=[Phase.explicit, Phase.generate],
        )
        def fuzz(case: Any) -> None:
            for role, allowed in ROLES.items():
                response = case.call_and_validate(
                    headers={"Authorization": f"Bearer {tokens[role]}"},
                    checks=[
                        not_a_server_error,
                        response_schema_conformance,
                        content_type_conformance,
                    ],
                )
                if case.method.upper() == "GET" and response.status_code == 200:
                    try:
                        body = response.json()
                    except ValueError:
                        continue
                    leaked = _outside(body, allowed)
                    assert not leaked, f"{role} ({allowed}) sees {leaked[:5]}"

        try:
            fuzz()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures[f"{op.method.upper()} {op.path}"] = str(exc)[:2000]
    assert operations >= 20, "the published document lists the API"
    assert not failures, "\n\n".join(f"{k}: {v}" for k, v in failures.items())
