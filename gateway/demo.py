"""The demo federation: sample sources a newcomer sees at once.

Everything here is labelled demo (``accord.dev/demo: "true"`` and ``spec.demo: true``).
It comprises the built-in demo scheduler and whatever each installed adapter contributes
through ``adapters.<type>.demo.start_demo`` (simulators and sample data).
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from adapters.base import DemoPart, registry

__all__ = [
    "DemoFederation",
    "builtin_documents",
    "chain_documents",
    "demo_steps",
    "feed_openlineage",
    "finance_close",
    "inbox_documents",
    "openlineage_demo_events",
    "run_demo_activity",
    "start_demo",
]

_log = logging.getLogger(__name__)
_LABELS = {"accord.dev/demo": "true"}


def _source(name: str, domain: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "accord.dev/v1",
        "kind": "Source",
        "metadata": {"name": name, "domain": domain, "labels": dict(_LABELS)},
        "spec": {"demo": True, "sync": {"inventoryEvery": "1m", "runsEvery": "10s"}, **spec},
    }


def finance_close(now: datetime) -> tuple[str, str, str]:
    """The times of the demo's at-risk SLA, set from when the demo starts so it is at risk
    at once: the books close (demo scheduler) 90 minutes from now, and the finance pack
    that waits for them (Jenkins simulator) is due 60 minutes from now. Returns the SLA's
    time zone, the close job's cron line (UTC) and the deadline (HH:MM in that zone); the
    zone is UTC unless the next 100 minutes cross midnight there, then New York."""
    tz = "UTC"
    if (now + timedelta(minutes=100)).date() != now.date():
        tz = "America/New_York"
    from zoneinfo import ZoneInfo

    close = (now + timedelta(minutes=90)).astimezone(UTC)
    deadline = (now + timedelta(minutes=60)).astimezone(ZoneInfo(tz))
    return tz, f"{close.minute} {close.hour} * * *", f"{deadline:%H:%M}"


def builtin_documents(now: datetime | None = None) -> list[dict[str, Any]]:
    _, close_cron, _ = finance_close(now or datetime.now(UTC))
    etl = [
        {
            "id": "close_books",
            "schedule": close_cron,
            "minutes": 15,
            "fail_rate": 0.0,
            "owners": ["finance"],
            "labels": {"env": "prod"},
            "description": "Close the day's books (the finance pack in Jenkins waits for it)",
        },
        {
            "id": "ingest_orders",
            "schedule": "*/15 * * * *",
            "minutes": 4,
            "fail_rate": 0.05,
            "owners": ["data-eng"],
            "labels": {"tier": "gold", "env": "prod"},
            "produces": ["warehouse.raw_orders"],
            "description": "Load orders from the shop DB",
        },
        {
            "id": "ingest_payments",
            "schedule": "*/30 * * * *",
            "minutes": 6,
            "fail_rate": 0.15,
            "owners": ["data-eng"],
            "labels": {"tier": "gold", "env": "prod"},
            "produces": ["warehouse.raw_payments"],
        },
        {
            "id": "build_revenue_mart",
            "schedule": "5 * * * *",
            "minutes": 12,
            "fail_rate": 0.1,
            "owners": ["analytics"],
            "labels": {"env": "prod"},
            "consumes": ["warehouse.raw_orders", "warehouse.raw_payments"],
            "produces": ["warehouse.revenue_daily"],
            "upstream": ["ingest_orders", "ingest_payments"],
        },
        {
            "id": "finance_report",
            "schedule": "0 6 * * *",
            "minutes": 20,
            "fail_rate": 0.2,
            "labels": {"env": "prod"},
            "consumes": ["warehouse.revenue_daily"],
            "upstream": ["build_revenue_mart"],
            "description": "Daily finance PDF (no owner!)",
        },
        {
            "id": "ml_features",
            "schedule": "0 */4 * * *",
            "minutes": 25,
            "fail_rate": 0.1,
            "owners": ["ml-platform"],
            "consumes": ["warehouse.raw_orders"],
            "produces": ["features.customer_v3"],
        },
        {
            "id": "legacy_export",
            "schedule": "0 2 * * 0",
            "minutes": 3,
            "paused": True,
            "owners": ["data-eng"],
            "description": "Paused since the CRM migration",
        },
    ]
    platform = [
        {
            "id": "db-backup",
            "schedule": "0 1 * * *",
            "minutes": 18,
            "fail_rate": 0.05,
            "owners": ["sre"],
            "labels": {"env": "prod"},
        },
        {
            "id": "cert-renewal",
            "schedule": "30 4 * * *",
            "minutes": 1,
            "fail_rate": 0.02,
            "owners": ["sre"],
        },
        {
            "id": "log-rotate",
            "schedule": "*/10 * * * *",
            "minutes": 1,
            "fail_rate": 0.0,
            "owners": ["sre"],
        },
        {
            "id": "warehouse-vacuum",
            "schedule": "45 3 * * *",
            "minutes": 30,
            "fail_rate": 0.1,
            "owners": ["sre"],
            "upstream": ["demo-etl:build_revenue_mart"],
        },
    ]
    return [
        _source("demo-etl", "data", {"type": "demo", "seed": "etl", "jobs": etl}),
        _source("demo-platform", "platform", {"type": "demo", "seed": "ops", "jobs": platform}),
        *governance_documents(),
    ]


def _doc(kind: str, name: str, spec: dict[str, Any], domain: str = "default") -> dict[str, Any]:
    return {
        "apiVersion": "accord.dev/v1",
        "kind": kind,
        "metadata": {"name": name, "domain": domain, "labels": dict(_LABELS)},
        "spec": spec,
    }


def governance_documents() -> list[dict[str, Any]]:
    """Domains, roles, guardrails, an SLA and the starter compliance rules for the demo."""
    import yaml

    from policies import POLICY_DIR

    rules = [
        d for d in yaml.safe_load_all((POLICY_DIR / "rules" / "starter.yaml").read_text()) if d
    ]
    for r in rules:
        r["metadata"].setdefault("labels", dict(_LABELS))
    return [
        _doc("Domain", "data", {"description": "Data platform", "production": True}),
        _doc("Domain", "platform", {"description": "SRE and infrastructure"}),
        _doc(
            "Role",
            "data-operator",
            {
                "rules": [
                    {"actions": ["read", "trigger", "cancel", "retry"], "objects": ["demo-etl/*"]},
                    {"actions": ["pause"], "objects": ["*/finance_*"], "effect": "deny"},
                ]
            },
        ),
        _doc(
            "RoleBinding",
            "data-team",
            {"role": "data-operator", "subjects": ["dana"], "domains": ["data"]},
        ),
        _doc(
            "Guardrail",
            "finance-four-eyes",
            {
                "type": "approval",
                "selector": {"jobs": ["demo-etl/finance_*"]},
                "actions": ["trigger", "pause"],
                "expiresAfter": "24h",
            },
        ),
        _doc(
            "Guardrail",
            "weekend-freeze",
            {
                "type": "freeze",
                "selector": {"domains": ["platform"]},
                "actions": ["trigger", "pause", "resume"],
                "windows": [{"start": "0 18 * * 5", "duration": "62h", "timezone": "UTC"}],
            },
        ),
        _doc(
            "Guardrail",
            "ai-agents",
            {
                "type": "agent-limit",
                "subjects": ["agent:*"],
                "actions": ["trigger"],
                "ratePerHour": 10,
            },
        ),
        _doc(
            "SLA",
            "orders-fresh",
            {"selector": {"jobs": ["demo-etl/ingest_orders"]}, "maxDuration": "30m"},
        ),
        # At risk most of the day: the daily report's data must never be older than 23 h,
        # and the next run (06:00, ~20 min) is predicted to end after the data expires.
        _doc(
            "SLA",
            "finance-report-fresh",
            {"selector": {"jobs": ["demo-etl/finance_report"]}, "maxAge": "23h"},
            domain="data",
        ),
        # The nightly vacuum waits for the revenue mart (a depends_on edge across sources).
        _doc(
            "SLA",
            "vacuum-by-four",
            {
                "selector": {"jobs": ["demo-platform/warehouse-vacuum"]},
                "finishBy": "04:00",
                "timezone": "UTC",
            },
            domain="platform",
        ),
        *rules,
    ]


@dataclass
class DemoFederation:
    documents: list[dict[str, Any]] = field(default_factory=list)
    parts: list[DemoPart] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def stop(self) -> None:
        for part in self.parts:
            try:
                part.stop()
            except Exception as exc:  # stopping one part must not keep others running
                _log.warning("stopping a demo part failed: %s", exc)


def start_demo(workdir: Path, now: datetime | None = None) -> DemoFederation:
    """Start every adapter's demo part; return their documents with the built-in ones."""
    now = now or datetime.now(UTC)
    fed = DemoFederation(documents=builtin_documents(now))
    for type_ in registry.types():
        try:
            module = importlib.import_module(f"adapters.{type_}.demo")
        except ModuleNotFoundError:
            continue
        start = getattr(module, "start_demo", None)
        if start is None:
            continue
        part_dir = workdir / type_
        part_dir.mkdir(parents=True, exist_ok=True)
        try:
            part: DemoPart = start(part_dir)
        except Exception as exc:  # one broken demo part must not hide the others
            fed.problems.append(f"demo {type_}: {exc}")
            _log.warning("the %s demo could not start: %s", type_, exc)
            continue
        os.environ.update(part.env)
        fed.parts.append(part)
        for doc in part.documents:
            labels = doc.setdefault("metadata", {}).setdefault("labels", {})
            labels.setdefault("accord.dev/demo", "true")
            if part.simulated:
                labels["accord.dev/simulator"] = "true"
        fed.documents.extend(part.documents)
    fed.documents.extend(chain_documents(fed.documents, now))
    return fed


