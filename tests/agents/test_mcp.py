"""AI agents through MCP, end to end with the SDK's own client, over both doors: the
gateway's /mcp (streamable HTTP) and ``accord mcp`` (stdio, spawned) against a gateway
served on 127.0.0.1. What an agent sees, what it may do, what it may not, and what it
leaves in the audit trail."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import httpx
import pytest
from mcp.client import ClientSession

from .conftest import AGENT, RATE, Gateway, accord_command, over_http, over_stdio

Opener = Callable[..., AbstractAsyncContextManager[ClientSession]]
DOORS: dict[str, Opener] = {"http": over_http, "stdio": over_stdio}


async def call(session: ClientSession, tool: str, args: dict[str, Any]) -> tuple[bool, Any]:
    result = await session.call_tool(tool, args)
    assert result.content and result.content[0].type == "text"
    # The text is the same JSON as the structured content (for clients that read text).
    assert json.loads(result.content[0].text) == result.structured_content
    return result.is_error, result.structured_content


async def scenario(gw: Gateway, open_session: Opener) -> None:
    x, y = gw.runs["x"], gw.runs["y"]
    async with open_session(gw.url, gw.tokens[AGENT], on_behalf_of="ops-lead@example.com") as mcp:
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
        assert set(tools) == {
            "search_jobs",
            "search_runs",
            "get_job",
            "explain_run",
            "lineage",
            "impact",
            "sources_health",
            "trigger_job",
            "retry_run",
            "cancel_run",
            "pause_job",
            "resume_job",
            "request_approval",
        }
        for t in tools.values():
            assert "Example" in (t.description or ""), t.name
            assert t.input_schema["additionalProperties"] is False, t.name
        assert tools["cancel_run"].annotations and tools["cancel_run"].annotations.destructive_hint
        assert tools["search_runs"].annotations and tools["search_runs"].annotations.read_only_hint

        # -- reads ---------------------------------------------------------------------
        err, found = await call(mcp, "search_runs", {"states": ["failed"], "since": "24h"})
        assert not err, found
        assert {r["uid"] for r in found["runs"]} == {x, y}

        err, why = await call(mcp, "explain_run", {"run": y})
        assert not err, why
        assert why["run"]["state"] == "failed"
        assert why["run"]["message"] == "input table orders is empty"
        assert why["run"]["url"].startswith("http://fake.example/runs/")
        assert why["failed_steps"] == ["load"]
        assert [(u["uid"], u["state"]) for u in why["upstream_runs"]] == [(x, "failed")]
        assert x in why["summary"] and "likely cause" in why["summary"]

        err, impact = await call(mcp, "impact", {"job": "fake-data/etl_orders"})
        assert not err, impact
        assert [j["uid"] for j in impact["downstream_jobs"]] == ["fake-data/finance_report"]
        assert impact["downstream_datasets"], impact

        err, health = await call(mcp, "sources_health", {})
        assert not err, health
        assert {s["name"]: s["health"] for s in health["sources"]} == {
            "fake-data": "ok",
            "fake-ops": "ok",
        }

        err, job = await call(mcp, "get_job", {"job": "fake-data/finance_report"})
        assert not err, job
        assert [r["uid"] for r in job["recent_runs"]] == [y]
        assert "trigger" in job["actions_you_may_take"]

        resource = await mcp.read_resource(f"accord://runs/{y}")
        assert json.loads(resource.contents[0].text)["failed_steps"] == ["load"]  # type: ignore[union-attr]
        templates = (await mcp.list_resource_templates()).resource_templates
        assert {t.uri_template for t in templates} == {"accord://jobs/{uid}", "accord://runs/{uid}"}

        # -- bad input: a clear error, nothing done ------------------------------------
        err, bad = await call(mcp, "search_jobs", {"qurey": "orders"})
        assert err
        assert "unknown argument(s) 'qurey'" in bad["error"]
        assert "Accepted arguments: on_behalf_of, query" in bad["error"]
        err, bad = await call(
            mcp, "trigger_job", {"job": "fake-data/etl_orders", "emergency": True}
        )
        assert err and "unknown argument(s) 'emergency'" in bad["error"]
        err, bad = await call(mcp, "drop_tables", {})
        assert err and bad["error"].startswith("unknown tool 'drop_tables'; the tools are: ")
        err, bad = await call(mcp, "search_runs", {"states": ["exploded"], "limit": 1000})
        assert err
        assert "states.0: Input should be 'queued'" in bad["error"]
        assert "limit: Input should be less than or equal to 100" in bad["error"]

        # -- an allowed action, for a named person -------------------------------------
        before = len(gw.data.runs)
        err, done = await call(
            mcp,
            "trigger_job",
            {
                "job": "fake-data/etl_orders",
                "reason": "the database is back",
                "on_behalf_of": "ana@example.com",
            },
        )
        assert not err, done
        assert done["outcome"] == "ok"
        assert done["run"]["job_uid"] == "fake-data/etl_orders"
        assert len(gw.data.runs) == before + 1  # the scheduler really got it

        # -- refusals name the rule ----------------------------------------------------
        err, refused = await call(mcp, "cancel_run", {"run": x, "reason": "tidy up"})
        assert err
        assert "agent limit 'bots'" in refused["error"]
        assert "never take destructive actions" in refused["error"]

        before_ops = len(gw.ops.runs)
        err, frozen = await call(mcp, "trigger_job", {"job": "fake-ops/db-backup"})
        assert err
        assert "change freeze 'ops-freeze' is in effect" in frozen["error"]
        assert len(gw.ops.runs) == before_ops

        # -- an approval request, then the rate limit ----------------------------------
        err, held = await call(
            mcp,
            "request_approval",
            {
                "action": "trigger",
                "target": "fake-data/finance_report",
                "reason": "re-run the report once orders are loaded",
            },
        )
        assert not err, held
        assert held["outcome"] == "pending"
        approval = held["approval_request"]

        err, paused = await call(mcp, "pause_job", {"job": "fake-data/nightly-vacuum"})
        assert not err, paused
        assert gw.data.jobs["nightly-vacuum"]["paused"] is True

        err, limited = await call(mcp, "resume_job", {"job": "fake-data/nightly-vacuum"})
        assert err
        assert f"reached {RATE} actions per hour" in limited["error"]
        assert gw.data.jobs["nightly-vacuum"]["paused"] is True

    # A token bound to a viewer role: authorization refuses, naming why.
    async with open_session(gw.url, gw.tokens["agent:reader"]) as mcp:
        err, denied = await call(mcp, "trigger_job", {"job": "fake-data/etl_orders"})
        assert err
        assert "denied by authorization" in denied["error"]
        assert "no rule allows 'agent:reader' to trigger" in denied["error"]

    # A person approves the agent's request: it runs as the agent, through the checks.
    before = len(gw.data.runs)
    decided = gw.post("approver", f"/api/v1/approvals/{approval}/approve", json={})
    assert decided.status_code == 200, decided.text
    assert decided.json()["result"]["outcome"] == "ok"
    assert len(gw.data.runs) == before + 1

    # -- the audit trail ---------------------------------------------------------------
    records = gw.audit()
    assert records and all(r["channel"] == "agent" for r in records)
    reads = [r for r in records if r["action"] == "tool-call"]
    by_tool = {r["details"]["tool"]: r for r in reads if r["outcome"] == "ok"}
    for tool in ("search_runs", "explain_run", "impact", "sources_health", "get_job"):
        assert by_tool[tool]["outcome"] == "ok", tool
        assert by_tool[tool]["details"]["on_behalf_of"] == "ops-lead@example.com"
    assert by_tool["explain_run"]["target"] == y
    assert by_tool["explain_run"]["domain"] == "data"
    rejected = [r for r in reads if r["outcome"] == "rejected"]
    assert [r["details"]["tool"] for r in rejected] == [
        "search_jobs",
        "trigger_job",
        "drop_tables",
        "search_runs",
    ]
    assert rejected[0]["details"]["arguments"] == ["qurey"]
    assert all(r["decision"] == "deny" for r in rejected)

    acts = [r for r in records if r["action"] != "tool-call"]
    summary = [(r["action"], r["outcome"], r["details"].get("tool"), r["policy"]) for r in acts]
    assert summary[:2] == [
        ("trigger", "started", "trigger_job", "p, operator, *, *, trigger, allow"),
        ("trigger", "ok", "trigger_job", "p, operator, *, *, trigger, allow"),
    ]
    assert all(r["details"]["on_behalf_of"] == "ana@example.com" for r in acts[:2])
    assert ("cancel", "blocked", "cancel_run", "guardrail:bots") in summary
    assert ("trigger", "blocked", "trigger_job", "guardrail:ops-freeze") in summary
    assert ("trigger", "pending", "request_approval", "guardrail:on-request") in summary
    assert ("resume", "blocked", "resume_job", "guardrail:bots") in summary
    # the approved request ran as the agent (recorded without a tool: a person released it)
    assert [(r["action"], r["outcome"]) for r in acts[-2:]] == [
        ("trigger", "started"),
        ("trigger", "ok"),
    ]
    assert acts[-1]["details"]["approval_id"] == approval

    reader = gw.audit("agent:reader")
    assert [(r["action"], r["decision"], r["outcome"], r["details"]["tool"]) for r in reader] == [
        ("trigger", "deny", "denied", "trigger_job")
    ]
    assert gw.get("admin", "/api/v1/audit/verify")["ok"] is True


@pytest.mark.parametrize("door", ["http", "stdio"])
def test_agent_through_mcp(gateway: Gateway, door: str) -> None:
    anyio.run(scenario, gateway, DOORS[door])


def test_http_door_needs_an_agent_token(gateway: Gateway) -> None:
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    accept = {"Accept": "application/json, text/event-stream"}
    anon = httpx.post(gateway.url + "/mcp", json=init, headers=accept)
    assert anon.status_code == 401
    assert "agent token is required" in anon.json()["error"]["message"]
    person = httpx.post(
        gateway.url + "/mcp",
        json=init,
        headers={**accept, "Authorization": f"Bearer {gateway.tokens['admin']}"},
    )
    assert person.status_code == 403
    assert "agent tokens only" in person.json()["error"]["message"]
    agent = httpx.post(
        gateway.url + "/mcp",
        json=init,
        headers={**accept, "Authorization": f"Bearer {gateway.tokens[AGENT]}"},
    )
    assert agent.status_code == 200, agent.text
    assert agent.json()["result"]["serverInfo"]["name"] == "accord"


def test_stdio_door_refuses_a_person_token(gateway: Gateway) -> None:
    proc = subprocess.run(
        accord_command("mcp", "--server", gateway.url, "--token", gateway.tokens["admin"]),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 1
    assert "needs an agent token" in proc.stderr
    assert proc.stdout == ""  # nothing but MCP ever goes to stdout
