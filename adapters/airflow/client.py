"""Apache Airflow 3's REST API v2, spoken through ``apache-airflow-client``.

This module knows Airflow, not Accord. It is blocking (the client package is built on
urllib3): the adapter calls it from a worker thread. Requests are built by the client
package's API classes; answers are read with the small, lenient models below rather than
the package's own, so that a value Airflow adds later (a new state, a new field) does not
turn a whole page into an error.

Authentication: either a user (``POST /auth/token`` returns a JWT, renewed shortly before
it expires and once more whenever the API answers 401/403) or a ready-made token.
"""

from __future__ import annotations

import base64
import email.utils
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Generic, TypeVar

import urllib3
from airflow_client.client import ApiClient, Configuration
from airflow_client.client.api.asset_api import AssetApi
from airflow_client.client.api.dag_api import DAGApi
from airflow_client.client.api.dag_run_api import DagRunApi
from airflow_client.client.api.monitor_api import MonitorApi
from airflow_client.client.api.task_instance_api import TaskInstanceApi
from airflow_client.client.api.version_api import VersionApi
from airflow_client.client.api.x_com_api import XComApi
from airflow_client.client.exceptions import ApiException
from airflow_client.client.models.dag_patch_body import DAGPatchBody
from airflow_client.client.models.dag_run_clear_body import DAGRunClearBody
from airflow_client.client.models.dag_run_patch_body import DAGRunPatchBody
from airflow_client.client.models.trigger_dag_run_post_body import TriggerDAGRunPostBody
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from gateway.model import parse_retry_after

__all__ = [
    "AirflowAuthFailed",
    "AirflowBadResponse",
    "AirflowClient",
    "AirflowError",
    "AirflowNotFound",
    "AirflowRejected",
    "AirflowUnreachable",
    "Asset",
    "AssetEvent",
    "Dag",
    "DagRun",
    "Page",
    "PasswordLogin",
    "StaticToken",
    "TaskInstance",
]


# -- errors -------------------------------------------------------------------------------
class AirflowError(Exception):
    """Base of the errors this client raises."""


class AirflowUnreachable(AirflowError):
    """No answer, a timeout, or a temporary refusal (5xx, 429)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class AirflowAuthFailed(AirflowError):
    """Credentials rejected, or not allowed to do this."""


class AirflowNotFound(AirflowError):
    """404: no such DAG or run."""


class AirflowRejected(AirflowError):
    """Airflow understood the request and refused it (400, 409, 422)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"Airflow refused the request (HTTP {status}): {detail}")
        self.status = status
        self.detail = detail


class AirflowBadResponse(AirflowError):
    """An answer that is not what the API documents."""


# -- answers ------------------------------------------------------------------------------
class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Tag(_Model):
    name: str


class Dag(_Model):
    dag_id: str = Field(min_length=1)
    dag_display_name: str | None = None
    description: str | None = None
    is_paused: bool
    is_stale: bool = False
    fileloc: str | None = None
    relative_fileloc: str | None = None
    bundle_name: str | None = None
    owners: list[str] = Field(default_factory=list)
    tags: list[Tag] = Field(default_factory=list)
    timetable_summary: str | None = None
    timetable_description: str | None = None
    next_dagrun_run_after: AwareDatetime | None = None
    has_import_errors: bool = False
    max_active_runs: int | None = None
    max_active_tasks: int | None = None


class DagRun(_Model):
    dag_id: str = Field(min_length=1)
    dag_run_id: str = Field(min_length=1)
    state: str | None = None
    run_type: str | None = None
    triggered_by: str | None = None
    triggering_user_name: str | None = None
    queued_at: AwareDatetime | None = None
    start_date: AwareDatetime | None = None
    end_date: AwareDatetime | None = None
    run_after: AwareDatetime | None = None
    logical_date: AwareDatetime | None = None
    note: str | None = None


class TaskInstance(_Model):
    dag_id: str
    dag_run_id: str
    task_id: str
    map_index: int = -1
    state: str | None = None
    try_number: int = 0
    start_date: AwareDatetime | None = None
    end_date: AwareDatetime | None = None
    operator: str | None = None
    # the task's templated fields as rendered for this run (trigger_dag_id of a
    # TriggerDagRunOperator, ...)
    rendered_fields: dict[str, Any] | None = None


