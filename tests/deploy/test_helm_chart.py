"""The Helm chart in deploy/helm/accord, rendered by Helm itself (Helm v4's Go library
through helm-python-sdk, offline) and every rendered manifest validated against the
Kubernetes JSON schemas (kubernetes-validate, strict: unknown fields are errors) for
Kubernetes 1.31 and the newest version the package ships."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import text

from gateway.api.app import create_app
from gateway.settings import Settings
from gateway.store import create_db_engine, upgrade
from gateway.store.engine import head_revision

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "accord"
KUBERNETES = ("1.31", kubernetes_validate.latest_version())
WARNING = 2  # Helm's lint severities: 1 info, 2 warning, 3 error

FULL_VALUES: dict[str, Any] = {
    "replicaCount": 4,
    "auditSigningKey": {"secretName": "accord-audit-key"},
    "sourceSecrets": ["accord-source-credentials"],
    "env": {"ACCORD_LOG_LEVEL": "debug"},
    "publicUrl": "https://accord.example.org",
    "imagePullSecrets": [{"name": "registry"}],
    "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "accord"}],
    "config": {
        "sources.yaml": "apiVersion: accord.dev/v1\nkind: Source\nmetadata: {name: cron-a}\n"
        "spec: {type: cron, path: /etc/crontab}\n"
    },
}


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """`helm template accord deploy/helm/accord -n ops` with these values: the manifests."""
    with helm.Chart.load(str(CHART)) as chart:
        files = chart.render(values or {}, name="accord", namespace="ops")
    docs: list[dict[str, Any]] = []
    for name, body in sorted(files.items()):
        if not name.endswith(".yaml"):
            continue
        docs.extend(d for d in yaml.safe_load_all(body) if d)
    return docs


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} rendered"
    return found[0]


def gateway_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["accord"]
    return dict(containers[0])


def test_the_chart_lints_without_warnings() -> None:
    result = helm.lint(str(CHART))
    assert result["total_charts_linted"] == 1
    assert result["errors"] == []
    assert [m for m in result["messages"] if m["severity"] >= WARNING] == []


@pytest.mark.parametrize(
    "values", [{}, {"replicaCount": 1}, FULL_VALUES], ids=["default", "one", "full"]
)
@pytest.mark.parametrize("version", KUBERNETES)
def test_every_rendered_manifest_validates_against_the_kubernetes_schemas(
    values: dict[str, Any], version: str
) -> None:
    docs = render(values)
    assert docs
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']} {doc['metadata']['name']} on Kubernetes {version}: {exc}")


def test_the_validation_catches_a_broken_manifest() -> None:
    """Guards the test above: a misspelt field of a rendered Deployment is refused."""
    deployment = one(render(), "Deployment")
    deployment["spec"]["replica"] = deployment["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES[0], strict=True)


def test_default_values_run_three_replicas_with_a_disruption_budget() -> None:
    docs = render()
    assert sorted(d["kind"] for d in docs) == [
        "Deployment",
        "Job",
        "PodDisruptionBudget",
        "Service",
    ]
    deployment = one(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 3
    # A rolling update never takes a replica away before its successor is ready.
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (
        pdb["spec"]["selector"]["matchLabels"],
        one(docs, "Service")["spec"]["selector"],
    ):
        assert selector.items() <= pod_labels.items()
    # The migration Job's pods are not counted as gateways.
    job_labels = one(docs, "Job")["spec"]["template"]["metadata"]["labels"]
    assert not pdb["spec"]["selector"]["matchLabels"].items() <= job_labels.items()


@pytest.mark.parametrize("replicas", [2, 5, 12])
def test_n_replicas(replicas: int) -> None:
    docs = render({"replicaCount": replicas, "leaseSeconds": 20, "syncConcurrency": 8})
    assert one(docs, "Deployment")["spec"]["replicas"] == replicas
    assert one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    env = {e["name"]: e for e in gateway_container(docs)["env"]}
    assert env["ACCORD_LEASE_SECONDS"]["value"] == "20"
    assert env["ACCORD_SYNC_CONCURRENCY"]["value"] == "8"
    # Each pod is its own replica in the cluster view: its id is the pod's name.
    assert env["ACCORD_REPLICA_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_one_replica_has_no_disruption_budget() -> None:
    """maxUnavailable 1 of 1 pod would let a drain take the only gateway: no budget then."""
    docs = render({"replicaCount": 1})
    assert one(docs, "Deployment")["spec"]["replicas"] == 1
    assert [d for d in docs if d["kind"] == "PodDisruptionBudget"] == []


def test_readiness_probe_asks_the_endpoint_that_waits_for_migrations() -> None:
    container = gateway_container(render())
    probe = container["readinessProbe"]["httpGet"]
    assert probe["path"] == "/readyz"
    assert probe["port"] in [p["name"] for p in container["ports"]]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_migrations_run_once_as_a_pre_install_and_pre_upgrade_hook() -> None:
    docs = render()
    job = one(docs, "Job")
    hooks = job["metadata"]["annotations"]["helm.sh/hook"].split(",")
    assert sorted(hooks) == ["pre-install", "pre-upgrade"]
    spec = job["spec"]["template"]["spec"]
    assert spec["restartPolicy"] == "Never"
    (container,) = spec["containers"]
    assert container["command"] == ["accord", "db", "upgrade"]
    # The Job migrates the database the gateways use.
    url = {e["name"]: e for e in container["env"]}["ACCORD_DATABASE_URL"]["valueFrom"]
    gateway_url = {e["name"]: e for e in gateway_container(docs)["env"]}["ACCORD_DATABASE_URL"]
    assert url == gateway_url["valueFrom"]
    assert [d for d in render({"migrations": {"job": False}}) if d["kind"] == "Job"] == []


def test_config_documents_are_mounted_where_the_gateway_reads_them() -> None:
    docs = render(FULL_VALUES)
    configmap = one(docs, "ConfigMap")
    assert configmap["data"] == FULL_VALUES["config"]
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    container = gateway_container(docs)
    command = container["command"]
    read_from = command[command.index("-f") + 1]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert read_from in mounts, f"{read_from} is not mounted: {sorted(mounts)}"
    volume = {v["name"]: v for v in pod["volumes"]}[mounts[read_from]]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    # Without documents nothing is read nor mounted.
    bare = gateway_container(render())
    assert "-f" not in bare["command"]
    assert all(m["mountPath"] != read_from for m in bare["volumeMounts"])


@pytest.fixture
def migrated(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'accord.db'}")
    engine = create_db_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()
    yield TestClient(create_app(settings, start_sync=False))


def test_readyz_is_unready_until_the_schema_is_migrated(migrated: TestClient) -> None:
    """What the readiness probe relies on: a replica of a newer version does not serve an
    older schema (the pre-upgrade Job migrates, then the replicas become ready)."""
    engine = migrated.app.state.engine  # type: ignore[attr-defined]
    assert migrated.get("/readyz").status_code == 200
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0009_cluster'"))
    r = migrated.get("/readyz")
    assert r.status_code == 503
    assert "0009_cluster" in r.json()["database"]
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head_revision()})
    assert migrated.get("/readyz").json()["status"] == "ready"
