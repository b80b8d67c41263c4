"""The MCP tools and resources Accord offers AI agents, and the server that serves them.

Tools are written for a model: each description says what the tool does, its limits and
an example. Arguments are strict (an unknown or mistyped argument is refused with a clear
message, and the refusal is recorded). Read tools answer from Accord's store; action tools
go through ``gateway.actions.perform`` (via the REST API) so the agent's authorization,
agent limits, change freezes and approvals apply, and a refusal names the rule.

Every ``tools/call`` and ``resources/read`` leaves an audit record on the ``agent``
channel with the tool, the agent (the token's subject) and the delegating person when one
is given: actions through ``perform``, everything else through ``POST /api/v1/agent/calls``.
A read whose record cannot be written is answered with an error, not the data.

Forecasts and SLAs have no API in this version, so there are no tools for them yet.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote

import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INVALID_PARAMS
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.model import parse_duration

from .client import GatewayClient, GatewayError, path_of

__all__ = ["RESOURCE_TEMPLATES", "TOOLS", "ClientFactory", "ToolSpec", "build_server"]

_RESOURCE_NOT_FOUND = -32002  # the MCP specification's code for an unknown resource
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
ClientFactory = Callable[
    [ServerRequestContext[Any, Any]], AbstractAsyncContextManager[GatewayClient]
]

# -- arguments -----------------------------------------------------------------------------


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    on_behalf_of: str | None = Field(
        default=None,
        max_length=200,
        description="the person you act for (e.g. their e-mail); recorded in the audit "
        "trail, it grants nothing",
    )


_Uid = Field(min_length=3, max_length=500)
_Limit = Field(default=20, ge=1, le=100, description="at most this many (1-100)")
_Cursor = Field(default=None, max_length=500, description="next_cursor from a previous page")
_Reason = Field(default=None, max_length=2000, description="why: shown to people and audited")
_Direction = Literal["up", "down", "both"]
_States = list[Literal["queued", "running", "waiting", "success", "failed", "cancelled", "skipped"]]


class SearchJobsArgs(_Args):
    query: str | None = Field(default=None, max_length=200, description="words in the name")
    source: str | None = Field(default=None, max_length=200)
    domain: str | None = Field(default=None, max_length=200)
    last_state: str | None = Field(default=None, description="state of the job's last run")
    label: str | None = Field(default=None, max_length=200, description="key=value or key")
    paused: bool | None = None
    limit: int = _Limit
    cursor: str | None = _Cursor


class SearchRunsArgs(_Args):
    query: str | None = Field(default=None, max_length=200, description="words in the job name")
    job: str | None = Field(default=None, max_length=500, description="a job uid")
    source: str | None = Field(default=None, max_length=200)
    domain: str | None = Field(default=None, max_length=200)
    states: _States | None = Field(default=None, description="any of these run states")
    since: str | None = Field(
        default=None, max_length=40, description="a duration back from now (24h, 7d) or ISO time"
    )
    limit: int = _Limit
    cursor: str | None = _Cursor

    @field_validator("since")
    @classmethod
    def _since(cls, v: str | None) -> str | None:
        if v is None:
            return None
        try:
            parse_duration(v)
            return v
        except ValueError:
            pass
        try:
            datetime.fromisoformat(v)
        except ValueError:
            raise ValueError("give a duration such as 24h or 7d, or an ISO date-time") from None
        return v


class JobArgs(_Args):
    job: str = Field(min_length=3, max_length=500, description="job uid: source/native_id")


class RunArgs(_Args):
    run: str = Field(min_length=3, max_length=500, description="run uid, as search_runs gives")


class LineageArgs(JobArgs):
    direction: _Direction = Field(default="both", description="up, down or both")
    depth: int = Field(default=2, ge=1, le=6, description="hops to follow (1-6)")


class ImpactArgs(JobArgs):
    depth: int = Field(default=3, ge=1, le=6, description="hops downstream to follow (1-6)")


class NoArgs(_Args):
    pass


class TriggerArgs(JobArgs):
    params: dict[str, Any] = Field(
        default_factory=dict, description="run parameters, if the job takes any"
    )
    reason: str | None = _Reason


class JobActionArgs(JobArgs):
    reason: str | None = _Reason


class RunActionArgs(RunArgs):
    reason: str | None = _Reason


class ApprovalArgs(_Args):
    action: Literal["trigger", "pause", "resume", "retry", "cancel"]
    target: str = Field(
        min_length=3,
        max_length=500,
        description="the job uid (trigger, pause, resume) or run uid (retry, cancel)",
    )
    reason: str = Field(min_length=3, max_length=2000, description="why, for the approvers")
    params: dict[str, Any] = Field(default_factory=dict, description="trigger parameters")


# -- answers -------------------------------------------------------------------------------


@dataclass
class Answer:
    data: dict[str, Any]
    target: str | None = None
    audited: bool = False  # perform recorded the call already


Runner = Callable[[GatewayClient, Any, str], Awaitable[Answer]]


@dataclass(frozen=True)
class ToolSpec:
    name: str
    title: str
    description: str
    args: type[_Args]
    run: Runner
    read_only: bool = True
    destructive: bool = False

    def tool(self) -> types.Tool:
        schema = self.args.model_json_schema()
        schema.pop("title", None)
        return types.Tool(
            name=self.name,
            title=self.title,
            description=self.description,
            input_schema=schema,
            annotations=types.ToolAnnotations(
                title=self.title,
                read_only_hint=self.read_only,
                destructive_hint=self.destructive,
                idempotent_hint=self.read_only,
                open_world_hint=not self.read_only,
            ),
        )


def _job_brief(j: dict[str, Any]) -> dict[str, Any]:
    sched = j.get("schedule") or {}
    return {
        "uid": j["uid"],
        "name": j["name"],
        "source": j["source"],
        "domain": j["domain"],
        "paused": j["paused"],
        "schedule": sched.get("text") or sched.get("expression"),
        "next_run_at": j.get("next_run_at"),
        "last_run_state": j.get("last_run_state"),
        "last_run_at": j.get("last_run_at"),
        "owners": j.get("owners", []),
        "labels": j.get("labels", {}),
        "url": j.get("url"),
        "problems": j.get("problems", []),
    }


def _run_brief(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "uid": r["uid"],
        "job_uid": r["job_uid"],
        "source": r["source"],
        "state": r["state"],
        "native_state": r.get("native_state"),
        "trigger": r.get("trigger"),
        "started_at": r.get("started_at"),
        "ended_at": r.get("ended_at"),
        "duration_s": r.get("duration_s"),
        "message": r.get("message"),
        "url": r.get("url"),
    }


# -- read tools ----------------------------------------------------------------------------


async def _search_jobs(c: GatewayClient, a: SearchJobsArgs, tool: str) -> Answer:
    page = await c.call(
        "GET",
        "/api/v1/jobs",
        tool=tool,
        on_behalf_of=a.on_behalf_of,
        params={
            "q": a.query,
            "source": a.source,
            "domain": a.domain,
            "state": a.last_state,
            "label": a.label,
            "paused": None if a.paused is None else str(a.paused).lower(),
            "limit": a.limit,
            "cursor": a.cursor,
        },
    )
    jobs = [_job_brief(j) for j in page["items"]]
    return Answer({"jobs": jobs, "count": len(jobs), "next_cursor": page.get("next_cursor")})


def _since(value: str) -> str:
    try:
        return (datetime.now(UTC) - parse_duration(value)).isoformat()
    except ValueError:
        return value


async def _search_runs(c: GatewayClient, a: SearchRunsArgs, tool: str) -> Answer:
    page = await c.call(
        "GET",
        "/api/v1/runs",
        tool=tool,
        on_behalf_of=a.on_behalf_of,
        params={
            "q": a.query,
            "job": a.job,
            "source": a.source,
            "domain": a.domain,
            "state": ",".join(a.states) if a.states else None,
            "since": _since(a.since) if a.since else None,
            "limit": a.limit,
            "cursor": a.cursor,
        },
    )
    runs = [_run_brief(r) for r in page["items"]]
    return Answer(
        {"runs": runs, "count": len(runs), "next_cursor": page.get("next_cursor")}, target=a.job
    )


async def _get_job(c: GatewayClient, a: JobArgs, tool: str) -> Answer:
    job = await c.call(
        "GET", f"/api/v1/jobs/{path_of(a.job)}", tool=tool, on_behalf_of=a.on_behalf_of
    )
    runs = await c.call(
        "GET",
        "/api/v1/runs",
        tool=tool,
        on_behalf_of=a.on_behalf_of,
        params={"job": job["uid"], "limit": 5},
    )
    out = _job_brief(job)
    out["description"] = job.get("description")
    out["no_next_run_reason"] = job.get("no_next_run_reason")
    out["actions_you_may_take"] = job.get("allowed_actions", [])
    out["recent_runs"] = [_run_brief(r) for r in runs["items"]]
    return Answer(out, target=job["uid"])


def _summary(run: dict[str, Any], failed_steps: list[str], upstream: list[dict[str, Any]]) -> str:
    parts = [
        f"Run {run['uid']} of job {run['job_uid']} (source {run['source']}): "
        f"{run['state']}"
        + (f" (the tool says {run['native_state']!r})" if run.get("native_state") else "")
        + "."
    ]
    if failed_steps:
        parts.append(f"Failed steps: {', '.join(failed_steps)}.")
    if run.get("message"):
        parts.append(f"Message: {run['message']}")
    bad = [u for u in upstream if u["state"] in ("failed", "cancelled")]
    if bad:
        parts.append(
            "Upstream runs that did not succeed (a likely cause): "
            + "; ".join(f"{u['uid']} ({u['job_uid']} on {u['source']}) {u['state']}" for u in bad)
            + "."
        )
    elif upstream:
        parts.append(
            f"All {len(upstream)} known upstream runs ended without failing: the cause is "
            "probably in this run itself."
        )
    else:
        parts.append("Accord knows of no upstream run that caused this one.")
    if run.get("url"):
        parts.append(f"Open it in the tool: {run['url']}")
    return " ".join(parts)


async def _explain_run(c: GatewayClient, a: RunArgs, tool: str) -> Answer:
    path = path_of(a.run)
    run = await c.call("GET", f"/api/v1/runs/{path}", tool=tool, on_behalf_of=a.on_behalf_of)
    lineage = await c.call(
        "GET",
        f"/api/v1/runs/{path}/lineage",
        tool=tool,
        on_behalf_of=a.on_behalf_of,
        params={"direction": "up", "depth": 3},
    )
    events = await c.call(
        "GET", f"/api/v1/runs/{path}/events", tool=tool, on_behalf_of=a.on_behalf_of
    )
    by_uid = {r["uid"]: r for r in lineage["runs"]}
    upstream = []
    for e in lineage["edges"]:
        src = by_uid.get(e["src"])
        if src is not None and src["uid"] != run["uid"]:
            upstream.append(
                {
                    "uid": src["uid"],
                    "job_uid": src["job_uid"],
                    "source": src["source"],
                    "state": src["state"],
                    "native_state": src.get("native_state"),
                    "caused": e["dst"],
                    "evidence": e.get("evidence"),
                    "url": src.get("url"),
                }
            )
    steps = [
        {
            "name": s["name"],
            "state": s["state"],
            "native_state": s.get("native_state"),
            "attempt": s.get("attempt"),
        }
        for s in run.get("steps") or []
    ]
    failed = [s["name"] for s in steps if s["state"] == "failed"]
    out = {
        "summary": _summary(run, failed, upstream),
        "run": _run_brief(run) | {"attempt": run.get("attempt"), "actor": run.get("actor")},
        "steps": steps,
        "failed_steps": failed,
        "upstream_runs": upstream,
        "upstream_not_shown": lineage.get("not_shown", 0),
        "downstream_runs": [
            {"uid": d["uid"], "job_uid": d["job_uid"], "state": d["state"]}
            for d in run.get("downstream") or []
        ],
        "state_history": [
            {"from": e["from_state"], "to": e["to_state"], "at": e["at"]} for e in events
        ],
        "actions_you_may_take": run.get("allowed_actions", []),
    }
    return Answer(out, target=run["uid"])


def _compact_lineage(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "root": data["root"],
        "nodes": [{k: v for k, v in n.items() if v not in (None, False)} for n in data["nodes"]],
        "edges": [{"kind": e["kind"], "from": e["src"], "to": e["dst"]} for e in data["edges"]],
    }


async def _lineage(c: GatewayClient, a: LineageArgs, tool: str) -> Answer:
    data = await c.call(
        "GET",
        "/api/v1/lineage",
        tool=tool,
        on_behalf_of=a.on_behalf_of,
        params={"job": a.job, "direction": a.direction, "depth": a.depth},
    )
    return Answer(_compact_lineage(data), target=a.job)


async def _impact(c: GatewayClient, a: ImpactArgs, tool: str) -> Answer:
    data = await c.call(
        "GET",
        "/api/v1/lineage",
        tool=tool,
        on_behalf_of=a.on_behalf_of,
        params={"job": a.job, "direction": "down", "depth": a.depth},
    )
    others = [n for n in data["nodes"] if n["uid"] != a.job]
    jobs = [n for n in others if n["kind"] == "job"]
    datasets = [n for n in others if n["kind"] == "dataset"]
    summary = (
        f"If {a.job} fails or is late, {len(jobs)} downstream job(s) and {len(datasets)} "
        f"dataset(s) within {a.depth} hops are affected"
        + (
            ": "
            + ", ".join(f"{j['uid']} (last run {j.get('last_run_state') or 'none'})" for j in jobs)
            if jobs
            else ""
        )
        + "."
    )
    return Answer(
        {
            "summary": summary,
            "downstream_jobs": [
                {
                    "uid": j["uid"],
                    "source": j.get("source"),
                    "domain": j.get("domain"),
                    "last_run_state": j.get("last_run_state"),
                }
                for j in jobs
            ],
            "downstream_datasets": [d["uid"] for d in datasets],
            "edges": _compact_lineage(data)["edges"],
        },
        target=a.job,
    )


async def _sources_health(c: GatewayClient, a: NoArgs, tool: str) -> Answer:
    rows = await c.call("GET", "/api/v1/sources", tool=tool, on_behalf_of=a.on_behalf_of)
    sources = [
        {
            "name": s["name"],
            "type": s["type"],
            "domain": s["domain"],
            "health": s["health"],
            "message": s.get("health_message"),
            "last_success_at": s.get("last_success_at"),
            "lag_seconds": s.get("lag_seconds"),
            "last_error": s.get("last_error"),
            "problems": [p["message"] for p in s.get("problems", [])][:20],
            "jobs": s.get("jobs"),
            "simulator": s.get("simulator"),
        }
        for s in rows
    ]
    unhealthy = [s["name"] for s in sources if s["health"] != "ok"]
    return Answer(
        {
            "summary": f"{len(sources)} source(s); "
            + (f"not healthy: {', '.join(unhealthy)}" if unhealthy else "all healthy"),
            "sources": sources,
        }
    )


# -- action tools --------------------------------------------------------------------------


def _acted(result: dict[str, Any]) -> Answer:
    out: dict[str, Any] = {
        "outcome": result["outcome"],
        "message": result["message"],
        "target": result["target"],
        "audit_record": result.get("audit_seq"),
    }
    if result.get("approval_id") is not None:
        out["approval_request"] = result["approval_id"]
    if result.get("run"):
        out["run"] = _run_brief(result["run"])
    return Answer(out, target=result["target"], audited=True)


def _job_action(action: str) -> Runner:
    async def run(c: GatewayClient, a: Any, tool: str) -> Answer:
        body: dict[str, Any] = {"reason": a.reason}
        if action == "trigger":
            body["params"] = a.params
        result = await c.call(
            "POST",
            f"/api/v1/jobs/{path_of(a.job)}/{action}",
            tool=tool,
            on_behalf_of=a.on_behalf_of,
            json=body,
        )
        return _acted(result)

    return run


def _run_action(action: str) -> Runner:
    async def run(c: GatewayClient, a: RunActionArgs, tool: str) -> Answer:
        result = await c.call(
            "POST",
            f"/api/v1/runs/{path_of(a.run)}/{action}",
            tool=tool,
            on_behalf_of=a.on_behalf_of,
            json={"reason": a.reason},
        )
        return _acted(result)

    return run


async def _request_approval(c: GatewayClient, a: ApprovalArgs, tool: str) -> Answer:
    kind = "runs" if a.action in ("retry", "cancel") else "jobs"
    body: dict[str, Any] = {"reason": a.reason, "hold": True}
    if a.action == "trigger":
        body["params"] = a.params
    result = await c.call(
        "POST",
        f"/api/v1/{kind}/{path_of(a.target)}/{a.action}",
        tool=tool,
        on_behalf_of=a.on_behalf_of,
        json=body,
    )
    return _acted(result)


_AUDIT_NOTE = (
    "Every call is recorded in Accord's audit trail with your agent identity and "
    "on_behalf_of, if you give it."
)
_ACTION_NOTE = (
    "Governed: you act as your agent token, so its roles, its agent limits (allowed "
    "actions, a rate per hour, never destructive), change freezes and approvals apply. A "
    "refusal is an error that names the rule that refused it; do not retry a refusal, "
    "tell the person or use request_approval. You cannot override a change freeze. " + _AUDIT_NOTE
)

TOOLS: dict[str, ToolSpec] = {
    t.name: t
    for t in [
        ToolSpec(
            "search_jobs",
            "Search jobs",
            "Find jobs (DAGs, cron entries, Jenkins jobs, Kubernetes CronJobs, Terraform "
            "workspaces) across every scheduler Accord federates, in uid order. Filter "
            "by words in the name, source, domain, label, paused, or the state of the last "
            "run. Returns at most `limit` jobs (default 20, up to 100) and a next_cursor for "
            'the next page; only jobs your token may read. Example: {"query": "orders", '
            '"last_state": "failed"}. ' + _AUDIT_NOTE,
            SearchJobsArgs,
            _search_jobs,
        ),
        ToolSpec(
            "search_runs",
            "Search runs",
            "Find runs across every scheduler, newest first: by job uid, source, domain, "
            "states, words in the job name, and since (a duration such as 24h or an ISO "
            "time). Returns at most `limit` runs (default 20, up to 100), each with its "
            "state, the tool's native state, timings, message and a link into the tool. "
            'Example: {"states": ["failed"], "since": "24h"}. ' + _AUDIT_NOTE,
            SearchRunsArgs,
            _search_runs,
        ),
        ToolSpec(
            "get_job",
            "Get a job",
            "One job by uid (source/native_id): schedule, next run, paused, owners, labels, "
            "problems, the actions your token may take on it, and its 5 latest runs. "
            'Example: {"job": "airflow-prod/etl_orders"}. ' + _AUDIT_NOTE,
            JobArgs,
            _get_job,
        ),
        ToolSpec(
            "explain_run",
            "Explain a run",
            "Why a run is in its state, typically a failed one: its normalized and native "
            "states, failed steps, message, the link into the tool, its state history, and "
            "the upstream runs (up to 3 hops, across schedulers) that caused it with their "
            "states, plus a plain-language summary naming the likely cause. Upstream runs you "
            'may not read are counted, not shown. Example: {"run": '
            '"airflow-prod/etl_orders/scheduled__2024-06-01T00:00:00+00:00"}. ' + _AUDIT_NOTE,
            RunArgs,
            _explain_run,
        ),
        ToolSpec(
            "lineage",
            "Job lineage",
            "Jobs and datasets connected to a job (depends_on, produces, consumes edges, "
            "across schedulers), upstream, downstream or both, up to `depth` hops (default "
            '2, at most 6). Example: {"job": "cron-etl/load_orders", "direction": '
            '"up"}. ' + _AUDIT_NOTE,
            LineageArgs,
            _lineage,
        ),
        ToolSpec(
            "impact",
            "Impact of a job",
            "What depends on a job: the downstream jobs (with their last run state) and "
            "datasets within `depth` hops (default 3, at most 6), and a one-line summary. Use "
            "it before pausing or cancelling something, or to tell people what a failure "
            'will delay. Example: {"job": "airflow-prod/etl_orders"}. ' + _AUDIT_NOTE,
            ImpactArgs,
            _impact,
        ),
        ToolSpec(
            "sources_health",
            "Sources' health",
            "Every scheduler Accord reads (its sources): health (ok, degraded, down, stale), "
            "the reason, last successful sync, lag, last error and problems found. Takes no "
            "arguments. Example: {}. " + _AUDIT_NOTE,
            NoArgs,
            _sources_health,
        ),
        ToolSpec(
            "trigger_job",
            "Trigger a job",
            "Start a run of a job now, with optional run parameters. Returns the outcome "
            "(ok, or pending when an approval guardrail holds it, with the approval request "
            'id) and the new run when the tool reports one. Example: {"job": '
            '"airflow-prod/etl_orders", "reason": "re-run after the upstream fix", '
            '"on_behalf_of": "ana@example.com"}. ' + _ACTION_NOTE,
            TriggerArgs,
            _job_action("trigger"),
            read_only=False,
        ),
        ToolSpec(
            "retry_run",
            "Retry a run",
            "Retry a finished run (the tool re-runs it, or its failed part where it can). "
            'Example: {"run": "jenkins-ci/build-app/42", "reason": "flaky network"}. '
            + _ACTION_NOTE,
            RunActionArgs,
            _run_action("retry"),
            read_only=False,
        ),
        ToolSpec(
            "cancel_run",
            "Cancel a run",
            "Stop a queued or running run. Cancelling is destructive: agent limits that say "
            'never destroy refuse it. Example: {"run": "kube-prod/ns/report-123", '
            '"reason": "stuck for 3 hours"}. ' + _ACTION_NOTE,
            RunActionArgs,
            _run_action("cancel"),
            read_only=False,
            destructive=True,
        ),
        ToolSpec(
            "pause_job",
            "Pause a job",
            "Pause a job's schedule (no new scheduled runs until resumed; running runs go "
            'on). Example: {"job": "airflow-prod/etl_orders", "reason": "source '
            'database in maintenance"}. ' + _ACTION_NOTE,
            JobActionArgs,
            _job_action("pause"),
            read_only=False,
        ),
        ToolSpec(
            "resume_job",
            "Resume a job",
            'Resume a paused job\'s schedule. Example: {"job": "airflow-prod/etl_orders"}. '
            + _ACTION_NOTE,
            JobActionArgs,
            _job_action("resume"),
            read_only=False,
        ),
        ToolSpec(
            "request_approval",
            "Request an approval",
            "Ask people to approve an action instead of taking it: the action is held as an "
            "approval request that one other person with the approve permission must "
            "approve (in the console or with 'accord approvals approve'); when approved it "
            "runs as you, through the same checks. Use it when an action is consequential, "
            "or when you are unsure it is wanted. Returns the approval request id. A reason "
            'is required. Example: {"action": "trigger", "target": '
            '"airflow-prod/finance_close", "reason": "the ledger load finished late"}. '
            + _ACTION_NOTE,
            ApprovalArgs,
            _request_approval,
            read_only=False,
        ),
    ]
}

RESOURCE_TEMPLATES = [
    types.ResourceTemplate(
        name="job",
        title="An Accord job",
        uri_template="accord://jobs/{uid}",
        description="A job and its latest runs, as get_job answers. The uid is "
        "source/native_id (slashes may be given as is or as %2F).",
        mime_type="application/json",
    ),
    types.ResourceTemplate(
        name="run",
        title="An Accord run",
        uri_template="accord://runs/{uid}",
        description="A run explained, as explain_run answers (states, steps, message, link, "
        "upstream runs).",
        mime_type="application/json",
    ),
]

# -- the server ----------------------------------------------------------------------------


def _result(data: dict[str, Any], *, error: bool = False) -> types.CallToolResult:
    text = json.dumps(data, indent=1, default=str, ensure_ascii=False)
    return types.CallToolResult(
        content=[types.TextContent(text=text)], structured_content=data, is_error=error
    )


def _failure(message: str, **extra: Any) -> types.CallToolResult:
    return _result({"error": message, **extra}, error=True)


def _validation_message(tool: str, spec: type[_Args], exc: ValidationError) -> str:
    accepted = ", ".join(spec.model_fields)
    unknown = [str(e["loc"][0]) for e in exc.errors() if e["type"] == "extra_forbidden"]
    parts = []
    if unknown:
        parts.append(f"unknown argument(s) {', '.join(repr(u) for u in unknown)}")
    for e in exc.errors():
        if e["type"] == "extra_forbidden":
            continue
        where = ".".join(str(p) for p in e["loc"]) or "arguments"
        parts.append(f"{where}: {e['msg']}")
    return f"invalid arguments for {tool}: {'; '.join(parts)}. Accepted arguments: {accepted}"


def _refusal(tool: str, err: GatewayError) -> str:
    if err.status == 403:
        return f"{tool} was denied by authorization: {err.message}"
    if err.status == 423:
        return f"{tool} was refused by a guardrail: {err.message}"
    if err.status == 401:
        return f"the agent token was refused: {err.message}"
    if err.status == 404:
        return f"{err.message} (or your token may not read it)"
    if err.status == 429:
        return f"{tool} was refused: {err.message}"
    return f"{tool} failed: {err.message}"


async def _record(
    client: GatewayClient,
    *,
    tool: str,
    outcome: str,
    target: str | None,
    message: str | None,
    arguments: list[str],
    on_behalf_of: str | None,
) -> int:
    body: dict[str, Any] = {
        "tool": tool if _NAME.match(tool) else "unknown_tool",
        "outcome": outcome,
        "target": target,
        "message": message[:2000] if message else None,
        "arguments": [a for a in arguments if len(a) <= 100][:50],
        "on_behalf_of": (on_behalf_of or client.on_behalf_of or "")[:200] or None,
    }
    answer = await client.call(
        "POST",
        "/api/v1/agent/calls",
        tool=body["tool"],
        on_behalf_of=body["on_behalf_of"],
        json=body,
    )
    return int(answer["audit_seq"])


async def call_tool(
    client: GatewayClient, name: str, arguments: dict[str, Any]
) -> types.CallToolResult:
    """Validate, run and record one tool call."""
    spec = TOOLS.get(name)
    names = sorted(str(k) for k in arguments)
    person = (
        arguments.get("on_behalf_of") if isinstance(arguments.get("on_behalf_of"), str) else None
    )
    if spec is None:
        message = f"unknown tool {name!r}; the tools are: {', '.join(TOOLS)}"
        outcome, target, answer = "rejected", None, None
    else:
        try:
            args = spec.args.model_validate(arguments)
        except ValidationError as exc:
            message = _validation_message(name, spec.args, exc)
            outcome, target, answer = "rejected", None, None
        else:
            target = (
                getattr(args, "job", None)
                or getattr(args, "run", None)
                or getattr(args, "target", None)
            )
            try:
                answer = await spec.run(client, args, name)
            except GatewayError as err:
                message = _refusal(name, err)
                if err.audit_seq is not None:  # perform recorded it
                    return _failure(message, audit_record=err.audit_seq)
                outcome = "denied" if err.status in (401, 403, 423) else "error"
                answer = None
            else:
                message, outcome = "", "ok"
                target = answer.target or target
    if answer is not None and answer.audited:
        return _result(answer.data)
    try:
        seq = await _record(
            client,
            tool=name,
            outcome=outcome,
            target=target,
            message=message or None,
            arguments=names,
            on_behalf_of=person,
        )
    except GatewayError as err:
        return _failure(
            f"{message + '; ' if message else ''}the call could not be recorded in Accord's "
            f"audit trail, so no answer is given: {err.message}"
        )
    if answer is None:
        return _failure(message, audit_record=seq)
    return _result(answer.data | {"audit_record": seq})


async def read_resource(client: GatewayClient, uri: str) -> types.ReadResourceResult:
    for prefix, tool, field in (
        ("accord://jobs/", "get_job", "job"),
        ("accord://runs/", "explain_run", "run"),
    ):
        if uri.startswith(prefix):
            uid = unquote(uri.removeprefix(prefix))
            result = await call_tool(client, tool, {field: uid})
            text = (
                result.content[0].text if isinstance(result.content[0], types.TextContent) else ""
            )
            if result.is_error:
                raise MCPError(_RESOURCE_NOT_FOUND, json.loads(text)["error"])
            return types.ReadResourceResult(
                contents=[
                    types.TextResourceContents(uri=uri, mime_type="application/json", text=text)
                ]
            )
    raise MCPError(
        INVALID_PARAMS, f"unknown resource {uri!r}: use accord://jobs/<uid> or accord://runs/<uid>"
    )


def build_server(client_for: ClientFactory) -> Server[Any]:
    """The MCP server; ``client_for`` opens the gateway client for a request (the HTTP door
    builds one from the caller's token, the stdio door lends the one of its process)."""

    async def on_list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[t.tool() for t in TOOLS.values()])

    async def on_call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        async with client_for(ctx) as client:
            return await call_tool(client, params.name, dict(params.arguments or {}))

    async def on_list_resources(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[])

    async def on_list_templates(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        return types.ListResourceTemplatesResult(resource_templates=RESOURCE_TEMPLATES)

    async def on_read_resource(
        ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        async with client_for(ctx) as client:
            return await read_resource(client, str(params.uri))

    return Server(
        "accord",
        version="0.1.0",
        title="Accord",
        instructions=(
            "Accord federates the schedulers of an estate (Airflow, cron, Jenkins, Kubernetes "
            "CronJobs, Terraform Cloud). Search jobs and runs, explain failures with their "
            "upstream causes, check lineage, impact and sources' health; act (trigger, "
            "retry, cancel, pause, resume) under your agent token's roles and limits, or "
            "request an approval. Every call is audited."
        ),
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
        on_list_resources=on_list_resources,
        on_list_resource_templates=on_list_templates,
        on_read_resource=on_read_resource,
    )
