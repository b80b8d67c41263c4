"""Dependencies that fire and retry policies that heal, on both databases.

Two fake schedulers stand for two tools; a run ending in one is synced through the real
sync path (the outbox row is written in the same transaction) and the dispatcher fires
the downstream job through ``gateway.actions.perform``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import anyio
import pytest
import yaml
from sqlalchemy import Engine, select
from sqlmodel import col

from adapters.testing.fake import FakeSystem, systems
from gateway.authz import PolicyCache
from gateway.automation import Dispatcher
from gateway.config import ConfigRefused, apply_plan, load_documents, plan
from gateway.model import RunState
from gateway.store import session_scope
from gateway.store.tables import AuditRecord, Edge, Firing
from gateway.sync import SyncManager

BASE = """
apiVersion: accord.dev/v1
kind: Source
metadata: {name: up, domain: data}
spec: {type: fake, system: auto-up}
---
apiVersion: accord.dev/v1
kind: Source
metadata: {name: down, domain: ops}
spec: {type: fake, system: auto-down}
---
apiVersion: accord.dev/v1
kind: RoleBinding
metadata: {name: automation}
spec:
  role: operator
  domains: ["*"]
  subjects: [dependency:extract-to-report, dependency:on-fail, dependency:all-three,
             dependency:race, dependency:held, dependency:dropped, dependency:needs-ok,
             dependency:flaky, dependency:crash, retry-policy:heal-extract,
             retry-policy:remediate]
"""


def docs(text: str) -> list[object]:
    return [d for d in yaml.safe_load_all(text) if d]


def apply(engine: Engine, text: str) -> None:
    res = load_documents([("test.yaml", i, d) for i, d in enumerate(docs(text), 1)])
    assert res.ok, [str(e) for e in res.errors]
    with session_scope(engine) as s:
        apply_plan(s, plan(s, res.documents), subject="test", channel="cli")


def dependency(name: str, upstream: str | list[str], downstream: str, **extra: object) -> str:
    spec = {"upstream": upstream, "downstream": downstream, "trigger": True, **extra}
    return yaml.safe_dump(
        {
            "apiVersion": "accord.dev/v1",
            "kind": "Dependency",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


class World:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.up = FakeSystem("auto-up", page_size=50)
        self.down = FakeSystem("auto-down", page_size=50)
        for j in ("extract", "load", "audit"):
            self.up.add_job(j)
        self.down.add_job("report")
        self.down.add_job("cleanup")
        systems.update({"auto-up": self.up, "auto-down": self.down})
        apply(engine, BASE)
        self.sync("up")
        self.sync("down")

    def sync(self, source: str) -> None:
        report = anyio.run(SyncManager(self.engine).sync_now, source)
        assert report.error is None, report.error

    def dispatcher(self) -> Dispatcher:
        return Dispatcher(self.engine, manager=None, policy=PolicyCache(self.engine))

    def dispatch(self) -> int:
        return anyio.run(self.dispatcher().run_once)

    def firings(self) -> list[Firing]:
        with session_scope(self.engine, write=False) as s:
            return list(s.execute(select(Firing).order_by(col(Firing.id))).scalars())

    def triggers(self) -> list[str]:
        return [r.id for r in self.down.runs.values() if r.job == "report"]

    def finish(self, sys: FakeSystem, job: str, state: RunState = RunState.SUCCESS) -> str:
        rid = sys.start_run(job)
        sys.finish(rid, state)
        return rid


@pytest.fixture
def world(any_engine: Engine) -> Iterator[World]:
    w = World(any_engine)
    yield w
    systems.pop("auto-up", None)
    systems.pop("auto-down", None)


def test_upstream_success_fires_downstream_once_with_mapped_params(world: World) -> None:
    apply(
        world.engine,
        dependency(
            "extract-to-report",
            "up/extract",
            "down/report",
            params={"UPSTREAM": "{{ upstream.run_uid }}", "KEY": "{{ firing.key }}"},
        ),
    )
    rid = world.finish(world.up, "extract")
    world.sync("up")
    [row] = world.firings()
    assert row.status == "pending" and row.upstream_runs == [f"up/{rid}"]
    assert row.params == {"UPSTREAM": f"up/{rid}", "KEY": row.key}
    assert world.dispatch() == 1
    assert len(world.triggers()) == 1, world.firings()
    [row] = world.firings()
    assert row.status == "fired" and row.result_run_uid == f"down/{world.triggers()[0]}"
    # The same run reported again (a re-sync, a replay) fires nothing more.
    world.up.runs[rid].seq += 100
    world.sync("up")
    world.dispatch()
    assert len(world.triggers()) == 1 and len(world.firings()) == 1
    with session_scope(world.engine, write=False) as s:
        edges = {
            (e.kind, e.src_uid, e.dst_uid, e.evidence)
            for e in s.execute(select(Edge).where(col(Edge.reported_by).in_(["config", "accord"])))
            .scalars()
            .all()
        }
        audit = s.execute(
            select(AuditRecord).where(col(AuditRecord.request_id) == row.key)
        ).scalars()
        outcomes = [(a.subject, a.channel, a.outcome) for a in audit]
    assert ("depends_on", "up/extract", "down/report", "dependency extract-to-report") in edges
    assert (
        "triggered",
        f"up/{rid}",
        row.result_run_uid,
        "dependency extract-to-report",
    ) in edges
    assert outcomes == [
        ("dependency:extract-to-report", "system", "started"),
        ("dependency:extract-to-report", "system", "ok"),
    ]


def test_condition_failed_does_not_fire_on_success(world: World) -> None:
    apply(world.engine, dependency("on-fail", "up/extract", "down/cleanup", when=["failed"]))
    world.finish(world.up, "extract", RunState.SUCCESS)
    world.sync("up")
    assert world.firings() == []
    world.finish(world.up, "extract", RunState.FAILED)
    world.sync("up")
    world.dispatch()
    assert [f.status for f in world.firings()] == ["fired"]
    assert [r.job for r in world.down.runs.values()] == ["cleanup"]


def test_fan_in_fires_once_when_all_upstreams_are_done(world: World) -> None:
    ups = ["up/extract", "up/load", "up/audit"]
    apply(world.engine, dependency("all-three", ups, "down/report"))
    world.finish(world.up, "extract")
    world.finish(world.up, "load")
    world.sync("up")
    assert world.firings() == []  # audit has not run
    world.finish(world.up, "audit")
    world.sync("up")
    [row] = world.firings()
    assert len(row.upstream_runs) == 3
    world.dispatch()
    assert len(world.triggers()) == 1
    # One more audit run alone does not complete a new set: extract and load were used.
    world.finish(world.up, "audit")
    world.sync("up")
    assert len(world.firings()) == 1


def test_two_dispatchers_racing_fire_each_firing_at_most_once(world: World) -> None:
    apply(world.engine, dependency("race", "up/extract", "down/report"))
    for _ in range(8):
        world.finish(world.up, "extract")
    world.sync("up")
    assert len(world.firings()) == 8
    world.down.delay = 0.02  # keep calls in flight while the other dispatcher claims
    barrier = threading.Barrier(2)

    def run() -> None:
        d = world.dispatcher()
        barrier.wait()
        for _ in range(5):
            anyio.run(d.run_once)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(world.triggers()) == 8
    assert {f.status for f in world.firings()} == {"fired"}
    assert len({f.result_run_uid for f in world.firings()}) == 8


def test_freeze_holds_then_fires_and_drop_drops(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCORD_AUTOMATION_HOLD_RECHECK", "0")
    now = datetime.now(UTC)
    freeze = f"""
