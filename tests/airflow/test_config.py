"""Source settings of the Airflow adapter, as an operator writes them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapters.airflow.adapter import AirflowAdapter
from adapters.airflow.config import AirflowConfig, PasswordAuth, TokenAuth
from adapters.base import AdapterConfigError, registry


def test_registered_under_its_type() -> None:
    assert registry.get("airflow") is AirflowAdapter
    assert AirflowAdapter.info.type == "airflow"


def test_password_and_token_auth() -> None:
    cfg = registry.validate_config(
        "airflow",
        {
            "url": "https://airflow.internal:8080/",
            "auth": {"username": "accord", "passwordFrom": {"env": "AF_PW"}},
            "include": ["etl_*"],
            "exclude": ["*_test"],
            "uiUrl": "https://airflow.example.com",
            "history": "2d",
        },
    )
    assert isinstance(cfg, AirflowConfig)
    assert isinstance(cfg.auth, PasswordAuth)
    assert cfg.auth.password_from.env == "AF_PW"
    assert cfg.url == "https://airflow.internal:8080"
    assert cfg.links_base == "https://airflow.example.com"
    assert cfg.history == timedelta(days=2)
    assert cfg.wants("etl_orders") and not cfg.wants("etl_orders_test")
    assert not cfg.wants("ml_features")

    token = registry.validate_config(
        "airflow", {"url": "http://af:8080", "auth": {"tokenFrom": {"file": "/run/af-token"}}}
    )
    assert isinstance(token, AirflowConfig)
    assert isinstance(token.auth, TokenAuth)
    assert token.links_base == "http://af:8080"
    assert token.wants("anything")


@pytest.mark.parametrize(
    ("settings", "where"),
    [
        ({"url": "airflow:8080", "auth": {"tokenFrom": {"env": "T"}}}, "spec.url"),
        ({"url": "http://af", "auth": {"username": "u"}}, "spec.auth"),
        ({"url": "http://af", "auth": {"tokenFrom": {"env": "T"}}, "colour": "red"}, "colour"),
        ({"url": "http://af", "auth": {"token": "plain-text-secret"}}, "spec.auth"),
        ({"url": "http://af", "auth": {"tokenFrom": {"env": "T"}}, "history": "soon"}, "history"),
    ],
)
def test_invalid_settings_name_the_field(settings: dict[str, object], where: str) -> None:
    with pytest.raises(AdapterConfigError) as err:
        registry.validate_config("airflow", settings)
    assert where in str(err.value)
    assert "plain-text-secret" not in str(err.value)