# -- what the demo does on its first start ------------------------------------------------------
DEMO_PEOPLE = {
    # subject: (role, domain, why the token exists)
    "dana": ("data-operator", "data", "demo: the data team's operator"),
    "priya": ("approver", "data", "demo: a second person who approves"),
}


@dataclass
class DemoStep:
    who: str
    method: str
    path: str
    body: dict[str, Any] | None
    expect: int


def demo_steps(approval_id: int | None = None) -> list[DemoStep]:
    """The first start's actions, taken through the public API like any client's, so the
    audit trail shows what it is for: a trigger, a trigger held for four-eyes approval,
    its approval by a second person (which runs it), and a pause the policy refuses."""
    steps = [
        DemoStep(
            "dana",
            "POST",
            "/api/v1/jobs/demo-etl/ingest_orders/trigger",
            {"reason": "demo: reload orders after the shop's late export"},
            200,
        ),
        DemoStep(
            "dana",
            "POST",
            "/api/v1/jobs/demo-etl/finance_report/trigger",
            {"reason": "demo: finance asked for today's report again"},
            200,
        ),
    ]
    if approval_id is not None:
        steps = [
            DemoStep(
                "priya",
                "POST",
                f"/api/v1/approvals/{approval_id}/approve",
                {"reason": "demo: checked with finance"},
                200,
            ),
            DemoStep(
                "dana",
                "POST",
                "/api/v1/jobs/demo-etl/finance_report/pause",
                {"reason": "demo: an operator may not pause finance jobs"},
                403,
            ),
        ]
    return steps


