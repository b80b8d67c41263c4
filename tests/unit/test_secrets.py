"""Secret references reach only what the operator allow-lists (gateway.secrets)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.model import SecretRef
from gateway.secrets import SecretMissing, SecretPolicy, SecretRefused
from gateway.settings import Settings


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "data"
    (d / "secrets").mkdir(parents=True)
    (d / "secrets" / "airflow").write_text("  s3cret\n")
    (d / "admin-token").write_text("acd_admin\n")
    (d / "accord.db").write_text("db")
    yield d


def policy(data: Path, **kw: object) -> SecretPolicy:
    return SecretPolicy.from_settings(Settings(data_dir=data, database_url=None, **kw))  # type: ignore[arg-type]


def env(name: str) -> SecretRef:
    return SecretRef(env=name)


def file(path: object) -> SecretRef:
    return SecretRef(file=str(path))


def test_env_references_need_an_allowed_prefix_and_never_reach_settings(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = policy(data)
    monkeypatch.setenv("ACCORD_SECRET_AIRFLOW", "v")
    assert p.resolve(env("ACCORD_SECRET_AIRFLOW")).get_secret_value() == "v"
    for name in ("HOME", "AWS_SECRET_ACCESS_KEY", "accord_secret_airflow", "A-B", "X=Y"):
        assert p.check(env(name)) is not None, name
    for name in ("ACCORD_DATABASE_URL", "accord_database_url", "ACCORD_DATA_DIR"):
        assert p.check(env(name)) == f"{name} is one of the gateway's own settings"
    # Even when the operator opens every ACCORD_ variable, the settings stay closed; and
    # the settings that configure this very allow-list are settings too.
    wide = policy(data, secret_env_prefixes=("ACCORD_",))
    assert wide.check(env("ACCORD_DATABASE_URL")) is not None
    assert wide.check(env("ACCORD_SECRET_ENV_PREFIXES")) is not None
    assert wide.check(env("ACCORD_OTHER")) is None


def test_file_references_stay_inside_the_allowed_directories(data: Path) -> None:
    p = policy(data)
    assert p.resolve(file(data / "secrets" / "airflow")).get_secret_value() == "s3cret"
    assert p.check(file("/var/run/secrets/accord/airflow")) is None
    refused = {
        "relative": "secrets/airflow",
        "dotdot": f"{data}/secrets/../admin-token",
        "admin token": f"{data}/admin-token",
        "database": f"{data}/accord.db",
        "elsewhere": "/etc/passwd",
        "the directory itself": f"{data}/secrets",
        "service account": "/var/run/secrets/kubernetes.io/serviceaccount/token",
    }
    for what, path in refused.items():
        assert p.check(file(path)) is not None, what
        with pytest.raises(SecretRefused, match="is not allowed"):
            p.resolve(file(path))


def test_the_gateways_own_files_stay_closed_whatever_the_allow_list(
    data: Path, tmp_path: Path
) -> None:
    key = tmp_path / "keys" / "signing.pem"
    dirs = (str(data), str(data / "secrets"), "/", str(key.parent))
    p = policy(data, secret_dirs=dirs, audit_signing_key_file=key)
    for path in (
        data / "admin-token",
        data / "accord.db",
        data / "accord.db-wal",
        data / "other",  # the data directory opens only through a directory inside it
        key,
        Path("/proc/self/environ"),
        Path("/sys/kernel/notes"),
        Path("/dev/zero"),
    ):
        assert p.check(file(path)) is not None, path
    assert p.check(file(data / "secrets" / "airflow")) is None


def test_links_out_of_the_secrets_directory_are_refused_when_read(data: Path) -> None:
    p = policy(data)
    link = data / "secrets" / "link"
    link.symlink_to(data / "admin-token")
    # As written, the reference is inside the allowed directory (and checking does not
    # look at the file system) ...
    assert p.check(file(link)) is None
    # ... but reading follows the link and refuses what it finds.
    with pytest.raises(SecretRefused, match="real path leaves the allowed directories"):
        p.resolve(file(link))
    inside = data / "secrets" / "alias"
    inside.symlink_to(data / "secrets" / "airflow")
    assert p.resolve(file(inside)).get_secret_value() == "s3cret"


def test_missing_unreadable_and_odd_files_name_the_reference_not_a_value(data: Path) -> None:
    p = policy(data)
    with pytest.raises(SecretMissing, match=r"file:.*/secrets/nope: cannot read it"):
        p.resolve(file(data / "secrets" / "nope"))
    (data / "secrets" / "dir").mkdir()
    with pytest.raises(SecretMissing, match="not a regular file"):
        p.resolve(file(data / "secrets" / "dir"))
    os.mkfifo(data / "secrets" / "fifo")  # reading it would block for ever
    with pytest.raises(SecretMissing, match="not a regular file"):
        p.resolve(file(data / "secrets" / "fifo"))
    with pytest.raises(SecretMissing, match="env:ACCORD_SECRET_UNSET_XYZ: the variable is not set"):
        p.resolve(env("ACCORD_SECRET_UNSET_XYZ"))


def test_checking_reads_neither_the_environment_nor_the_file_system(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = policy(data)

    def forbidden(*_a: object, **_k: object) -> None:
        raise AssertionError("checking a reference touched the environment or a file")

    class NoEnviron(dict[str, str]):
        def get(self, *_a: object, **_k: object) -> None:  # type: ignore[override]
            forbidden()

        def __getitem__(self, _k: str) -> str:
            forbidden()
            return ""

        def __contains__(self, _k: object) -> bool:
            forbidden()
            return False

    for name in ("open", "stat", "lstat", "readlink", "access", "scandir", "listdir"):
        monkeypatch.setattr(os, name, forbidden)
    monkeypatch.setattr(os.path, "realpath", forbidden)
    monkeypatch.setattr(os.path, "exists", forbidden)
    monkeypatch.setattr(os, "environ", NoEnviron())
    refs = [
        env("ACCORD_SECRET_X"),
        env("ACCORD_DATABASE_URL"),
        env("HOME"),
        file(data / "secrets" / "airflow"),
        file(data / "admin-token"),
        file("/etc/passwd"),
    ]
    verdicts = [p.refusal(r) for r in refs]
    assert [v is None for v in verdicts] == [True, False, False, True, False, False]


def test_settings_parse_the_allow_list(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ACCORD_SECRET_ENV_PREFIXES", "AIRFLOW_SECRET_, JENKINS_SECRET_")
    monkeypatch.setenv("ACCORD_SECRET_DIRS", "/etc/accord/secrets,/run/secrets/accord")
    s = Settings(data_dir=tmp_path)
    assert s.secret_env_prefixes == ("AIRFLOW_SECRET_", "JENKINS_SECRET_")
    assert s.secret_directories == (Path("/etc/accord/secrets"), Path("/run/secrets/accord"))
    monkeypatch.setenv("ACCORD_SECRET_ENV_PREFIXES", "")
    assert Settings().secret_env_prefixes == ()  # no variables at all
    monkeypatch.delenv("ACCORD_SECRET_ENV_PREFIXES")
    monkeypatch.delenv("ACCORD_SECRET_DIRS")
    assert Settings(data_dir=tmp_path).secret_directories == (
        tmp_path / "secrets",
        Path("/var/run/secrets/accord"),
    )
    monkeypatch.setenv("ACCORD_SECRET_DIRS", "relative/dir")
    with pytest.raises(ValidationError, match="must be absolute"):
        Settings()
    with pytest.raises(ValidationError, match="empty prefix"):
        Settings(secret_env_prefixes=("",))
