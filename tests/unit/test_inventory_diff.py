from __future__ import annotations

from gateway.model import JobRecord
from gateway.store.services.ingest import definition_hash, diff_inventory


def j(nid: str, desc: str | None = None) -> JobRecord:
    return JobRecord(native_id=nid, name=nid, native_type="t", description=desc)


def test_diff_is_pure_and_complete() -> None:
    stored = {
        "same": (definition_hash(j("same")), False),
        "changed": (definition_hash(j("changed")), False),
        "dead": (definition_hash(j("dead")), True),
        "gone": (definition_hash(j("gone")), False),
    }
    listed = [j("same"), j("changed", "edited"), j("dead"), j("new"), j("new")]
    d = diff_inventory(stored, listed)
    assert [r.native_id for r in d.new] == ["new"], "a job listed twice counts once"
    assert [r.native_id for r in d.changed] == ["changed"]
    assert [r.native_id for r in d.revived] == ["dead"]
    assert [r.native_id for r in d.unchanged] == ["same"]
    assert d.gone == ["gone"]


def test_next_run_does_not_count_as_a_change() -> None:
    from datetime import UTC, datetime

    a = JobRecord(native_id="a", name="a", native_type="t", next_run_at=datetime.now(UTC))
    b = JobRecord(native_id="a", name="a", native_type="t")
    assert definition_hash(a) == definition_hash(b)