def run_demo_activity(url: str, engine: Any, *, timeout: float = 120.0) -> list[str]:
    """Wait for the gateway at ``url`` to serve the demo's jobs, then take the demo's
    actions as two demo people (tokens made for this and revoked afterwards). Returns one
    line per action. Bounded by ``timeout``; a step that answers unexpectedly is reported,
    not retried."""
    import time

    import httpx

    from gateway.store import session_scope
    from gateway.store.services.tokens import create_token, revoke_token
    from gateway.store.types import utcnow

    tokens: dict[str, str] = {}
    ids: list[int] = []
    with session_scope(engine) as s:
        for who, (role, domain, why) in DEMO_PEOPLE.items():
            new = create_token(
                s,
                subject=who,
                role=role,
                domain=domain,
                description=f"{why} (revoked after the first start)",
                expires_at=utcnow() + timedelta(seconds=timeout + 60),
            )
            tokens[who] = new.token
            assert new.record.id is not None
            ids.append(new.record.id)
    report: list[str] = []
    try:
        with httpx.Client(base_url=url, timeout=30) as client:

            def call(step: DemoStep) -> httpx.Response:
                return client.request(
                    step.method,
                    step.path,
                    json=step.body,
                    headers={
                        "Authorization": f"Bearer {tokens[step.who]}",
                        "X-Accord-Channel": "api",
                    },
                )

            deadline = time.monotonic() + timeout
            ready = False
            while time.monotonic() < deadline:
                try:
                    res = client.get(
                        "/api/v1/jobs/demo-etl/finance_report",
                        headers={"Authorization": f"Bearer {tokens['dana']}"},
                    )
                    if res.status_code == 200:
                        ready = True
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            if not ready:
                return [f"the demo's jobs did not appear within {timeout:.0f} s; no demo actions"]
            approval_id: int | None = None
            for step in demo_steps():
                approval_id = _take(call, step, report) or approval_id
            if approval_id is None:
                report.append("no approval request was made; the approval step is left out")
            else:
                for step in demo_steps(approval_id):
                    _take(call, step, report)
    finally:
        with session_scope(engine) as s:
            for token_id in ids:
                revoke_token(s, token_id=token_id)
    return report


