"""Terraform Cloud's API v2 (JSON:API), spoken through an injected ``httpx.AsyncClient``.

This module knows Terraform Cloud, not Accord.

Why httpx rather than an SDK: the official Python client (python-tfe) is synchronous
(``httpx.Client``), so every call would need a worker thread, and it waits out rate limits
itself with ``Retry-After``, which the API does not document (``X-RateLimit-Reset`` is what
the API sends). Accord needs a dozen documented endpoints, an answer to a 429 that the sync
loop can schedule around, and a count of requests; a small async client does that.

Conventions of the API reproduced here: ``Authorization: Bearer``, ``Content-Type:
application/vnd.api+json``; pages with ``page[number]``/``page[size]`` (at most 100) and
``meta.pagination.next-page``; a resource the token may not see answers 404 (never 403);
401 only for a missing or wrong token; 429 with ``X-RateLimit-Reset`` (seconds, a float).
A 429 whose reset is short (``rate_limit_wait``) is waited out and retried, at most twice;
a longer one is raised with its ``retry_after`` for the sync loop's backoff.

Every request is counted (``request_count``) so that the cost of a sync is measurable.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

__all__ = [
    "JSONAPI",
    "TfcAuthFailed",
    "TfcBadResponse",
    "TfcClient",
    "TfcConflict",
    "TfcError",
    "TfcNotFound",
    "TfcUnavailable",
    "included_index",
    "rel_id",
]

JSONAPI = "application/vnd.api+json"
_RATE_LIMIT_RETRIES = 2
_MAX_PAGES = 1000


class TfcError(Exception):
    """Base of the errors this client raises."""


class TfcUnavailable(TfcError):
    """No answer, a timeout, a 5xx, or a rate limit (429)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TfcAuthFailed(TfcError):
    """401: the token is missing, wrong or expired."""


class TfcNotFound(TfcError):
    """404: no such resource, or the token may not see it (the API does not tell which)."""


class TfcConflict(TfcError):
    """The API understood the request and refused it (409, 422, 403, ...)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"Terraform Cloud refused the request (HTTP {status}): {detail}")
        self.status = status
        self.detail = detail


class TfcBadResponse(TfcError):
    """An answer that is not what the API documents."""


def _errors(response: httpx.Response) -> str:
    try:
        body = json.loads(response.content)
    except ValueError:
        text = " ".join(response.text.split())
        return text[:200] or response.reason_phrase
    parts: list[str] = []
    for err in body.get("errors") or [] if isinstance(body, dict) else []:
        if isinstance(err, dict):
            bits = [str(err[k]) for k in ("title", "detail") if err.get(k)]
            parts.append(": ".join(bits))
        elif isinstance(err, str):
            parts.append(err)
    return "; ".join(parts) or response.reason_phrase


def reset_seconds(response: httpx.Response) -> float | None:
    """Seconds until the rate limit resets (``X-RateLimit-Reset``; ``Retry-After`` if sent)."""
    for header in ("X-RateLimit-Reset", "Retry-After"):
        value = response.headers.get(header)
        if value is None:
            continue
        try:
            seconds = float(value.strip())
        except ValueError:
            continue
        if seconds >= 0:
            return seconds
    return None


def rel_id(resource: Mapping[str, Any], name: str) -> str | None:
    """The id a to-one relationship points at (``relationships.<name>.data.id``)."""
    rels = resource.get("relationships")
    rel = rels.get(name) if isinstance(rels, dict) else None
    data = rel.get("data") if isinstance(rel, dict) else None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def included_index(document: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """``included`` resources of a document by (type, id)."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for res in document.get("included") or []:
        if isinstance(res, dict) and isinstance(res.get("type"), str):
            out[(res["type"], str(res.get("id")))] = res
    return out


