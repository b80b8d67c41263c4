from __future__ import annotations

import shutil
import tempfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import BackgroundTasks, Depends, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic_core import to_json
from sqlmodel import Session

from gateway.audit import AuditEntry, list_records, record, verify
from gateway.audit.export import ExportError, SigningKey, signing_key, write_export
from gateway.audit.log import record_fields

from ..deps import Principal, SessionDep, require
from ..errors import ApiError
from ..fastread import read_as
from ..params import INT64_MAX, Time
from ..routing import Router
from ..schemas import AuditKeyPublic, AuditRecordPublic, Paged

router = Router(prefix="/api/v1/audit", tags=["audit"])


@router.get("", response_model=Paged[AuditRecordPublic])
async def list_audit(
    request: Request,
    since: Time | None = None,
    until: Time | None = None,
    subject: str | None = None,
    action: str | None = None,
    target: str | None = None,
    decision: Literal["allow", "deny"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None,
        Query(ge=1, le=INT64_MAX, description="cursor: records with seq below"),
    ] = None,
) -> Response:
    def page(session: Session, principal: Principal) -> bytes:
        rows = list_records(
            session,
            read=lambda c: principal.grants.predicate("read", c, None),
            export=lambda c: principal.grants.predicate("export-audit", c, None),
            since=since,
            until=until,
            subject=subject,
            action=action,
            target=target,
            decision=decision,
            before=before,
            limit=limit + 1,
        )
        nxt = str(rows[limit - 1].seq) if len(rows) > limit else None
        items = [record_fields(r) for r in rows[:limit]]
        return to_json({"items": items, "next_cursor": nxt, "total": None})

    return Response(await read_as(request, page), media_type="application/json")


@router.get("/verify")
def verify_chain(
    session: SessionDep, principal: Principal = Depends(require("export-audit"))
) -> dict[str, object]:
    result = verify(session)
    return {
        "ok": result.ok,
        "count": result.count,
        "head_hash": result.head_hash,
        "first_bad_seq": result.first_bad_seq,
        "problem": result.problem,
    }


def _signing_key(request: Request) -> SigningKey:
    settings = request.app.state.settings
    try:
        return signing_key(settings.audit_signing_key_file, settings.data_dir)
    except ExportError as exc:
        raise ApiError(500, "signing_key_unusable", str(exc)) from None


@router.get("/public-key", response_model=AuditKeyPublic)
def public_key(request: Request, principal: Principal = Depends(require("read"))) -> AuditKeyPublic:
    """The public key that verifies this gateway's audit exports (made on first use)."""
    key = _signing_key(request)
    return AuditKeyPublic(public_key=key.public_key, algorithm="ed25519", origin=key.origin)


@router.get(
    "/export",
    response_class=FileResponse,
    responses={
        200: {
            "description": "the records file and its signed manifest, zipped",
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
def export_audit(
    request: Request,
    session: SessionDep,
    background: BackgroundTasks,
    format: str = Query(default="jsonl", pattern="^(jsonl|csv|ocsf)$"),
    since: Time | None = None,
    until: Time | None = None,
    domain: str | None = None,
    principal: Principal = Depends(require("export-audit")),
) -> FileResponse:
    """A zip with the records file and its signed manifest (written to disk, then streamed)."""
    key = _signing_key(request).key
    tmp = Path(tempfile.mkdtemp(prefix="accord-export-"))
    name = f"audit-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.{'csv' if format == 'csv' else 'jsonl'}"
    grants = principal.grants
    result = write_export(
        session,
        fmt=format,
        path=tmp / name,
        key=key,
        since=since,
        until=until,
        domain=domain,
        visible=lambda dom: grants.predicate("export-audit", dom, None),
    )
    bundle = tmp / (name + ".zip")
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(result.path, name)
        z.write(result.manifest_path, result.manifest_path.name)
    record(
        request.app.state.engine,
        AuditEntry(
            subject=principal.subject,
            channel=principal.channel,
            action="export-audit",
            target=name,
            domain=domain or "*",
            decision="allow",
            outcome="ok",
            request_id=request.state.request_id,
            details={"format": format, "count": result.manifest["count"]},
        ),
    )
    background.add_task(shutil.rmtree, tmp, True)
    return FileResponse(
        bundle, media_type="application/zip", filename=bundle.name, background=background
    )