apiVersion: accord.dev/v1
kind: Guardrail
metadata: {{name: quiet}}
spec:
  type: freeze
  selector: {{jobs: ["down/*"]}}
  windows: [{{start: "{(now - timedelta(hours=1)).isoformat()}", duration: 2h}}]
"""
    apply(world.engine, freeze)
    apply(world.engine, dependency("held", "up/extract", "down/report"))
    apply(world.engine, dependency("dropped", "up/load", "down/cleanup", onFreeze="drop"))
    world.finish(world.up, "extract")
    world.finish(world.up, "load")
    world.sync("up")
    world.dispatch()
    status = {f.rule: f.status for f in world.firings()}
    assert status == {"held": "held", "dropped": "dropped"}
    assert world.down.runs == {}
    # The freeze ends (here: the window is moved into the past): the held firing fires.
    apply(
        world.engine,
        freeze.replace("hours=1", "hours=5").replace(
            (now - timedelta(hours=1)).isoformat(), (now - timedelta(hours=5)).isoformat()
        ),
    )
    world.dispatch()
    status = {f.rule: f.status for f in world.firings()}
    assert status == {"held": "fired", "dropped": "dropped"}
    assert len(world.triggers()) == 1
    assert not [r for r in world.down.runs.values() if r.job == "cleanup"]


def test_approval_makes_the_firing_wait(world: World) -> None:
    apply(
        world.engine,
        """
