"""The batch/v1 CronJob and Job API through the official ``kubernetes`` client.

Knows nothing of Accord. Every method is **blocking** (the official client is urllib3
based): callers run them in worker threads. Answers are the API's JSON as dicts (the
client's model classes are skipped, ``_preload_content=False``: they cost more than the
request at thousands of objects). Errors are the small hierarchy below.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from gateway.model import parse_retry_after

__all__ = [
    "KubeAuthFailed",
    "KubeBadResponse",
    "KubeClient",
    "KubeConflict",
    "KubeError",
    "KubeGone",
    "KubeNotFound",
    "KubeRejected",
    "KubeUnreachable",
    "ListPage",
    "configuration_from_kubeconfig",
    "configuration_in_cluster",
    "configuration_with_token",
]

T = TypeVar("T")


class KubeError(Exception):
    """Base of the client's errors."""


class KubeUnreachable(KubeError):
    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class KubeAuthFailed(KubeError):
    pass


class KubeNotFound(KubeError):
    pass


class KubeConflict(KubeError):
    pass


class KubeGone(KubeError):
    """410: a resourceVersion or continue token has expired: list again."""


class KubeRejected(KubeError):
    """Another 4xx: the API refused the request (the message says why)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class KubeBadResponse(KubeError):
    pass


@dataclass(frozen=True)
class ListPage:
    items: list[dict[str, Any]]
    resource_version: str
    continue_token: str | None


def configuration_from_kubeconfig(path: str | None, context: str | None) -> k8s.Configuration:
    """Blocking (reads files; may run an exec credential plugin)."""
    cfg = k8s.Configuration()
    try:
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, context=context, client_configuration=cfg, persist_config=False
        )
    except (ConfigException, OSError, TypeError, ValueError) as exc:
        where = path or "the default kubeconfig"
        raise KubeAuthFailed(
            f"cannot use {where} (context {context or 'current'}): {exc}"
        ) from None
    return cfg


def configuration_in_cluster() -> k8s.Configuration:
    cfg = k8s.Configuration()
    try:
        k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
    except ConfigException as exc:
        raise KubeAuthFailed(f"not running in a pod with a service account: {exc}") from None
    return cfg


def configuration_with_token(
    server: str, token: str, *, ca_file: str | None, verify: bool
) -> k8s.Configuration:
    cfg = k8s.Configuration(
        host=server,
        api_key={"BearerToken": token},
        api_key_prefix={"BearerToken": "Bearer"},
    )
    cfg.ssl_ca_cert = ca_file
    cfg.verify_ssl = verify
    return cfg


def _message(exc: ApiException) -> str:
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            status = json.loads(body)
        except ValueError:
            return f"{exc.status} {exc.reason}: {body[:200]}"
        if isinstance(status, dict) and status.get("message"):
            return f"{exc.status} {status.get('reason') or exc.reason}: {status['message']}"
    return f"{exc.status} {exc.reason}"


def _retry_after(exc: ApiException) -> float | None:
    headers = exc.headers or {}
    value = headers.get("Retry-After") if hasattr(headers, "get") else None
    return parse_retry_after(value)


def _mapped(exc: ApiException, what: str) -> KubeError:
    status = exc.status or 0
    text = f"{what}: {_message(exc)}"
    if status in (401, 403):
        return KubeAuthFailed(text)
    if status == 404:
        return KubeNotFound(text)
    if status == 409:
        return KubeConflict(text)
    if status == 410:
        return KubeGone(text)
    if status == 429 or status >= 500 or status == 0:
        return KubeUnreachable(text, retry_after=_retry_after(exc))
    return KubeRejected(text, status=status)


class KubeClient:
    """One cluster's API. Thread-safe: urllib3's pool is shared by the calling threads."""

    def __init__(self, configuration: k8s.Configuration, *, timeout: float = 30.0) -> None:
        self.configuration = configuration
        self.api_client = k8s.ApiClient(configuration)
        # The client imports its API modules on first use (seconds for CoreV1Api): build
        # this object in a worker thread, and the core API only when pods are read.
        self.batch = k8s.BatchV1Api(self.api_client)
        self._core: k8s.CoreV1Api | None = None
        self.timeout = timeout
        self._count_lock = threading.Lock()
        self.request_count = 0
        self.watch_count = 0

    @property
    def core(self) -> k8s.CoreV1Api:
        if self._core is None:
            self._core = k8s.CoreV1Api(self.api_client)
        return self._core

    @property
    def server(self) -> str:
        return str(self.configuration.host)

    def close(self) -> None:
        self.api_client.close()  # type: ignore[no-untyped-call]

    def _counted(self, *, watch: bool = False) -> None:
        with self._count_lock:
            self.request_count += 1
            if watch:
                self.watch_count += 1

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        self._counted()
        try:
            return fn()
        except ApiException as exc:
            raise _mapped(exc, what) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeUnreachable(f"{what}: {self.server} is unreachable ({exc})") from None

    def _json(self, what: str, fn: Callable[[], Any]) -> Any:
        def call() -> Any:
            resp = fn()
            try:
                data = resp.data
            finally:
                resp.release_conn()
            return data

        data = self._call(what, call)
        try:
            return json.loads(data)
        except (ValueError, TypeError):
            raise KubeBadResponse(f"{what}: the answer is not JSON") from None

    # -- reads ----------------------------------------------------------------------------------
    def version(self) -> dict[str, Any]:
        out = self._json(
            "GET /version",
            lambda: k8s.VersionApi(self.api_client).get_code(
                _preload_content=False, _request_timeout=self.timeout
            ),
        )
        if not isinstance(out, dict):
            raise KubeBadResponse("GET /version: not an object")
        return out

    def _lister(self, resource: str, namespace: str | None) -> Callable[..., Any]:
        if resource == "cronjobs":
            if namespace is None:
                return self.batch.list_cron_job_for_all_namespaces
            return lambda **kw: self.batch.list_namespaced_cron_job(namespace, **kw)
        if resource == "jobs":
            if namespace is None:
                return self.batch.list_job_for_all_namespaces
            return lambda **kw: self.batch.list_namespaced_job(namespace, **kw)
        if resource == "pods":
            if namespace is None:
                return self.core.list_pod_for_all_namespaces
            return lambda **kw: self.core.list_namespaced_pod(namespace, **kw)
        raise ValueError(resource)

    def list_page(
        self,
        resource: str,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> ListPage:
        lister = self._lister(resource, namespace)
        kwargs: dict[str, Any] = {"_preload_content": False, "_request_timeout": self.timeout}
        if label_selector:
            kwargs["label_selector"] = label_selector
        if limit:
            kwargs["limit"] = limit
        if continue_token:
            kwargs["_continue"] = continue_token
        where = f"namespace {namespace}" if namespace else "all namespaces"
        body = self._json(f"list {resource} in {where}", lambda: lister(**kwargs))
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise KubeBadResponse(f"list {resource}: the answer is not a {resource} list")
        meta = body.get("metadata") or {}
        return ListPage(
            items=[i for i in body["items"] if isinstance(i, dict) and "metadata" in i],
            resource_version=str(meta.get("resourceVersion") or ""),
            continue_token=meta.get("continue") or None,
        )

    def watch(
        self,
        resource: str,
        namespace: str | None,
        *,
        resource_version: str,
        timeout_seconds: int,
        label_selector: str | None = None,
        on_start: Callable[[k8s_watch.Watch], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Events (``type``, ``object`` as JSON) from ``resource_version`` with bookmarks,
        until the server ends the stream. A 410 (HTTP or in-stream) raises KubeGone."""
        lister = self._lister(resource, namespace)
        # return_type=object keeps events as JSON dicts; ``deserialize=False`` would too, but
        # then the client fails on an in-stream ERROR event (KeyError 'raw_object').
        w = k8s_watch.Watch(return_type=object)  # type: ignore[no-untyped-call]
        if on_start is not None:
            on_start(w)
        kwargs: dict[str, Any] = {
            "resource_version": resource_version,
            "allow_watch_bookmarks": True,
            # A timeout also disables the Watch's own silent retry after a 410: the caller
            # re-lists instead, which is the only way not to miss a change.
            "timeout_seconds": timeout_seconds,
            "_request_timeout": (self.timeout, timeout_seconds + self.timeout),
        }
        if label_selector:
            kwargs["label_selector"] = label_selector
        self._counted(watch=True)
        what = f"watch {resource} in {namespace or 'all namespaces'}"
        try:
            for event in w.stream(lister, **kwargs):  # type: ignore[no-untyped-call]
                if isinstance(event, dict) and isinstance(event.get("object"), dict):
                    yield event
        except ApiException as exc:
            raise _mapped(exc, what) from None
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            raise KubeUnreachable(f"{what}: the stream broke ({exc})") from None
        finally:
            w.stop()  # type: ignore[no-untyped-call]

    def read_cronjob(self, namespace: str, name: str) -> dict[str, Any]:
        body = self._json(
            f"read cronjob {namespace}/{name}",
            lambda: self.batch.read_namespaced_cron_job(
                name, namespace, _preload_content=False, _request_timeout=self.timeout
            ),
        )
        if not isinstance(body, dict):
            raise KubeBadResponse(f"read cronjob {namespace}/{name}: not an object")
        return body

    def list_pods(self, namespace: str, job_name: str) -> list[dict[str, Any]]:
        page = self.list_page(
            "pods", namespace, label_selector=f"batch.kubernetes.io/job-name={job_name}"
        )
        return page.items

    # -- writes ---------------------------------------------------------------------------------
    def create_job(self, namespace: str, body: Mapping[str, Any]) -> dict[str, Any]:
        out = self._json(
            f"create job in {namespace}",
            # The client validates a dict body into its V1Job model (and back to JSON).
            lambda: self.batch.create_namespaced_job(
                namespace,
                dict(body),  # type: ignore[arg-type]
                _preload_content=False,
                _request_timeout=self.timeout,
            ),
        )
        if not isinstance(out, dict):
            raise KubeBadResponse("create job: the answer is not an object")
        return out

    def delete_job(self, namespace: str, name: str, *, propagation: str, uid: str | None) -> None:
        options: dict[str, Any] = {"propagationPolicy": propagation}
        if uid:
            options["preconditions"] = {"uid": uid}
        self._json(
            f"delete job {namespace}/{name}",
            lambda: self.batch.delete_namespaced_job(
                name,
                namespace,
                body=options,  # type: ignore[arg-type]
                _preload_content=False,
                _request_timeout=self.timeout,
            ),
        )

    def patch_cronjob(self, namespace: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        """A merge patch (the client sends a dict body as strategic-merge-patch+json)."""
        out = self._json(
            f"patch cronjob {namespace}/{name}",
            lambda: self.batch.patch_namespaced_cron_job(
                name, namespace, dict(patch), _preload_content=False, _request_timeout=self.timeout
            ),
        )
        if not isinstance(out, dict):
            raise KubeBadResponse("patch cronjob: the answer is not an object")
        return out
