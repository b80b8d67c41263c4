"""The API-server simulator behaves as the documented API, seen through the official
client (what the adapter relies on)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from adapters.testing.kube_sim import KubeSimulator

from .conftest import TOKEN


@pytest.fixture
def batch(sim: KubeSimulator) -> Iterator[client.BatchV1Api]:
    cfg = client.Configuration(
        host=sim.url, api_key={"BearerToken": TOKEN}, api_key_prefix={"BearerToken": "Bearer"}
    )
    api = client.ApiClient(cfg)
    try:
        yield client.BatchV1Api(api)
    finally:
        api.close()


def test_pages_are_a_consistent_snapshot(sim: KubeSimulator, batch: client.BatchV1Api) -> None:
    for i in range(5):
        sim.state.add_cronjob("etl", f"cj-{i}", "0 3 * * *")
    first = batch.list_cron_job_for_all_namespaces(limit=2)
    assert [c.metadata.name for c in first.items] == ["cj-0", "cj-1"]
    assert first.metadata.remaining_item_count == 3
    sim.state.delete("cronjobs", "etl", "cj-3")  # after the first page
    rest = batch.list_cron_job_for_all_namespaces(limit=10, _continue=first.metadata._continue)
    assert [c.metadata.name for c in rest.items] == ["cj-2", "cj-3", "cj-4"]
    assert rest.metadata._continue is None
    sim.state.compact()
    again = batch.list_cron_job_for_all_namespaces(limit=1)
    sim.state.compact()
    with pytest.raises(ApiException) as err:
        batch.list_cron_job_for_all_namespaces(limit=1, _continue=again.metadata._continue)
    assert err.value.status == 410


def test_label_selectors(sim: KubeSimulator, batch: client.BatchV1Api) -> None:
    sim.state.add_cronjob("a", "x", "0 3 * * *", labels={"team": "data", "tier": "gold"})
    sim.state.add_cronjob("a", "y", "0 3 * * *", labels={"team": "web"})
    sim.state.add_cronjob("b", "z", "0 3 * * *")

    def names(selector: str) -> list[str]:
        out = batch.list_cron_job_for_all_namespaces(label_selector=selector)
        return [c.metadata.name for c in out.items]

    assert names("team=data") == ["x"]
    assert names("team in (data,web)") == ["x", "y"]
    assert names("team notin (data)") == ["y", "z"]
    assert names("!team") == ["z"]
    assert names("team,tier!=gold") == ["y"]
    with pytest.raises(ApiException) as err:
        names("team in data")
    assert err.value.status == 400


def test_delete_propagation_and_preconditions(sim: KubeSimulator, batch: client.BatchV1Api) -> None:
    st = sim.state
    st.add_cronjob("etl", "load", "0 3 * * *")
    for name in ("j1", "j2"):
        st.job_from_cronjob("etl", "load", name)
        st.start_job("etl", name)
    batch.delete_namespaced_job("j1", "etl")  # batch/v1 default: orphan the pods
    assert [p["metadata"]["ownerReferences"] for p in st.items("pods", "etl")].count([]) == 1
    with pytest.raises(ApiException) as err:
        batch.delete_namespaced_job("j2", "etl", body={"preconditions": {"uid": "not-its-uid"}})
    assert err.value.status == 409
    batch.delete_namespaced_job("j2", "etl", propagation_policy="Background")
    assert len(st.items("pods", "etl")) == 1  # only j1's orphan is left
    batch.delete_namespaced_cron_job("load", "etl")
    assert st.items("cronjobs", "etl") == []


def test_patch_media_types(sim: KubeSimulator, batch: client.BatchV1Api) -> None:
    sim.state.add_cronjob("etl", "load", "0 3 * * *")
    got = batch.patch_namespaced_cron_job("load", "etl", {"spec": {"suspend": True}})
    assert got.spec.suspend is True
    got = batch.patch_namespaced_cron_job(
        "load", "etl", [{"op": "replace", "path": "/spec/suspend", "value": False}]
    )
    assert got.spec.suspend is False
    assert got.metadata.generation == 3
    with pytest.raises(ApiException) as err:
        batch.patch_namespaced_cron_job("load", "etl", {"spec": {"schedule": "every day"}})
    assert err.value.status == 422
    with pytest.raises(ApiException) as err:
        batch.patch_namespaced_cron_job(
            "load", "etl", {"spec": {"suspend": True}}, _content_type="application/apply-patch+yaml"
        )
    assert err.value.status == 415


def test_unauthenticated_requests_are_refused(sim: KubeSimulator) -> None:
    cfg = client.Configuration(host=sim.url)
    api = client.ApiClient(cfg)
    try:
        with pytest.raises(ApiException) as err:
            client.BatchV1Api(api).list_cron_job_for_all_namespaces()
        assert err.value.status == 401
    finally:
        api.close()