class TaskRef(_Model):
    dag_id: str
    task_id: str


class DagRef(_Model):
    dag_id: str


class Asset(_Model):
    id: int
    name: str
    uri: str
    group: str | None = None
    producing_tasks: list[TaskRef] = Field(default_factory=list)
    consuming_tasks: list[TaskRef] = Field(default_factory=list)
    scheduled_dags: list[DagRef] = Field(default_factory=list)


class CreatedRun(_Model):
    dag_id: str
    run_id: str


class AssetEvent(_Model):
    id: int
    asset_id: int
    uri: str | None = None
    name: str | None = None
    source_dag_id: str | None = None
    source_run_id: str | None = None
    source_task_id: str | None = None
    timestamp: AwareDatetime | None = None
    created_dagruns: list[CreatedRun] = Field(default_factory=list)


T = TypeVar("T", bound=_Model)


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a listing."""

    items: list[T]
    total: int | None
    next_cursor: str | None = None
    keyset: bool = False  # the server paged by cursor (Airflow 3.3+), not by offset
    server_time: datetime | None = None  # the Date header of the answer


# -- credentials --------------------------------------------------------------------------
@dataclass(frozen=True)
class PasswordLogin:
    username: str
    password: Callable[[], str]  # read only when a token is needed


@dataclass(frozen=True)
class StaticToken:
    token: Callable[[], str]


Credentials = PasswordLogin | StaticToken


def _jwt_times(token: str) -> tuple[float | None, float | None]:
    """(iat, exp) of a JWT, without verifying it (only to know when to renew)."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        iat, exp = claims.get("iat"), claims.get("exp")
        return (
            float(iat) if isinstance(iat, int | float) else None,
            float(exp) if isinstance(exp, int | float) else None,
        )
    except (IndexError, ValueError, TypeError, AttributeError):
        return None, None


def _server_time(resp: urllib3.BaseHTTPResponse) -> datetime | None:
    value = resp.headers.get("Date")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _detail(data: bytes) -> str:
    try:
        body = json.loads(data)
    except ValueError:
        return data[:200].decode("utf-8", "replace").strip() or "no detail"
    if isinstance(body, dict):
        detail = body.get("detail", body)
        if isinstance(detail, list):  # FastAPI validation errors
            return "; ".join(
                str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail
            )
        return str(detail)[:500]
    return str(body)[:200]


@dataclass(frozen=True)
class _Answer:
    status: int
    data: bytes
    headers: dict[str, str]
    server_time: datetime | None