def _take(call: Any, step: DemoStep, report: list[str]) -> int | None:
    """Take one step; note the answer; return the approval id it created, if any."""
    res = call(step)
    body = res.json() if res.content else {}
    outcome = body.get("outcome") or (body.get("error") or {}).get("code")
    mark = "" if res.status_code == step.expect else f" (expected {step.expect})"
    report.append(f"{step.who}: {step.method} {step.path} -> {res.status_code} {outcome}{mark}")
    approval = body.get("approval_id")
    return int(approval) if approval is not None else None


def chain_documents(
    documents: list[dict[str, Any]], now: datetime | None = None
) -> list[dict[str, Any]]:
    """Chains across tools when the demo Jenkins runs: each successful build of the demo
    revenue mart (demo scheduler) triggers the shop build in the Jenkins simulator, and
    closing the books (demo scheduler) triggers the finance pack (Jenkins), whose SLA is
    at risk because of the upstream it waits for."""
    sources = {d["metadata"]["name"] for d in documents if d.get("kind") == "Source"}
    if "demo-jenkins" not in sources:
        return []
    name = "revenue-mart-to-shop-build"
    tz, _, deadline = finance_close(now or datetime.now(UTC))
    return [
        _doc(
            "Dependency",
            "books-to-finance-pack",
            {
                "upstream": "demo-etl/close_books",
                "downstream": "demo-jenkins/finance/publish-pack",
                "when": ["success"],
                "trigger": True,
            },
            domain="data",
        ),
        # At risk from the start: the pack must be out by the deadline, and the books it
        # waits for close half an hour after it. The reason names the upstream.
        _doc(
            "SLA",
            "finance-pack-on-time",
            {
                "selector": {"jobs": ["demo-jenkins/finance/publish-pack"]},
                "finishBy": deadline,
                "timezone": tz,
            },
            domain="data",
        ),
        _doc(
            "Dependency",
            name,
            {
                "upstream": "demo-etl/build_revenue_mart",
                "downstream": "demo-jenkins/platform/app/build",
                "when": ["success"],
                "trigger": True,
                "params": {"BRANCH": "main"},
            },
            domain="platform",
        ),
        _doc(
            "RoleBinding",
            "demo-automation",
            {
                "role": "operator",
                "subjects": [f"dependency:{name}", "dependency:books-to-finance-pack"],
                "domains": ["*"],
            },
        ),
    ]


# -- notifications: a signed webhook to the gateway's own demo inbox ------------------------
DEMO_INBOX_PATH = "/api/v1/demo/notifications"
DEMO_INBOX_SECRET_ENV = "ACCORD_SECRET_DEMO_INBOX"


def inbox_documents(gateway_url: str) -> list[dict[str, Any]]:
    """A Notifier that sends the events worth a look, signed, to the demo inbox of the
    gateway itself (``gateway.demo_inbox``), so the demo shows what a receiver gets."""
    return [
        _doc(
            "Notifier",
            "demo-inbox",
            {
                "type": "webhook",
                "url": gateway_url.rstrip("/") + DEMO_INBOX_PATH,
                "secretFrom": {"env": DEMO_INBOX_SECRET_ENV},
                # Not violation.opened: the starter rules open many at the first start.
                "route": {
                    "events": [
                        "run.failed",
                        "run.missed",
                        "sla.at_risk",
                        "sla.breached",
                        "approval.requested",
                        "dependency.held",
                        "dependency.refused",
                        "dependency.failed",
                    ]
                },
                "ratePerHour": 120,
            },
        )
    ]


