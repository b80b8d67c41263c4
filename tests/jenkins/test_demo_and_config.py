"""The demo Jenkins and the Source settings."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from adapters.base import AdapterContext, registry
from adapters.jenkins import JenkinsAdapter, JenkinsConfig
from adapters.jenkins.demo import start_demo
from gateway.model import EdgeKind, RunState, SecretRef
from gateway.model.resources import Source


@pytest.mark.anyio
async def test_demo_serves_a_realistic_jenkins(tmp_path: Path) -> None:
    part = start_demo(tmp_path)
    try:
        (document,) = part.documents
        source = Source.model_validate(document)
        assert source.spec.demo is True and source.metadata.labels["accord.dev/demo"] == "true"
        assert "simulator" in document["metadata"]["annotations"]["accord.dev/description"]
        settings = source.spec.adapter_config()
        assert settings["token"] == {"env": "ACCORD_SECRET_DEMO_JENKINS_TOKEN"}

        def secrets(ref: SecretRef) -> SecretStr:
            assert ref.env is not None
            return SecretStr(part.env[ref.env])

        adapter = registry.create(
            "jenkins",
            AdapterContext(source="demo-jenkins", domain="platform", secrets=secrets),
            settings,
        )
        assert isinstance(adapter, JenkinsAdapter)
        try:
            assert "simulator" in (await adapter.check()).message.lower()
            jobs = {j.native_id: j async for j in adapter.list_jobs()}
            nightly = jobs["ops/nightly-report"]
            assert nightly.schedule is not None and nightly.schedule.expression == "H 2 * * *"
            assert nightly.next_run_at is not None
            assert any(j.paused for j in jobs.values())
            page = await adapter.list_runs(None)
            states = Counter(r.state for r in page.runs)
            assert states[RunState.FAILED] > 0 and states[RunState.SUCCESS] > 0
            assert states[RunState.QUEUED] == 1
            chain = {
                (e.src.id.split("#")[0], e.dst.id.split("#")[0])
                for e in page.edges
                if e.kind == EdgeKind.TRIGGERED
            }
            assert ("platform/app/build", "platform/app/test") in chain
            assert ("platform/app/test", "platform/app/deploy") in chain
        finally:
            await adapter.aclose()
    finally:
        part.stop()


def test_config_validation() -> None:
    config = JenkinsConfig.model_validate(
        {
            "url": "https://ci.example.com/",
            "username": "accord",
            "tokenFrom": {"env": "T"},
            "include": ["team/*"],
            "exclude": ["team/sandbox/*"],
            "maxBuildsPerJob": 50,
        }
    )
    assert config.url == "https://ci.example.com"
    assert config.wants("team/app/build") and not config.wants("team/sandbox/x")
    assert not config.wants("other/job")
    for bad in (
        {"url": "ci.example.com"},
        {"maxBuildsPerJob": 101},
        {"timezone": "Moon/Base"},
        {"token": {"env": "A", "file": "/b"}},
        {"triggerWait": "2m"},
    ):
        with pytest.raises(ValidationError):
            JenkinsConfig.model_validate(
                {"url": "http://j", "username": "u", "token": {"env": "T"}, **bad}
            )


def test_registered_under_jenkins() -> None:
    assert registry.get("jenkins") is JenkinsAdapter