apiVersion: accord.dev/v1
kind: Guardrail
metadata: {name: four-eyes}
spec: {type: approval, selector: {jobs: ["down/report"]}, actions: [trigger]}
""",
    )
    apply(world.engine, dependency("needs-ok", "up/extract", "down/report"))
    world.finish(world.up, "extract")
    world.sync("up")
    world.dispatch()
    [row] = world.firings()
    assert row.status == "waiting" and row.approval_id is not None
    assert world.triggers() == []
    world.dispatch()  # still waiting: nothing fires twice
    assert world.firings()[0].status == "waiting" and world.triggers() == []


def test_denied_subject_is_retried_then_fails_never_firing(world: World) -> None:
    apply(
        world.engine,
        dependency(
            "no-rights",
            "up/extract",
            "down/report",
            subject="robot",
            delivery={"maxAttempts": 2, "backoff": "0s"},
        ),
    )
    world.finish(world.up, "extract")
    world.sync("up")
    world.dispatch()
    [row] = world.firings()
    assert row.status == "retrying" and row.attempts == 1
    world.dispatch()
    [row] = world.firings()
    assert row.status == "failed" and "gave up after 2" in row.message
    assert world.triggers() == []
    with session_scope(world.engine, write=False) as s:
        denied = s.execute(
            select(AuditRecord).where(
                col(AuditRecord.request_id) == row.key, col(AuditRecord.outcome) == "denied"
            )
        ).scalars()
        assert len(list(denied)) == 2


def test_tool_down_is_retried_and_fires_once_when_back(world: World) -> None:
    from gateway.model import AdapterUnavailable

    apply(
        world.engine,
        dependency("flaky", "up/extract", "down/report", delivery={"backoff": "0s"}),
    )
    world.finish(world.up, "extract")
    world.sync("up")
    world.down.fault = AdapterUnavailable("down for maintenance")
    world.dispatch()
    assert world.firings()[0].status == "retrying"
    world.down.fault = None
    world.dispatch()
    world.dispatch()
    assert world.firings()[0].status == "fired" and len(world.triggers()) == 1


def test_stale_claim_recovery_refires_only_when_nothing_reached_the_tool(world: World) -> None:
    from gateway.automation import claim_due, recover_stale

    apply(world.engine, dependency("crash", "up/extract", "down/report"))
    world.finish(world.up, "extract")
    world.finish(world.up, "extract")
    world.sync("up")
    claimed = claim_due(world.engine, worker="dead")
    assert len(claimed) == 2
    # The dead dispatcher had recorded the intent of the second one (the tool may have
    # acted): that one must never fire again.
    from gateway.audit import AuditEntry, record

    second = claimed[1].firing
    record(
        world.engine,
        AuditEntry(
            subject=second.subject,
            channel="system",
            action="trigger",
            target=second.job_uid,
            domain="ops",
            decision="allow",
            outcome="started",
            request_id=second.key,
        ),
    )
    assert recover_stale(world.engine, lease=timedelta(0)) == 2
    world.dispatch()
    status = [f.status for f in world.firings()]
    assert status == ["fired", "unknown"]
    assert len(world.triggers()) == 1


def test_retry_policy_retries_failed_runs_within_bounds(world: World) -> None:
    apply(
        world.engine,
        """
apiVersion: accord.dev/v1
kind: RetryPolicy
metadata: {name: heal-extract}
spec:
  selector: {jobs: ["up/extract"]}
  match: {nativeStates: [FAILED]}
  maxAttempts: 2
  backoff: 0s
""",
    )
    first = world.finish(world.up, "extract", RunState.FAILED)
    world.sync("up")
    world.dispatch()
    [row] = world.firings()
    assert row.status == "fired" and row.action == "retry" and row.run_uid == f"up/{first}"
    retried = row.result_run_uid
    assert retried is not None
    assert world.up.runs[retried.split("/", 1)[1]].trigger.value == "retry"
    # The retry fails too: the chain reached maxAttempts (2 runs), so it stops there.
    world.up.finish(retried.split("/", 1)[1], RunState.FAILED)
    world.sync("up")
    world.dispatch()
    rows = world.firings()
    assert [r.status for r in rows] == ["fired", "skipped"]
    assert "attempt limit" in rows[1].message
    with session_scope(world.engine, write=False) as s:
        edge = s.execute(
            select(Edge).where(col(Edge.kind) == "triggered", col(Edge.dst_uid) == retried)
        ).scalar_one()
    assert edge.evidence == "retried by policy heal-extract"


def test_retry_policy_hourly_bound_and_message_match(world: World) -> None:
    apply(
        world.engine,
        """
apiVersion: accord.dev/v1
kind: RetryPolicy
metadata: {name: remediate}
spec:
  selector: {domains: [data]}
  action: remediate
  remediation: down/cleanup
  maxAttempts: 5
  maxPerHour: 2
  backoff: 0s
