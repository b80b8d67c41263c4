"""Declarative configuration through the API (what ``accord apply --server`` uses)."""

from __future__ import annotations

from functools import partial
from typing import Any

import anyio
import yaml
from fastapi import Depends, Query, Request

from gateway.config import ConfigRefused, Plan, load_documents, plan_and_apply, required_domain

from ..deps import Principal, require
from ..errors import ApiError
from ..routing import Router
from ..schemas import ApplyResult

router = Router(prefix="/api/v1/config", tags=["config"])


def _parse(text: str) -> list[tuple[str, int, Any]]:
    try:
        return [("request", i, d) for i, d in enumerate(yaml.safe_load_all(text), start=1)]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ApiError(400, "malformed_yaml", f"malformed YAML{where}") from None


@router.post("/apply", response_model=ApplyResult)
async def apply(
    request: Request,
    dry_run: bool = Query(default=False),
    prune: bool = Query(default=False),
    principal: Principal = Depends(require("apply-config")),
) -> ApplyResult:
    """Body: one or more YAML documents (``application/yaml``); JSON documents are YAML too.

    Sources and SLAs need ``apply-config`` in their own domain; kinds that govern every
    domain (Role, RoleBinding, Guardrail, ComplianceRule, Domain, Dependency, Notifier)
    need it in every domain. Deletions by ``prune`` are checked the same way."""
    raw = (await request.body()).decode("utf-8", errors="replace")
    docs = _parse(raw)
    result = load_documents(docs, secrets=request.app.state.secret_policy)
    if not result.ok:
        raise ApiError(
            422,
            "invalid_config",
            f"{len(result.errors)} problem(s); nothing was changed",
            details=[str(e) for e in result.errors],
        )
    engine = request.app.state.engine

    def authorize(the_plan: Plan, stored: dict[tuple[str, str], str]) -> None:
        for ch in the_plan.effective:
            dom = required_domain(ch.kind, ch.domain)
            if not principal.decide(dom, f"{ch.kind}/{ch.name}", "apply-config").allowed:
                where = "every domain" if dom == "*" else f"domain {dom!r}"
                raise ApiError(
                    403,
                    "forbidden",
                    f"{principal.subject!r} may not {ch.op} {ch.kind}/{ch.name}: that needs "
                    f"apply-config in {where}; nothing was changed",
                )
        # Moving a resource to another domain needs the right in the domain it leaves, too.
        for ch in the_plan.effective:
            old = stored.get((ch.kind, ch.name))
            if old is not None and old != ch.domain:
                dom = required_domain(ch.kind, old)
                if not principal.decide(dom, f"{ch.kind}/{ch.name}", "apply-config").allowed:
                    raise ApiError(
                        403,
                        "forbidden",
                        f"{principal.subject!r} may not move {ch.kind}/{ch.name} out of {old!r}",
                    )

    try:
        the_plan = await anyio.to_thread.run_sync(
            partial(
                plan_and_apply,
                engine,
                result.documents,
                prune=prune,
                dry_run=dry_run,
                authorize=authorize,
                subject=principal.subject,
                channel=principal.channel,
                request_id=request.state.request_id,
            )
        )
    except ConfigRefused as exc:
        raise ApiError(
            422,
            "invalid_config",
            f"{len(exc.problems)} problem(s); nothing was changed",
            details=exc.problems,
        ) from None
    return ApplyResult(
        dry_run=dry_run, changes=[c.line() for c in the_plan.changes], summary=the_plan.summary()
    )