class TfcClient:
    """Terraform Cloud's API v2. ``http`` carries the bearer token and TLS settings."""

    def __init__(
        self, base_url: str, http: httpx.AsyncClient, *, rate_limit_wait: float = 2.0
    ) -> None:
        self.api = base_url.rstrip("/") + "/api/v2/"
        self.http = http
        self.rate_limit_wait = rate_limit_wait
        self.request_count = 0
        self.rate_limited = 0  # 429 answers received
        self.version: str | None = None

    # -- transport --------------------------------------------------------------------------
    async def _send(
        self,
        method: str,
        rel: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        url = self.api + rel.lstrip("/")
        content = json.dumps(body).encode() if body is not None else None
        headers = {"Accept": JSONAPI}
        if content is not None:
            headers["Content-Type"] = JSONAPI
        for attempt in range(_RATE_LIMIT_RETRIES + 1):
            self.request_count += 1
            try:
                response = await self.http.request(
                    method, url, params=params, content=content, headers=headers
                )
            except httpx.TimeoutException:
                raise TfcUnavailable(
                    f"Terraform Cloud at {self.api} did not answer in time"
                ) from None
            except httpx.TransportError as exc:
                raise TfcUnavailable(
                    f"cannot reach Terraform Cloud at {self.api}: {type(exc).__name__}: {exc}"
                ) from None
            if "X-TFE-Version" in response.headers:
                self.version = response.headers["X-TFE-Version"]
            if response.status_code != 429:
                return response
            self.rate_limited += 1
            reset = reset_seconds(response)
            if reset is None or reset > self.rate_limit_wait or attempt == _RATE_LIMIT_RETRIES:
                raise TfcUnavailable(
                    f"Terraform Cloud rate limit reached ({method} {rel.split('?')[0]}); "
                    + (f"resets in {reset:g}s" if reset is not None else "no reset time given"),
                    retry_after=reset,
                )
            await asyncio.sleep(reset)
        raise AssertionError("unreachable")  # pragma: no cover

    def _raise_for(self, response: httpx.Response, what: str) -> None:
        status = response.status_code
        if status < 400:
            return
        if status == 401:
            raise TfcAuthFailed(
                f"Terraform Cloud rejected the API token (HTTP 401) to {what}"
                " — check that the token is valid and not expired"
            )
        if status == 404:
            raise TfcNotFound(
                f"Terraform Cloud has no {what.removeprefix('read ')} that this token may see"
                " (HTTP 404)"
            )
        if status >= 500:
            raise TfcUnavailable(f"Terraform Cloud answered HTTP {status} to {what}")
        raise TfcConflict(status, _errors(response))

    def _document(self, response: httpx.Response, what: str) -> dict[str, Any]:
        ctype = response.headers.get("Content-Type", "")
        if "json" not in ctype:
            raise TfcBadResponse(
                f"expected JSON:API to {what}, got {ctype.split(';')[0] or 'no content type'}"
                " — is the URL a Terraform Cloud or Enterprise host?"
            )
        try:
            doc = json.loads(response.content)
        except ValueError as exc:
            raise TfcBadResponse(f"invalid JSON to {what}: {exc}") from None
        if not isinstance(doc, dict) or "data" not in doc:
            raise TfcBadResponse(f"the answer to {what} is not a JSON:API document")
        return doc

    async def get(
        self, rel: str, *, what: str, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        response = await self._send("GET", rel, params=params)
        self._raise_for(response, what)
        return self._document(response, what)

    async def post(
        self, rel: str, *, what: str, body: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        response = await self._send("POST", rel, body=body)
        self._raise_for(response, what)
        return response

    async def pages(
        self,
        rel: str,
        *,
        what: str,
        params: Mapping[str, Any] | None = None,
        page_size: int = 100,
        max_pages: int = _MAX_PAGES,
    ) -> tuple[list[dict[str, Any]], dict[tuple[str, str], dict[str, Any]], bool]:
        """Every resource of a paginated list (up to ``max_pages``), the ``included``
        resources of all pages, and whether pages were left unread."""
        data: list[dict[str, Any]] = []
        included: dict[tuple[str, str], dict[str, Any]] = {}
        number = 1
        for _ in range(max_pages):
            query = {**(params or {}), "page[number]": number, "page[size]": page_size}
            doc = await self.get(rel, what=what, params=query)
            items = doc.get("data")
            if not isinstance(items, list):
                raise TfcBadResponse(f"the answer to {what} holds no list")
            data.extend(i for i in items if isinstance(i, dict))
            included.update(included_index(doc))
            nxt = _next_page(doc)
            if nxt is None:
                return data, included, False
            if nxt <= number:
                raise TfcBadResponse(f"pagination of {what} does not advance (page {nxt})")
            number = nxt
        return data, included, True

    # -- reads -------------------------------------------------------------------------------
    async def organization(self, org: str) -> dict[str, Any]:
        what = f"read organization {org}"
        return _resource(await self.get(f"organizations/{quote(org, safe='')}", what=what), what)

    async def workspaces(
        self, org: str, *, page_size: int
    ) -> tuple[list[dict[str, Any]], dict[tuple[str, str], dict[str, Any]]]:
        data, included, _ = await self.pages(
            f"organizations/{quote(org, safe='')}/workspaces",
            what=f"list the workspaces of organization {org}",
            params={"include": "project,current_run"},
            page_size=page_size,
        )
        return data, included

    async def workspace(self, ws_id: str) -> dict[str, Any]:
        doc = await self.get(f"workspaces/{quote(ws_id, safe='')}", what=f"read workspace {ws_id}")
        return _resource(doc, f"read workspace {ws_id}")

    async def run_triggers(self, ws_id: str) -> list[dict[str, Any]]:
        """Inbound run triggers: workspaces whose applies queue runs in ``ws_id``."""
        data, _, _ = await self.pages(
            f"workspaces/{quote(ws_id, safe='')}/run-triggers",
            what=f"list the run triggers of workspace {ws_id}",
            params={"filter[run-trigger][type]": "inbound"},
        )
        return data

    async def org_runs(
        self,
        org: str,
        *,
        params: Mapping[str, Any],
        page_size: int,
        max_pages: int,
    ) -> tuple[list[dict[str, Any]], dict[tuple[str, str], dict[str, Any]], bool]:
        return await self.pages(
            f"organizations/{quote(org, safe='')}/runs",
            what=f"list the runs of organization {org}",
            params=params,
            page_size=page_size,
            max_pages=max_pages,
        )

    async def run(self, run_id: str, *, include: str) -> dict[str, Any]:
        return await self.get(
            f"runs/{quote(run_id, safe='')}", what=f"read run {run_id}", params={"include": include}
        )

    # -- actions -----------------------------------------------------------------------------
    async def create_run(self, ws_id: str, attributes: Mapping[str, Any]) -> dict[str, Any]:
        response = await self.post(
            "runs",
            what=f"create a run in workspace {ws_id}",
            body={
                "data": {
                    "type": "runs",
                    "attributes": dict(attributes),
                    "relationships": {"workspace": {"data": {"type": "workspaces", "id": ws_id}}},
                }
            },
        )
        return self._document(response, f"create a run in workspace {ws_id}")

    async def run_action(self, run_id: str, action: str, comment: str | None = None) -> None:
        """``apply``, ``discard``, ``cancel`` or ``force-cancel`` (202, no body)."""
        body = {"comment": comment} if comment else None
        await self.post(
            f"runs/{quote(run_id, safe='')}/actions/{action}",
            what=f"{action} run {run_id}",
            body=body,
        )

    async def lock(self, ws_id: str, reason: str) -> None:
        await self.post(
            f"workspaces/{quote(ws_id, safe='')}/actions/lock",
            what=f"lock workspace {ws_id}",
            body={"reason": reason},
        )

    async def unlock(self, ws_id: str) -> None:
        await self.post(
            f"workspaces/{quote(ws_id, safe='')}/actions/unlock", what=f"unlock workspace {ws_id}"
        )


def _resource(doc: Mapping[str, Any], what: str) -> dict[str, Any]:
    data = doc.get("data")
    if not isinstance(data, dict):
        raise TfcBadResponse(f"the answer to {what} holds no resource object")
    return data


def _next_page(doc: Mapping[str, Any]) -> int | None:
    meta = doc.get("meta")
    pagination = meta.get("pagination") if isinstance(meta, dict) else None
    if not isinstance(pagination, dict):
        return None  # an unpaginated answer: one page
    nxt = pagination.get("next-page")
    if nxt is None:
        return None
    if isinstance(nxt, bool) or not isinstance(nxt, int):
        raise TfcBadResponse(f"meta.pagination.next-page is not a number: {nxt!r}")
    return nxt
