"""The events a Notifier can route besides runs and SLAs — a held (or dropped) firing, a
refused and a failed firing, an approval request, a compliance violation opened — reach a
real local receiver through the outbox, once per incident, on both databases."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from gateway.governance.notify import deliver_due
from gateway.model import SecretRef
from tests.automation.test_dependencies import World, apply, dependency, world  # noqa: F401
from tests.governance.test_notify import Receiver


def _no_secrets(ref: SecretRef) -> object:
    raise LookupError("no secrets here")


@pytest.fixture
def receiver(world: World) -> Iterator[Receiver]:  # noqa: F811
    r = Receiver()
    apply(
        world.engine,
        f"""
apiVersion: accord.dev/v1
kind: Notifier
metadata: {{name: oncall}}
spec:
  type: webhook
  url: {r.url}
  ratePerHour: 1000
  route: {{events: [dependency.held, dependency.refused, dependency.failed,
                    approval.requested, violation.opened]}}
""",
    )
    yield r
    r.close()


def _deliver(w: World) -> None:
    anyio.run(lambda: deliver_due(w.engine, secrets=_no_secrets))  # type: ignore[arg-type]


def _received(r: Receiver) -> list[dict[str, object]]:
    return [json.loads(body) for _, body in r.bodies]


def _types(r: Receiver) -> Counter[str]:
    return Counter(str(b["type"]) for b in _received(r))


def test_held_and_dropped_firings_are_notified_once(
    world: World,  # noqa: F811
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACCORD_AUTOMATION_HOLD_RECHECK", "0")
    now = datetime.now(UTC)
    apply(
        world.engine,
        f"""
apiVersion: accord.dev/v1
kind: Guardrail
metadata: {{name: quiet}}
spec:
  type: freeze
  selector: {{jobs: ["down/*"]}}
  windows: [{{start: "{(now - timedelta(hours=1)).isoformat()}", duration: 2h}}]
""",
    )
    apply(world.engine, dependency("held", "up/extract", "down/report"))
    apply(world.engine, dependency("dropped", "up/load", "down/cleanup", onFreeze="drop"))
    world.finish(world.up, "extract")
    world.finish(world.up, "load")
    world.sync("up")
    for _ in range(3):  # the held firing is tried again on every pass
        world.dispatch()
        _deliver(world)
    assert {f.rule: f.status for f in world.firings()} == {"held": "held", "dropped": "dropped"}
    got = _received(receiver)
    assert sorted(str(b["title"]) for b in got) == [
        "Dependency firing dropped: dropped → down/cleanup",
        "Dependency firing held: held → down/report",
    ]
    assert all(b["type"] == "dependency.held" for b in got)
    assert all("freeze" in str(b["text"]) or "quiet" in str(b["text"]) for b in got), got


def test_refused_then_failed_firing_is_notified_once_each(
    world: World,  # noqa: F811
    receiver: Receiver,
) -> None:
    apply(
        world.engine,
        dependency(
            "no-rights",
            "up/extract",
            "down/report",
            subject="robot",
            delivery={"maxAttempts": 3, "backoff": "0s"},
        ),
    )
    world.finish(world.up, "extract")
    world.sync("up")
    for _ in range(3):
        world.dispatch()
        _deliver(world)
    [row] = world.firings()
    assert row.status == "failed"
    assert _types(receiver) == {"dependency.refused": 1, "dependency.failed": 1}
    failed = next(b for b in _received(receiver) if b["type"] == "dependency.failed")
    assert "gave up after 3" in str(failed["text"])
    assert failed["incident"] == f"dependency.failed:{row.key}"
    assert failed["severity"] == "critical" and failed["job"] == "down/report"


def test_approval_request_is_notified_once(
    world: World,  # noqa: F811
    receiver: Receiver,
) -> None:
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
    world.dispatch()
    _deliver(world)
    [row] = world.firings()
    assert row.status == "waiting"
    [msg] = _received(receiver)
    assert msg["type"] == "approval.requested"
    assert msg["incident"] == f"approval.requested:{row.approval_id}"
    assert "four-eyes" in str(msg["text"]) and "dependency:needs-ok" in str(msg["text"])


def test_violation_opened_is_notified_once_and_again_when_it_comes_back(
    world: World,  # noqa: F811
    receiver: Receiver,
) -> None:
    rule = """
apiVersion: accord.dev/v1
kind: ComplianceRule
metadata: {{name: no-reports}}
spec:
  severity: high
  selector: {{jobs: ["down/*"]}}
  expression: '{expr}'
"""
    apply(world.engine, rule.format(expr='job.name != "report"'))
    world.sync("down")  # evaluated again: still the same open violation
    _deliver(world)
    [msg] = _received(receiver)
    assert msg["type"] == "violation.opened" and msg["job"] == "down/report"
    assert msg["severity"] == "critical"  # a high rule
    assert msg["title"] == "Compliance violation: no-reports on down/report"
    # Fixed, then back: a new incident, a second message.
    apply(world.engine, rule.format(expr="true"))
    apply(world.engine, rule.format(expr='job.name != "report"'))
    _deliver(world)
    assert _types(receiver) == {"violation.opened": 2}
    assert len({b["incident"] for b in _received(receiver)}) == 2