class AirflowClient:
    """A blocking client of one Airflow API server (thread-safe)."""

    def __init__(
        self,
        url: str,
        credentials: Credentials,
        *,
        timeout: float = 30.0,
        verify_tls: bool = True,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.requests = 0  # HTTP requests made (token requests included)
        self._credentials = credentials
        self._token: str | None = None
        self._renew_at: float | None = None
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        config = Configuration(host=self.url, retries=False)
        config.verify_ssl = verify_tls
        self._api = ApiClient(config)
        self._api.user_agent = "accord-airflow-adapter"
        self._dags = DAGApi(self._api)
        self._runs = DagRunApi(self._api)
        self._tis = TaskInstanceApi(self._api)
        self._assets = AssetApi(self._api)
        self._monitor = MonitorApi(self._api)
        self._version = VersionApi(self._api)
        self._xcom = XComApi(self._api)

    def close(self) -> None:
        self._api.rest_client.pool_manager.clear()

    # -- tokens ---------------------------------------------------------------------------
    def _bearer(self) -> str:
        with self._lock:
            if self._token is None or (
                self._renew_at is not None and time.time() >= self._renew_at
            ):
                self._token = self._new_token()
                iat, exp = _jwt_times(self._token)
                if exp is None or isinstance(self._credentials, StaticToken):
                    self._renew_at = None
                else:
                    lifetime = exp - iat if iat is not None else 600.0
                    self._renew_at = exp - max(1.0, min(300.0, 0.2 * lifetime))
            return self._token

    def _forget(self, token: str) -> bool:
        """Drop a token the API refused; True if asking again may help."""
        with self._lock:
            if self._token == token:
                self._token = None
            if isinstance(self._credentials, StaticToken):
                # The secret may have been rotated since it was read.
                return self._credentials.token().strip() != token
            return True

    def _new_token(self) -> str:
        creds = self._credentials
        if isinstance(creds, StaticToken):
            token = creds.token().strip()
            if not token:
                raise AirflowAuthFailed("the configured Airflow token is empty")
            return token
        body = {"username": creds.username, "password": creds.password()}
        pool: urllib3.PoolManager = self._api.rest_client.pool_manager
        answer = self._send(
            lambda: pool.request(
                "POST",
                f"{self.url}/auth/token",
                body=json.dumps(body).encode(),
                headers={"Content-Type": "application/json", "Accept": "application/json"},
                timeout=urllib3.Timeout(total=self.timeout),
                preload_content=False,
            )
        )
        if answer.status in (400, 401, 403, 422):
            raise AirflowAuthFailed(
                f"Airflow rejected the username or password of {creds.username!r}"
                f" (HTTP {answer.status}: {_detail(answer.data)})"
            )
        if answer.status in (404, 405):
            raise AirflowAuthFailed(
                "this Airflow does not issue tokens at /auth/token (its auth manager works"
                " differently); configure auth.tokenFrom instead"
            )
        self._raise_for(answer)
        issued = _object(answer).get("access_token")
        if not isinstance(issued, str) or not issued:
            raise AirflowBadResponse("POST /auth/token answered without an access_token")
        return issued

    # -- sending --------------------------------------------------------------------------
    def _send(self, call: Callable[[], urllib3.BaseHTTPResponse]) -> _Answer:
        with self._count_lock:
            self.requests += 1
        try:
            resp = call()
            try:
                data = resp.data or b""
            finally:
                resp.release_conn()
        except urllib3.exceptions.HTTPError as exc:
            raise AirflowUnreachable(
                f"Airflow at {self.url} did not answer: {_reason(exc)}"
            ) from None
        except ApiException as exc:  # TLS errors arrive wrapped like this
            raise AirflowUnreachable(f"Airflow at {self.url}: {exc.reason}") from None
        except OSError as exc:
            raise AirflowUnreachable(f"Airflow at {self.url} did not answer: {exc}") from None
        headers = {k.lower(): v for k, v in resp.headers.items()}
        return _Answer(resp.status, data, headers, _server_time(resp))

    def _authed(self, call: Callable[[dict[str, str]], urllib3.BaseHTTPResponse]) -> _Answer:
        token = self._bearer()
        answer = self._send(partial(call, {"Authorization": f"Bearer {token}"}))
        if answer.status in (401, 403) and self._forget(token):
            # Expired, revoked, or issued before a restart with a new secret: ask once more.
            token = self._bearer()
            answer = self._send(partial(call, {"Authorization": f"Bearer {token}"}))
        if answer.status in (401, 403):
            who = (
                "the configured token"
                if isinstance(self._credentials, StaticToken)
                else f"user {self._credentials.username!r}"
            )
            raise AirflowAuthFailed(
                f"Airflow refused {who}: invalid, expired, or without permission for this"
                f" (HTTP {answer.status}: {_detail(answer.data)})"
            )
        self._raise_for(answer)
        return answer

    def _raise_for(self, answer: _Answer) -> None:
        status = answer.status
        if 200 <= status < 300:
            return
        if status == 404:
            raise AirflowNotFound(_detail(answer.data))
        if status in (408, 429) or status >= 500:
            raise AirflowUnreachable(
                f"Airflow at {self.url} answered HTTP {status}",
                retry_after=parse_retry_after(answer.headers.get("retry-after")),
            )
        if status in (400, 409, 422):
            raise AirflowRejected(status, _detail(answer.data))
        raise AirflowBadResponse(f"Airflow answered an unexpected HTTP {status}")

    def _get(
        self, call: Callable[[dict[str, str]], urllib3.BaseHTTPResponse]
    ) -> tuple[dict[str, Any], _Answer]:
        answer = self._authed(call)
        return _object(answer), answer

    # -- reads ----------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """``/monitor/health`` (needs no credentials)."""
        answer = self._send(
            lambda: self._monitor.get_health_without_preload_content(_request_timeout=self.timeout)
        )
        self._raise_for(answer)
        return _object(answer)

    def version(self) -> dict[str, Any]:
        body, _ = self._get(
            lambda h: self._version.get_version_without_preload_content(
                _headers=h, _request_timeout=self.timeout
            )
        )
        return body

    def dags(self, *, offset: int, limit: int) -> Page[Dag]:
        body, answer = self._get(
            lambda h: self._dags.get_dags_without_preload_content(
                limit=limit,
                offset=offset,
                order_by=["dag_id"],
                exclude_stale=True,
                _headers=h,
                _request_timeout=self.timeout,
            )
        )
        return _page(body, "dags", Dag, answer)

    def dag_runs(
        self,
        *,
        updated_since: datetime,
        limit: int,
        cursor: str | None = None,
        offset: int | None = None,
    ) -> Page[DagRun]:
        """Runs of every DAG updated at or after ``updated_since``, oldest first.

        ``cursor`` pages by key (``""`` for the first page); servers older than Airflow 3.3
        ignore it and answer by ``offset`` (then the page says ``keyset=False``).
        """
        body, answer = self._get(
            lambda h: self._runs.get_dag_runs_without_preload_content(
                dag_id="~",
                limit=limit,
                offset=offset,
                cursor=cursor,
                updated_at_gte=updated_since,
                order_by=["id"],
                _headers=h,
                _request_timeout=self.timeout,
            )
        )
        return _page(body, "dag_runs", DagRun, answer)

    def dag_run(self, dag_id: str, run_id: str) -> DagRun:
        body, _ = self._get(
            lambda h: self._runs.get_dag_run_without_preload_content(
                dag_id=dag_id, dag_run_id=run_id, _headers=h, _request_timeout=self.timeout
            )
        )
        return _model(DagRun, body, "DAG run")

    def task_instances(
        self, dag_id: str, run_id: str, *, offset: int, limit: int
    ) -> Page[TaskInstance]:
        """Task instances of one DAG run.

        A GET: the batch endpoint (``POST .../taskInstances/list``) writes an entry into
        Airflow's audit log for every call, which a poller must not do.
        """
        body, answer = self._get(
            lambda h: self._tis.get_task_instances_without_preload_content(
                dag_id=dag_id,
                dag_run_id=run_id,
                limit=limit,
                offset=offset,
                order_by=["id"],
                _headers=h,
                _request_timeout=self.timeout,
            )
        )
        return _page(body, "task_instances", TaskInstance, answer)

    def assets(self, *, offset: int, limit: int) -> Page[Asset]:
        body, answer = self._get(
            lambda h: self._assets.get_assets_without_preload_content(
                limit=limit,
                offset=offset,
                order_by=["id"],
                _headers=h,
                _request_timeout=self.timeout,
            )
        )
        return _page(body, "assets", Asset, answer)

    def upstream_asset_events(self, dag_id: str, run_id: str) -> list[AssetEvent]:
        """The asset events that started an asset-triggered run."""
        body, answer = self._get(
            lambda h: self._runs.get_upstream_asset_events_without_preload_content(
                dag_id=dag_id, dag_run_id=run_id, _headers=h, _request_timeout=self.timeout
            )
        )
        return _page(body, "asset_events", AssetEvent, answer).items

    def xcom_value(
        self, dag_id: str, run_id: str, task_id: str, key: str, *, map_index: int = -1
    ) -> Any:
        """The value of one XCom entry of a task instance (``AirflowNotFound`` if none)."""
        body, _ = self._get(
            lambda h: self._xcom.get_xcom_entry_without_preload_content(
                dag_id=dag_id,
                dag_run_id=run_id,
                task_id=task_id,
                xcom_key=key,
                map_index=map_index,
                deserialize=False,
                stringify=False,
                _headers=h,
                _request_timeout=self.timeout,
            )
        )
        return body.get("value")

    # -- changes --------------------------------------------------------------------------
    def trigger(self, dag_id: str, conf: dict[str, Any]) -> DagRun:
        post = TriggerDAGRunPostBody(logical_date=None, conf=conf)
        body, _ = self._get(
            lambda h: self._runs.trigger_dag_run_without_preload_content(
                dag_id=dag_id,
                trigger_dag_run_post_body=post,
                _headers=h,
                _request_timeout=self.timeout,
            )
        )
        return _model(DagRun, body, "DAG run")

    def set_paused(self, dag_id: str, paused: bool) -> Dag:
        body, _ = self._get(
            lambda h: self._dags.patch_dag_without_preload_content(
                dag_id=dag_id,
                dag_patch_body=DAGPatchBody(is_paused=paused),
                update_mask=["is_paused"],
                _headers=h,
                _request_timeout=self.timeout,
            )
        )
        return _model(Dag, body, "DAG")

    def set_run_state(self, dag_id: str, run_id: str, state: str, note: str | None) -> DagRun:
        patch = DAGRunPatchBody.from_dict(
            {"state": state, **({"note": note} if note is not None else {})}
        )
        assert patch is not None
        body, _ = self._get(
            lambda h: self._runs.patch_dag_run_without_preload_content(
                dag_id=dag_id,
                dag_run_id=run_id,
                dag_run_patch_body=patch,
                update_mask=["state", *(["note"] if note is not None else [])],
                _headers=h,
                _request_timeout=self.timeout,
            )
        )
        return _model(DagRun, body, "DAG run")

    def clear_run(self, dag_id: str, run_id: str) -> None:
        """Clear every task of a run, so Airflow runs it again."""
        self._authed(
            lambda h: self._runs.clear_dag_run_without_preload_content(
                dag_id=dag_id,
                dag_run_id=run_id,
                dag_run_clear_body=DAGRunClearBody(dry_run=False, only_failed=False),
                _headers=h,
                _request_timeout=self.timeout,
            )
        )


def _reason(exc: urllib3.exceptions.HTTPError) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc)


