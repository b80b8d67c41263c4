"""Read side of compliance violations: filtered by visibility, in pages by id."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import ColumnElement, and_, func, select
from sqlmodel import Session, col

from ..tables import Violation
from .queries import InvalidCursor, Page, Visible, _dec, _enc

__all__ = ["ViolationFilter", "count_violations", "list_violations"]


@dataclass
class ViolationFilter:
    status: Literal["open", "resolved", "all"] = "open"
    rule: str | None = None
    severity: str | None = None
    domain: str | None = None


def _conds(filt: ViolationFilter, visible: Visible) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [visible(col(Violation.domain), col(Violation.job_uid))]
    if filt.status == "open":
        conds.append(col(Violation.resolved_at).is_(None))
    elif filt.status == "resolved":
        conds.append(col(Violation.resolved_at).is_not(None))
    for column, value in (
        (Violation.rule, filt.rule),
        (Violation.severity, filt.severity),
        (Violation.domain, filt.domain),
    ):
        if value:
            conds.append(col(column) == value)
    return conds


def list_violations(
    session: Session,
    *,
    visible: Visible,
    filt: ViolationFilter,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[Violation]:
    """One page in id order; ``next_cursor`` continues after its last row."""
    conds = _conds(filt, visible)
    if cursor:
        (last,) = _dec(cursor)
        if not isinstance(last, int):
            raise InvalidCursor("the cursor is not one this API returned")
        conds.append(col(Violation.id) > last)
    stmt = select(Violation).where(and_(*conds)).order_by(col(Violation.id)).limit(limit + 1)
    rows = list(session.execute(stmt).scalars().all())
    nxt = _enc([rows[limit - 1].id]) if len(rows) > limit else None
    return Page(rows[:limit], nxt)


def count_violations(session: Session, *, visible: Visible, filt: ViolationFilter) -> int:
    stmt = select(func.count()).select_from(Violation).where(and_(*_conds(filt, visible)))
    return int(session.execute(stmt).scalar_one())
