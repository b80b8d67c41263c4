"""The demo cluster and the Source settings."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from adapters.base import AdapterConfigError, AdapterContext, registry
from adapters.kubernetes import KubernetesAdapter, KubernetesConfig
from adapters.kubernetes.config import InClusterAuth, KubeconfigAuth, TokenAuth
from adapters.kubernetes.demo import start_demo
from gateway.model import EdgeKind, RunState, SecretRef
from gateway.model.resources import Source


@pytest.mark.anyio
async def test_demo_serves_a_simulated_cluster(tmp_path: Path) -> None:
    part = start_demo(tmp_path)
    try:
        assert part.simulated
        (document,) = part.documents
        source = Source.model_validate(document)
        assert "simulator" in document["metadata"]["annotations"]["accord.dev/description"]
        settings = source.spec.adapter_config()

        def secrets(ref: SecretRef) -> SecretStr:
            assert ref.env is not None
            return SecretStr(part.env[ref.env])

        adapter = registry.create(
            "kubernetes",
            AdapterContext(source="demo-k8s", domain="platform", secrets=secrets),
            settings,
        )
        assert isinstance(adapter, KubernetesAdapter)
        try:
            assert "simulator" in (await adapter.check()).message
            jobs = {j.name: j async for j in adapter.list_jobs()}
            assert len(jobs) == 5 and jobs["batch/legacy-export"].paused
            assert jobs["data/train-recommender"].owners == ("ml-platform",)
            page = await adapter.list_runs(None)
            states = Counter(r.state for r in page.runs)
            assert states[RunState.SUCCESS] > 0 and states[RunState.FAILED] > 0
            messages = " ".join(r.message or "" for r in page.runs)
            assert "OOMKilled" in messages and "ImagePullBackOff" in messages
            edges = await adapter.lineage(jobs["data/refresh-dashboards"])
            assert [(e.kind, e.src.source, e.src.id) for e in edges] == [
                (EdgeKind.DEPENDS_ON, "demo-etl", "build_revenue_mart")
            ]
        finally:
            await adapter.aclose()
    finally:
        part.stop()


def test_auth_settings_choose_one_mode() -> None:
    assert isinstance(KubernetesConfig.model_validate({}).auth, KubeconfigAuth)
    assert isinstance(
        KubernetesConfig.model_validate({"auth": {"inCluster": True}}).auth, InClusterAuth
    )
    token = KubernetesConfig.model_validate(
        {"auth": {"server": "https://10.0.0.1:6443/", "tokenFrom": {"file": "/run/token"}}}
    ).auth
    assert isinstance(token, TokenAuth) and token.server == "https://10.0.0.1:6443"
    with pytest.raises(ValidationError):
        KubernetesConfig.model_validate({"auth": {"server": "10.0.0.1", "tokenFrom": {"env": "T"}}})
    with pytest.raises(ValidationError):
        KubernetesConfig.model_validate({"auth": {"kubeconfig": "x", "inCluster": True}})


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"consoleUrl": "https://x/{cluster}/{name}"}, "consoleUrl"),
        ({"namespaces": ["Not_A_Namespace"]}, "namespaces"),
        ({"watchTimeout": "2h"}, "watchTimeout"),
        ({"cancelPropagation": "Orphan"}, "cancelPropagation"),
        ({"maxConcurrentRequests": 0}, "maxConcurrentRequests"),
    ],
)
def test_bad_settings_name_the_field(settings: dict[str, object], field: str) -> None:
    with pytest.raises(AdapterConfigError) as err:
        registry.validate_config("kubernetes", settings)
    assert f"spec.{field}" in str(err.value)
