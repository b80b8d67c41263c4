"""List + watch of one resource in one scope, on a thread of its own (a watch blocks for
minutes at a time, so it must not hold one of the adapter's request workers).

The loop, as client-go's reflector does it: list (in pages) → watch from the list's
resourceVersion with bookmarks → on a clean end or a broken stream, watch again from the
last resourceVersion seen (events or bookmarks) → on 410 Gone, list again. A full re-list
also happens every ``resync`` as a safety net.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from kubernetes import watch as k8s_watch

from ._cache import Cache
from .client import KubeClient, KubeError, KubeGone

__all__ = ["Informer"]

_log = logging.getLogger(__name__)
_MAX_BACKOFF = 30.0


class Informer:
    def __init__(
        self,
        *,
        client: KubeClient,
        cache: Cache,
        resource: str,
        namespace: str | None,
        label_selector: str | None,
        page_size: int,
        watch_timeout: int,
        resync: float,
    ) -> None:
        self.client = client
        self.cache = cache
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.resync = resync
        self.synced = threading.Event()
        self.error: KubeError | None = None
        self.lists = 0
        self.gone = 0
        self.watches = 0
        self.resource_version: str | None = None
        self._stop = threading.Event()
        self._watch: k8s_watch.Watch | None = None
        self._last_list = 0.0
        self._thread = threading.Thread(
            target=self._run,
            name=f"k8s-{resource}-{namespace or 'all'}",
            daemon=True,
        )

    @property
    def scope(self) -> str:
        return f"{self.resource} in {self.namespace or 'all namespaces'}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        w = self._watch
        if w is not None:
            w.stop()  # type: ignore[no-untyped-call]

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _list(self) -> str:
        items: list[dict[str, Any]] = []
        token: str | None = None
        rv = ""
        restarts = 0
        while True:
            try:
                page = self.client.list_page(
                    self.resource,
                    self.namespace,
                    label_selector=self.label_selector,
                    limit=self.page_size,
                    continue_token=token,
                )
            except KubeGone:
                # The continue token expired mid-list: start the list over (a few times).
                restarts += 1
                if restarts > 3:
                    raise
                items, token = [], None
                continue
            items.extend(page.items)
            if token is None:
                rv = page.resource_version
            token = page.continue_token
            if not token or self._stop.is_set():
                break
        self.cache.replace(self.resource, self.namespace, items)
        self.lists += 1
        self._last_list = time.monotonic()
        return rv

    def _keep(self, w: k8s_watch.Watch) -> None:
        self._watch = w

    def _run(self) -> None:
        backoff = 0.2
        failures = 0
        rv: str | None = None
        while not self._stop.is_set():
            received = 0
            try:
                if rv is None or time.monotonic() - self._last_list >= self.resync:
                    rv = self._list()
                    self.resource_version = rv
                    self.error = None
                    self.synced.set()
                self.watches += 1
                for event in self.client.watch(
                    self.resource,
                    self.namespace,
                    resource_version=rv,
                    timeout_seconds=self.watch_timeout,
                    label_selector=self.label_selector,
                    on_start=self._keep,
                ):
                    received += 1
                    obj = event["object"]
                    new_rv = (obj.get("metadata") or {}).get("resourceVersion")
                    if event.get("type") in ("ADDED", "MODIFIED", "DELETED"):
                        self.cache.apply(self.resource, str(event["type"]), obj)
                    if isinstance(new_rv, str) and new_rv:
                        rv = new_rv
                        self.resource_version = rv
                    if self._stop.is_set():
                        break
                self.error = None
                backoff, failures = 0.2, 0
            except KubeGone:
                self.gone += 1
                _log.info("%s: resourceVersion %s expired (410); listing again", self.scope, rv)
                rv = None
                if time.monotonic() - self._last_list < 1.0:
                    # Gone right after a list: do not spin on a server that keeps saying so.
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF)
            except KubeError as exc:
                if self._stop.is_set():
                    break
                if received:
                    # The stream broke after delivering events: resume at once.
                    backoff, failures = 0.2, 0
                    continue
                failures += 1
                if failures >= 2 or not self.synced.is_set():
                    self.error = exc
                _log.warning("%s: %s (retrying in %.1fs)", self.scope, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            except Exception as exc:  # a bug must not end the watch for good
                _log.exception("%s: unexpected error in the watch loop", self.scope)
                self.error = KubeError(f"{self.scope}: internal error: {exc}")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
            finally:
                self._watch = None
