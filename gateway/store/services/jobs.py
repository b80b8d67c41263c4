"""Changes to stored jobs that actions make (the sync path is ``ingest``)."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import Session, col

from ..tables import Job
from ..types import utcnow

__all__ = ["set_paused"]


def set_paused(session: Session, *, job_id: int | None, paused: bool) -> None:
    """Record a pause or resume Accord performed (the next inventory sync confirms it)."""
    if job_id is None:
        return
    session.execute(
        update(Job)
        .where(col(Job.id) == job_id)
        .values(paused=paused, paused_since=utcnow() if paused else None)
    )