# -- OpenLineage: a dbt-like project that sends its events to the demo's source -------------
OPENLINEAGE_SOURCE = "demo-lineage"
_DBT_PRODUCER = "https://accord.dev/demo/dbt"
_DBT_MODELS = [
    # (model, inputs, outputs): it reads what the demo's ETL writes, so the lineage joins.
    ("analytics.finance_kpis", ["warehouse.revenue_daily"], ["marts.finance_kpis"]),
    ("analytics.orders_enriched", ["warehouse.raw_orders"], ["marts.orders_enriched"]),
]


def openlineage_demo_events(n: int, now: datetime) -> list[dict[str, Any]]:
    """The OpenLineage RunEvents of the ``n``-th demo dbt invocation: a parent run for the
    invocation and one run per model, each START then COMPLETE (every fifth one of a
    model FAILs)."""
    schema = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
    started = now - timedelta(seconds=40)
    parent_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"accord-demo-dbt/{n}"))

    def at(t: datetime) -> str:
        return t.astimezone(UTC).isoformat().replace("+00:00", "Z")

    def body(kind: str, run: str, job: str, t: datetime, **extra: Any) -> dict[str, Any]:
        return {
            "eventType": kind,
            "eventTime": at(t),
            "producer": _DBT_PRODUCER,
            "schemaURL": schema,
            "run": {"runId": run, "facets": extra.pop("facets", {})},
            "job": {"namespace": "dbt-demo", "name": job},
            **extra,
        }

    parent = {
        "_producer": _DBT_PRODUCER,
        "_schemaURL": "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet",
        "run": {"runId": parent_id},
        "job": {"namespace": "dbt-demo", "name": "dbt-run-analytics"},
    }
    events = [body("START", parent_id, "dbt-run-analytics", started)]
    failed = False
    for i, (model, inputs, outputs) in enumerate(_DBT_MODELS):
        run = str(uuid.uuid5(uuid.NAMESPACE_URL, f"accord-demo-dbt/{n}/{model}"))
        datasets = {
            "inputs": [{"namespace": "demo", "name": d} for d in inputs],
            "outputs": [{"namespace": "demo", "name": d} for d in outputs],
        }
        end = "FAIL" if (n + i) % 5 == 0 else "COMPLETE"
        failed = failed or end == "FAIL"
        events.append(body("START", run, model, started, facets={"parent": parent}, **datasets))
        events.append(body(end, run, model, now - timedelta(seconds=5), **datasets))
    events.append(body("FAIL" if failed else "COMPLETE", parent_id, "dbt-run-analytics", now))
    return events


def feed_openlineage(url: str, engine: Any, stop: threading.Event, *, every: float = 60.0) -> None:
    """Send the demo's OpenLineage events to its ``openlineage`` source until ``stop``:
    one dbt invocation soon after the start, then one every ``every`` seconds. Uses a
    token of role ``agent`` made for this and revoked when it ends."""
    import httpx

    from gateway.store import session_scope
    from gateway.store.services.tokens import create_token, revoke_token
    from gateway.store.types import utcnow

    with session_scope(engine) as s:
        new = create_token(
            s,
            subject="demo-openlineage",
            role="agent",
            domain="data",
            description="demo: the dbt-like project that sends OpenLineage events",
            expires_at=utcnow() + timedelta(days=1),
        )
    token_id = new.record.id
    assert token_id is not None
    path = f"/api/v1/sources/{OPENLINEAGE_SOURCE}/openlineage"
    n = 0
    try:
        with httpx.Client(
            base_url=url, timeout=10, headers={"Authorization": f"Bearer {new.token}"}
        ) as client:
            # Wait for the gateway to serve (it starts after this thread), at most 2 min.
            for _ in range(240):
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if stop.wait(0.5):
                    return
            while not stop.wait(every if n else 0.0):
                n += 1
                for event in openlineage_demo_events(n, datetime.now(UTC)):
                    try:
                        res = client.post(path, json=event)
                    except httpx.HTTPError as exc:
                        _log.info("demo OpenLineage event not sent: %s", exc)
                        break
                    if res.status_code != 200:
                        _log.warning("demo OpenLineage event refused: %s", res.text[:200])
    finally:
        with session_scope(engine) as s:
            revoke_token(s, token_id=token_id)
