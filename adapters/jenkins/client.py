"""Jenkins' remote API (JSON over HTTP), spoken through an injected ``httpx.AsyncClient``.

This module knows Jenkins, not Accord.

Why httpx rather than python-jenkins: python-jenkins is blocking (requests), turns 401,
403 and 500 alike into one ``JenkinsException`` and drops ``Retry-After``, and walks folders
with one request per level and job. Everything Accord needs is a few documented URLs with
``tree=`` selectors, so this client asks for exactly the fields it reads, the whole
folder hierarchy at once, and keeps Jenkins' status codes to tell a dead controller from
wrong credentials from a junk answer. python-jenkins stays in the test suite as a second,
independent client of the simulator.

Every request is counted (``request_count``) so that the cost of a sync is measurable.

CSRF: requests authenticated with an API token need no crumb (Jenkins'
``ApiCrumbExclusion``). When a POST is refused with 403 "No valid crumb was included in the
request" (a password was configured, or an old controller), the client fetches a crumb
from ``/crumbIssuer/api/json`` (the session cookie it sets is kept by the httpx client, as
``DefaultCrumbIssuer`` binds crumbs to the session) and repeats the POST once; Jenkins'
crumb filter refuses before acting, so repeating is safe.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from gateway.model import parse_retry_after

__all__ = [
    "JenkinsAuthFailed",
    "JenkinsBadResponse",
    "JenkinsClient",
    "JenkinsError",
    "JenkinsNotFound",
    "JenkinsRejected",
    "JenkinsUnreachable",
    "TreeItem",
    "job_url",
    "nest",
    "queue_id_from_location",
]

_CRUMB_REFUSAL = "no valid crumb"
_MAX_FOLDER_REQUESTS = 10_000


# -- errors ---------------------------------------------------------------------------------
class JenkinsError(Exception):
    """Base of the errors this client raises."""


class JenkinsUnreachable(JenkinsError):
    """No answer, a timeout, or a temporary refusal (5xx, 429)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class JenkinsAuthFailed(JenkinsError):
    """401 (credentials rejected) or 403 (not allowed)."""

    def __init__(self, message: str, *, rejected: bool = False) -> None:
        super().__init__(message)
        self.rejected = rejected  # 401: the credentials themselves were refused


class JenkinsNotFound(JenkinsError):
    """404: no such job, build or queue item."""


class JenkinsRejected(JenkinsError):
    """Jenkins understood the request and refused it (400, 409, 422, ...)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"Jenkins refused the request (HTTP {status}): {detail}")
        self.status = status
        self.detail = detail


class JenkinsBadResponse(JenkinsError):
    """An answer that is not what the API documents (HTML instead of JSON, ...)."""


# -- helpers --------------------------------------------------------------------------------
def job_url(path: str) -> str:
    """``team/app/main`` → ``job/team/job/app/job/main/`` (each name URL-quoted)."""
    return "".join(f"job/{quote(part, safe='')}/" for part in path.split("/") if part)


def nest(fields: str, levels: int) -> str:
    """A ``tree`` selecting ``fields`` of items ``levels`` folders deep, plus a bare ``jobs``
    probe at the deepest level (it lists ``_class`` stubs only for folders that have
    children, which are then read with a request of their own)."""
    inner = f"{fields},jobs"
    for _ in range(levels - 1):
        inner = f"{fields},jobs[{inner}]"
    return f"jobs[{inner}]"


def queue_id_from_location(location: str) -> int | None:
    """``http://j/queue/item/17/`` → 17."""
    parts = [p for p in urlsplit(location).path.split("/") if p]
    for i, part in enumerate(parts[:-1]):
        if part == "item" and i > 0 and parts[i - 1] == "queue" and parts[i + 1].isdigit():
            return int(parts[i + 1])
    return None


def _retry_after(value: str | None) -> float | None:
    return parse_retry_after(value)


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass(frozen=True)
class TreeItem:
    """One job found in the folder hierarchy."""

    path: str  # full name, e.g. team/app/main
    data: dict[str, Any]  # the fields asked for
    parent_class: str | None  # _class of the containing folder (None at the root)


