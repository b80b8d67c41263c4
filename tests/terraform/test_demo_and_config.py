"""The demo organization and the Source settings."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from adapters.base import AdapterConfigError, AdapterContext, registry
from adapters.terraform import TerraformAdapter, TerraformConfig
from adapters.terraform.demo import start_demo
from gateway.model import EdgeKind, RunState, SecretRef
from gateway.model.resources import Source


@pytest.mark.anyio
async def test_demo_serves_a_simulated_organization(tmp_path: Path) -> None:
    part = start_demo(tmp_path)
    try:
        assert part.simulated is True
        (document,) = part.documents
        source = Source.model_validate(document)
        assert source.spec.demo is True
        assert "simulator" in document["metadata"]["annotations"]["accord.dev/description"]
        settings = source.spec.adapter_config()

        def secrets(ref: SecretRef) -> SecretStr:
            assert ref.env is not None
            return SecretStr(part.env[ref.env])

        adapter = registry.create(
            "terraform",
            AdapterContext(source="demo-terraform", domain="platform", secrets=secrets),
            settings,
        )
        assert isinstance(adapter, TerraformAdapter)
        try:
            assert "simulator" in (await adapter.check()).message
            jobs = {j.name: j async for j in adapter.list_jobs()}
            assert jobs["dns-legacy"].paused is True
            assert jobs["shop-staging"].attributes["auto_apply"] is True
            edges = {
                (e.src.id, e.dst.id)
                for j in jobs.values()
                for e in await adapter.lineage(j)
                if e.kind == EdgeKind.DEPENDS_ON
            }
            assert (jobs["network-prod"].native_id, jobs["k8s-cluster-prod"].native_id) in edges
            page = await adapter.list_runs(None)
            states = Counter(r.state for r in page.runs)
            assert states[RunState.SUCCESS] > 0 and states[RunState.FAILED] > 0
            assert states[RunState.WAITING] == 1  # the plan an approver can apply
            assert any(e.kind == EdgeKind.TRIGGERED for e in page.edges)
        finally:
            await adapter.aclose()
    finally:
        part.stop()


def test_config_validation() -> None:
    base = {"organizations": "acme", "token": {"env": "T"}}
    config = TerraformConfig.model_validate({**base, "url": "https://tfe.example.com/api/v2/"})
    assert config.url == "https://tfe.example.com" and config.organizations == ("acme",)
    assert config.api_url == "https://tfe.example.com/api/v2/"
    assert TerraformConfig.model_validate(base).url == "https://app.terraform.io"
    for bad in (
        {**base, "url": "ftp://x"},
        {**base, "organizations": []},
        {**base, "organizations": ["a", "a"]},
        {**base, "pageSize": 500},
        {**base, "rateLimitWait": "5m"},
        {"organizations": ["acme"]},  # no token
        {**base, "workspaces": ["x"]},  # unknown setting
    ):
        with pytest.raises(ValidationError):
            TerraformConfig.model_validate(bad)
    with pytest.raises(AdapterConfigError, match=r"spec\.token"):
        registry.validate_config("terraform", {"organizations": ["acme"]})
    config = TerraformConfig.model_validate({**base, "include": ["prod-*"], "exclude": ["prod-x"]})
    assert config.wants("prod-a") and not config.wants("prod-x") and not config.wants("dev")


def test_registered_under_terraform() -> None:
    assert registry.get("terraform") is TerraformAdapter