def _object(answer: _Answer) -> dict[str, Any]:
    try:
        body = json.loads(answer.data)
    except ValueError:
        raise AirflowBadResponse(
            f"Airflow answered HTTP {answer.status} with a body that is not JSON"
        ) from None
    if not isinstance(body, dict):
        raise AirflowBadResponse(f"Airflow answered a JSON {type(body).__name__}, not an object")
    return body


M = TypeVar("M", bound=_Model)


def _model(cls: type[M], body: Any, what: str) -> M:
    try:
        return cls.model_validate(body)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "(body)"
        raise AirflowBadResponse(
            f"malformed {what} from Airflow: {where}: {first['msg']}"
        ) from None


def _page(body: dict[str, Any], key: str, cls: type[M], answer: _Answer) -> Page[M]:
    items = body.get(key)
    if not isinstance(items, list):
        raise AirflowBadResponse(f"Airflow's answer has no list {key!r}")
    total = body.get("total_entries")
    if total is not None and (not isinstance(total, int) or isinstance(total, bool)):
        raise AirflowBadResponse("Airflow's answer has a total_entries that is not a number")
    next_cursor = body.get("next_cursor")
    if next_cursor is not None and not isinstance(next_cursor, str):
        raise AirflowBadResponse("Airflow's answer has a next_cursor that is not a string")
    return Page(
        items=[_model(cls, item, key.rstrip("s").replace("_", " ")) for item in items],
        total=total,
        next_cursor=next_cursor,
        # In key mode Airflow states a cap (total_entries_limit) and the cursors; paging by
        # offset, it leaves them out (before 3.3) or null.
        keyset=any(
            body.get(k) is not None
            for k in ("next_cursor", "previous_cursor", "total_entries_limit")
        ),
        server_time=answer.server_time,
    )