class JenkinsClient:
    """Jenkins' JSON API. ``http`` carries the base URL's auth and TLS settings."""

    def __init__(self, base_url: str, http: httpx.AsyncClient, *, username: str = "") -> None:
        self.base_url = base_url.rstrip("/") + "/"
        self.http = http
        self.username = username
        self.request_count = 0
        self._crumb: tuple[str, str] | None = None
        self.version: str | None = None

    # -- transport --------------------------------------------------------------------------
    async def _send(
        self,
        method: str,
        rel: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        url = self.base_url + rel.lstrip("/")
        self.request_count += 1
        try:
            response = await self.http.request(method, url, params=params, headers=headers)
        except httpx.TimeoutException:
            raise JenkinsUnreachable(f"Jenkins at {self.base_url} did not answer in time") from None
        except httpx.TransportError as exc:
            raise JenkinsUnreachable(
                f"cannot reach Jenkins at {self.base_url}: {type(exc).__name__}: {exc}"
            ) from None
        if "X-Jenkins" in response.headers:
            self.version = response.headers["X-Jenkins"]
        return response

    def _raise_for(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if status < 400:
            return
        text = response.text
        if status == 401:
            raise JenkinsAuthFailed(
                f"Jenkins rejected the credentials of user {self.username!r} (HTTP 401)"
                " — check the username and API token",
                rejected=True,
            )
        if status == 403:
            if _CRUMB_REFUSAL in text.lower():
                raise JenkinsAuthFailed(
                    f"Jenkins refused {what}: no valid CSRF crumb (HTTP 403)"
                    " — use an API token rather than a password"
                )
            raise JenkinsAuthFailed(
                f"user {self.username!r} is not allowed to {what} (HTTP 403: {_snippet(text, 80)})"
            )
        if status == 404:
            raise JenkinsNotFound(f"Jenkins has no {what.removeprefix('read ')} (HTTP 404)")
        if status == 429 or status >= 500:
            raise JenkinsUnreachable(
                f"Jenkins answered HTTP {status} to {what}",
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        raise JenkinsRejected(status, _snippet(text) or response.reason_phrase)

    async def get_json(
        self, rel: str, *, what: str, params: Mapping[str, Any] | None = None
    ) -> Any:
        response = await self._send("GET", rel, params=params)
        self._raise_for(response, what)
        ctype = response.headers.get("Content-Type", "")
        if "json" not in ctype:
            raise JenkinsBadResponse(
                f"expected JSON to {what} from {self.base_url}{rel}, got "
                f"{ctype.split(';')[0] or 'no content type'} ({_snippet(response.text, 60)!r})"
                " — is the URL a Jenkins, not a login page or proxy?"
            )
        try:
            return json.loads(response.content)
        except ValueError as exc:
            raise JenkinsBadResponse(f"invalid JSON to {what}: {exc}") from None

    async def get_text(self, rel: str, *, what: str) -> str:
        response = await self._send("GET", rel)
        self._raise_for(response, what)
        ctype = response.headers.get("Content-Type", "")
        if "html" in ctype:
            raise JenkinsBadResponse(f"expected XML to {what}, got an HTML page")
        return response.text

    async def post(
        self, rel: str, *, what: str, params: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        headers = {self._crumb[0]: self._crumb[1]} if self._crumb else None
        response = await self._send("POST", rel, params=params, headers=headers)
        if response.status_code == 403 and _CRUMB_REFUSAL in response.text.lower():
            self._crumb = await self._fetch_crumb()
            if self._crumb is not None:
                headers = {self._crumb[0]: self._crumb[1]}
                response = await self._send("POST", rel, params=params, headers=headers)
        self._raise_for(response, what)
        return response

    async def _fetch_crumb(self) -> tuple[str, str] | None:
        try:
            data = await self.get_json("crumbIssuer/api/json", what="issue a CSRF crumb")
        except JenkinsNotFound:
            return None  # crumbs are disabled: the 403 stands
        if not isinstance(data, dict) or not data.get("crumb"):
            raise JenkinsBadResponse("the crumb issuer answered without a crumb")
        return str(data.get("crumbRequestField") or "Jenkins-Crumb"), str(data["crumb"])

    # -- reads -------------------------------------------------------------------------------
    async def root(self, tree: str) -> dict[str, Any]:
        data = await self.get_json("api/json", what="read the controller", params={"tree": tree})
        if not isinstance(data, dict):
            raise JenkinsBadResponse("the root API answered something other than an object")
        return data

    async def walk(self, fields: str, levels: int) -> list[TreeItem]:
        """Every job in every folder: ``fields`` of each, ``levels`` folders per request."""
        found: list[TreeItem] = []
        pending: list[tuple[str, str | None]] = [("", None)]
        for _ in range(_MAX_FOLDER_REQUESTS):
            if not pending:
                return found
            folder, folder_class = pending.pop(0)
            rel = f"{job_url(folder)}api/json" if folder else "api/json"
            what = f"list the jobs of folder {folder!r}" if folder else "list jobs"
            data = await self.get_json(rel, what=what, params={"tree": nest(fields, levels)})
            if not isinstance(data, dict):
                raise JenkinsBadResponse(f"expected an object to {what}")
            self._collect(data.get("jobs"), folder, folder_class, found, pending)
        raise JenkinsBadResponse(f"more than {_MAX_FOLDER_REQUESTS} folder requests: giving up")

    def _collect(
        self,
        items: Any,
        folder: str,
        folder_class: str | None,
        found: list[TreeItem],
        pending: list[tuple[str, str | None]],
    ) -> None:
        if items is None:
            return
        if not isinstance(items, list):
            raise JenkinsBadResponse("'jobs' is not a list")
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise JenkinsBadResponse(f"an item of folder {folder!r} has no name")
            path = f"{folder}/{item['name']}" if folder else item["name"]
            cls = item.get("_class") if isinstance(item.get("_class"), str) else None
            children = item.get("jobs")
            if children is None:
                found.append(TreeItem(path=path, data=item, parent_class=folder_class))
            elif children and all(set(c) <= {"_class"} for c in children if isinstance(c, dict)):
                pending.append((path, cls))  # the probe at the deepest level: read it later
            else:
                self._collect(children, path, cls, found, pending)

    async def config_xml(self, path: str) -> str:
        return await self.get_text(f"{job_url(path)}config.xml", what=f"read job {path}'s config")

    async def job(self, path: str, tree: str) -> dict[str, Any]:
        data = await self.get_json(
            f"{job_url(path)}api/json", what=f"read job {path}", params={"tree": tree}
        )
        if not isinstance(data, dict):
            raise JenkinsBadResponse(f"job {path} answered something other than an object")
        return data

    async def build(self, path: str, number: int, tree: str) -> dict[str, Any]:
        data = await self.get_json(
            f"{job_url(path)}{number}/api/json",
            what=f"read build {path}#{number}",
            params={"tree": tree},
        )
        if not isinstance(data, dict):
            raise JenkinsBadResponse(f"build {path}#{number} is not an object")
        return data

    async def stages(self, path: str, number: int) -> dict[str, Any]:
        data = await self.get_json(
            f"{job_url(path)}{number}/wfapi/describe", what=f"read stages of {path}#{number}"
        )
        if not isinstance(data, dict):
            raise JenkinsBadResponse(f"wfapi of {path}#{number} is not an object")
        return data

    async def queue(self, tree: str) -> list[dict[str, Any]]:
        data = await self.get_json("queue/api/json", what="read the queue", params={"tree": tree})
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise JenkinsBadResponse("the queue answered without an item list")
        return [i for i in items if isinstance(i, dict)]

    async def queue_item(self, qid: int, tree: str) -> dict[str, Any]:
        data = await self.get_json(
            f"queue/item/{qid}/api/json", what=f"read queue item {qid}", params={"tree": tree}
        )
        if not isinstance(data, dict):
            raise JenkinsBadResponse(f"queue item {qid} is not an object")
        return data

    # -- actions -----------------------------------------------------------------------------
    async def build_job(self, path: str, params: Mapping[str, Any] | None) -> int:
        """Queue a build; return the queue item id from ``Location``."""
        endpoint = "buildWithParameters" if params else "build"
        query: dict[str, Any] = {"delay": "0sec"}
        for key, value in (params or {}).items():
            query[key] = _param_value(value)
        response = await self.post(
            f"{job_url(path)}{endpoint}", what=f"trigger job {path}", params=query
        )
        location = response.headers.get("Location", "")
        qid = queue_id_from_location(location)
        if qid is None:
            raise JenkinsBadResponse(
                f"triggering {path} answered HTTP {response.status_code} without a queue item"
                f" Location ({location!r})"
            )
        return qid

    async def stop_build(self, path: str, number: int) -> None:
        await self.post(f"{job_url(path)}{number}/stop", what=f"stop build {path}#{number}")

    async def cancel_queue_item(self, qid: int) -> None:
        await self.post("queue/cancelItem", what=f"cancel queue item {qid}", params={"id": qid})

    async def enable(self, path: str) -> None:
        await self.post(f"{job_url(path)}enable", what=f"enable job {path}")

    async def disable(self, path: str) -> None:
        await self.post(f"{job_url(path)}disable", what=f"disable job {path}")


def _param_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return ",".join(_param_value(v) for v in value)
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)
