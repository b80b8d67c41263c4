"""What AI agents' tool calls leave in the audit trail.

Actions an agent takes are recorded by ``gateway.actions.perform`` like anyone's (with the
tool and the delegating person in the details). The MCP server records every other tool
call here — reads, and calls refused before they reached an action (bad arguments, an
unknown job) — so that each call an agent makes is on the record. Only agent tokens may
record, and the record's subject and channel come from the token, never from the body.
"""

from __future__ import annotations

from typing import Literal

import anyio
from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from gateway.audit import AuditEntry, record
from gateway.store.services import queries

from ..deps import PrincipalDep, in_thread
from ..errors import ApiError
from ..routing import Router

router = Router(prefix="/api/v1/agent", tags=["agents"])

_NAME = r"^[a-z][a-z0-9_]{0,63}$"


class AgentCall(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool: str = Field(pattern=_NAME, description="the MCP tool that was called")
    target: str | None = Field(default=None, max_length=500, description="job or run uid")
    outcome: Literal["ok", "error", "denied", "rejected"]
    message: str | None = Field(default=None, max_length=2000)
    arguments: list[str] = Field(
        default_factory=list, max_length=50, description="argument names (values may be secret)"
    )
    on_behalf_of: str | None = Field(default=None, max_length=200)


class AgentCallRecorded(BaseModel):
    audit_seq: int


@router.post("/calls", response_model=AgentCallRecorded, status_code=201)
async def record_call(
    body: AgentCall, request: Request, principal: PrincipalDep
) -> AgentCallRecorded:
    if principal.kind != "agent":
        raise ApiError(
            403,
            "forbidden",
            "only agent tokens record tool calls (create one with "
            "'accord tokens create --kind agent')",
        )

    def domain_of(session: Session) -> str:
        # The target's domain when the agent may see it, so the record is visible to
        # the people who read that domain; otherwise a record for auditors only.
        if body.target:
            job = queries.get_job(session, uid=body.target, visible=principal.visible())
            if job is not None:
                return job.domain
            run = queries.get_run(session, uid=body.target, visible=principal.visible())
            if run is not None:
                return run.domain
        return "*"

    domain = await in_thread(request, domain_of)
    details: dict[str, object] = {"tool": body.tool}
    person = body.on_behalf_of or principal.context.get("on_behalf_of")
    if person:
        details["on_behalf_of"] = person
    if body.arguments:
        details["arguments"] = sorted(set(body.arguments))
    entry = AuditEntry(
        subject=principal.subject,
        channel=principal.channel,
        action="tool-call",
        target=body.target or "*",
        domain=domain,
        decision="deny" if body.outcome in ("denied", "rejected") else "allow",
        outcome=body.outcome,
        reason=body.message,
        request_id=request.state.request_id,
        details=details,
    )
    seq = await anyio.to_thread.run_sync(record, request.app.state.engine, entry)
    return AgentCallRecorded(audit_seq=seq)