""",
    )
    for _ in range(3):
        world.finish(world.up, "load", RunState.FAILED)
    world.finish(world.up, "load", RunState.SUCCESS)
    world.sync("up")
    world.dispatch()
    rows = world.firings()
    assert [r.status for r in rows] == ["fired", "fired", "skipped"]
    assert "hourly limit" in rows[2].message
    assert [r.job for r in world.down.runs.values()] == ["cleanup", "cleanup"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            dependency("bad-var", "up/extract", "down/report", params={"X": "{{ upstream.nope }}"}),
            "unknown template variable {{ upstream.nope }}",
        ),
        (
            dependency("a", "up/extract", "down/report")
            + "---\n"
            + dependency("b", "down/report", "up/extract"),
            "dependencies form a cycle: down/report -> up/extract (Dependency/b), "
            "up/extract -> down/report (Dependency/a)",
        ),
        (
            dependency("bad-when", "up/extract", "down/report", when=["finished"]),
            "unknown condition(s) ['finished']",
        ),
    ],
)
def test_validate_names_file_document_and_field(text: str, expected: str) -> None:
    res = load_documents([("deps.yaml", i, d) for i, d in enumerate(docs(text), 1)])
    assert not res.ok
    msgs = [str(e) for e in res.errors]
    assert any(expected in m and m.startswith("deps.yaml: document ") for m in msgs), msgs
    assert any("spec." in m for m in msgs), msgs


def test_apply_refuses_unknown_jobs_and_cycles_with_what_is_stored(world: World) -> None:
    with pytest.raises(ConfigRefused) as info:
        apply(world.engine, dependency("ghost", "up/extract", "down/no-such-job"))
    assert "job 'down/no-such-job' does not exist in source 'down'" in str(info.value)
    with pytest.raises(ConfigRefused) as info:
        apply(world.engine, dependency("nowhere", "jenkins/x", "down/report"))
    assert "no source 'jenkins' is configured" in str(info.value)
    apply(world.engine, dependency("a", "up/extract", "down/report"))
    with pytest.raises(ConfigRefused) as info:
        apply(world.engine, dependency("b", "down/report", "up/extract"))
    assert "cycle" in str(info.value) and "Dependency/a" in str(info.value)
    with session_scope(world.engine, write=False) as s:
        names = [r.rule for r in s.execute(select(Firing)).scalars()]
    assert names == []


def test_demo_federation_declares_a_chain_across_tools() -> None:
    from gateway.demo import builtin_documents, chain_documents

    jenkins = {"kind": "Source", "metadata": {"name": "demo-jenkins"}}
    chain = chain_documents([*builtin_documents(), jenkins])
    res = load_documents([("demo", i, d) for i, d in enumerate(chain, 1)], check_secrets=False)
    assert res.ok, [str(e) for e in res.errors]
    deps = {d.name: d.resource for d in res.documents if d.kind == "Dependency"}
    dep = deps["revenue-mart-to-shop-build"]
    assert dep.spec.upstreams == ["demo-etl/build_revenue_mart"]  # type: ignore[attr-defined]
    assert dep.spec.downstream.startswith("demo-jenkins/")  # type: ignore[attr-defined]
    pack = deps["books-to-finance-pack"]
    assert pack.spec.upstreams == ["demo-etl/close_books"]  # type: ignore[attr-defined]
    assert pack.spec.downstream == "demo-jenkins/finance/publish-pack"  # type: ignore[attr-defined]
    [sla] = [d.resource for d in res.documents if d.kind == "SLA"]
    assert sla.spec.selector.jobs == ["demo-jenkins/finance/publish-pack"]  # type: ignore[attr-defined]
    assert chain_documents(builtin_documents()) == []


def test_demo_sla_is_due_before_the_upstream_it_waits_for_closes() -> None:
    from gateway.demo import builtin_documents, finance_close

    # The books close 90 min after the demo starts; the pack is due 60 min after it, on
    # the same local day of the SLA's zone (New York when UTC's day ends within 100 min).
    assert finance_close(datetime(2026, 12, 2, 10, 0, tzinfo=UTC)) == (
        "UTC",
        "30 11 * * *",
        "11:00",
    )
    assert finance_close(datetime(2026, 12, 2, 23, 0, tzinfo=UTC)) == (
        "America/New_York",
        "30 0 * * *",
        "19:00",
    )
    etl = next(d for d in builtin_documents(datetime(2026, 12, 2, 10, 0, tzinfo=UTC)))
    close = next(j for j in etl["spec"]["jobs"] if j["id"] == "close_books")
    assert close["schedule"] == "30 11 * * *"
