"""How Airflow names become Accord's: datasets from asset URIs, labels from tags."""

from __future__ import annotations

import pytest

from adapters.airflow.adapter import _labels
from gateway.model import NodeKind

from .conftest import make_adapter


@pytest.mark.parametrize(
    ("uri", "namespace", "name"),
    [
        ("s3://warehouse/raw/orders", "s3://warehouse", "raw/orders"),
        (
            "postgres://dwh:5432/analytics/public/orders",
            "postgres://dwh:5432",
            "analytics/public/orders",
        ),
        ("gs://bucket", "gs://bucket", "/"),
        ("file:///data/orders.csv", "file", "/data/orders.csv"),
        ("orders", "airflow://airflow-prod", "orders"),
        ("x-custom:thing", "airflow://airflow-prod", "x-custom:thing"),
        ("https://api.example.com/v1/items?since=1", "https://api.example.com", "v1/items?since=1"),
    ],
)
def test_dataset_names(uri: str, namespace: str, name: str) -> None:
    adapter = make_adapter("http://127.0.0.1:9", source="airflow-prod")
    ref = adapter.dataset(uri)
    assert ref.kind == NodeKind.DATASET
    assert (ref.namespace, ref.id) == (namespace, name)


def test_tags_become_labels() -> None:
    assert _labels(["team:data", "tier=gold", "nightly", "http://x", "a:b:c"]) == {
        "team": "data",
        "tier": "gold",
        "nightly": "",
        "http": "//x",
        "a": "b:c",
    }
