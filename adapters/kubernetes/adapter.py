"""Kubernetes adapter: CronJobs as jobs, the Jobs they (or people) create as runs, through
the official ``kubernetes`` client.

How it keeps up: on first use the adapter starts, per selected namespace (or once for the
whole cluster), a list + watch of CronJobs and one of Jobs, each on its own thread (see
``_informer``); they fill a cache (``_cache``). ``list_jobs``, ``list_runs`` and
``get_runs`` answer from that cache, so the steady state is watch-driven: no request per
sync and none per CronJob. Requests that remain: the initial list (``limit`` pages), a
watch reconnect every ``watchTimeout``, a full re-list every ``resyncEvery`` or after a
410 Gone, pods of failed Jobs (at most ``podReadsPerSync`` per sync), and actions.

Every blocking call runs off the event loop: requests on the adapter's own bounded thread
pool (``maxConcurrentRequests``), watches on their own threads — never on AnyIO's default
thread limiter, which the API shares.

Ids are explained in ``_cache``: ``<namespace>/<cronjob>@<uid[:8]>`` for a CronJob,
``<cronjob id>/<job>@<uid[:8]>`` for a Job.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from kubernetes import client as k8s
from pydantic import BaseModel

from adapters.base import AdapterContext, BaseAdapter
from gateway.model import (
    ActionNotSupported,
    AdapterAuthError,
    AdapterError,
    AdapterInfo,
    AdapterUnavailable,
    Capability,
    EdgeKind,
    EdgeRecord,
    HealthStatus,
    InvalidResponse,
    JobRecord,
    NodeKind,
    NodeRef,
    NotFound,
    RunPage,
    RunRecord,
    SourceHealth,
)
from gateway.model.calendar import Calendar, calendar_from_cron

from ._cache import (
    AFTER_ANNOTATION,
    MANUAL_ANNOTATION,
    Cache,
    Links,
    after_tokens,
    cronjob_id,
    parse_cronjob_id,
    parse_run_id,
)
from ._informer import Informer
from .client import (
    KubeAuthFailed,
    KubeBadResponse,
    KubeClient,
    KubeConflict,
    KubeError,
    KubeGone,
    KubeNotFound,
    KubeRejected,
    KubeUnreachable,
    configuration_from_kubeconfig,
    configuration_in_cluster,
    configuration_with_token,
)
from .config import InClusterAuth, KubeconfigAuth, KubernetesConfig, TokenAuth
from .states import STATES

__all__ = ["KubernetesAdapter", "manual_job"]

T = TypeVar("T")
# Seconds a run asked for may be absent from the watched cache before it counts as deleted.
MISSING_GRACE = 30.0
_PAGE = 500
_POLL = 0.02


def _adapter_error(exc: KubeError) -> AdapterError:
    if isinstance(exc, KubeUnreachable):
        return AdapterUnavailable(str(exc), retry_after=exc.retry_after)
    if isinstance(exc, KubeGone):
        return AdapterUnavailable(str(exc))
    if isinstance(exc, KubeAuthFailed):
        return AdapterAuthError(str(exc))
    if isinstance(exc, KubeNotFound):
        return NotFound(str(exc))
    if isinstance(exc, KubeBadResponse):
        return InvalidResponse(str(exc))
    if isinstance(exc, KubeRejected | KubeConflict):
        return InvalidResponse(f"the API server refused: {exc}")
    return InvalidResponse(str(exc))


class KubernetesAdapter(BaseAdapter):
    """Accord's view of one Kubernetes cluster's CronJobs."""

    info: ClassVar[AdapterInfo] = AdapterInfo(
        type="kubernetes",
        display_name="Kubernetes",
        capabilities=frozenset(
            {
                Capability.TRIGGER,
                Capability.CANCEL,
                Capability.PAUSE,
                Capability.RESUME,
                Capability.STEPS,
                Capability.LINEAGE,
            }
        ),
        description=(
            "CronJobs of a Kubernetes cluster (all namespaces, a list, or a label selector) "
            "and the Jobs they create, kept current by list + watch."
        ),
    )
    config_model: ClassVar[type[BaseModel]] = KubernetesConfig
    reports_missed_runs: ClassVar[bool] = True  # the cache records Missed / Skipped runs

    @classmethod
    def schedule_calendar(
        cls,
        *,
        job_id: str,
        expression: str,
        timezone: str | None,
        next_run_at: datetime | None,
    ) -> Calendar | None:
        """A CronJob's ``schedule`` in its ``timeZone`` (else the controller's zone, as the
        source reported it); ``@every`` intervals have no calendar."""
        if expression.startswith("@every"):
            return None
        try:
            return calendar_from_cron(expression, timezone or "UTC")
        except (ValueError, KeyError):
            return None

    config: KubernetesConfig

    def __init__(
        self,
        ctx: AdapterContext,
        config: KubernetesConfig,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__(ctx, config)
        self._clock = clock or (lambda: datetime.now(UTC))
        # Runs asked for that the cache does not hold, by when they were first missed
        # (real time): a Job created a moment ago may not have come through the watch yet.
        self._missing: dict[str, float] = {}
        self._pool = ThreadPoolExecutor(
            max_workers=config.max_concurrent_requests,
            thread_name_prefix=f"k8s-{ctx.source}",
        )
        self.cache = Cache(
            links=Links(job=config.console_url, run=config.run_url),
            owner_label=config.owner_label,
            default_zone=config.timezone,
            clock=self._clock,
            filtered=bool(config.label_selector),
        )
        self.client: KubeClient | None = None
        self.informers: list[Informer] = []
        self._epoch = secrets.token_hex(4)
        self._start_lock = asyncio.Lock()
        self._closed = False

    # -- plumbing -------------------------------------------------------------------------------
    async def _blocking(self, fn: Callable[[], T]) -> T:
        """Run a blocking call on this source's own bounded pool."""
        if self._closed:
            raise AdapterUnavailable(f"source {self.ctx.source!r} is shutting down")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, fn)

    async def _act(self, fn: Callable[[], T]) -> T:
        try:
            return await self._blocking(fn)
        except KubeError as exc:
            raise _adapter_error(exc) from None

    def _configuration(self) -> k8s.Configuration:
        auth = self.config.auth
        if isinstance(auth, TokenAuth):
            try:
                token = self.ctx.secrets(auth.token_from)
            except LookupError as exc:
                raise KubeAuthFailed(
                    f"the bearer token ({auth.token_from.describe()}) is not available: {exc}"
                ) from None
            return configuration_with_token(
                auth.server,
                token.get_secret_value(),
                ca_file=auth.ca_file,
                verify=not auth.insecure_skip_tls_verify,
            )
        if isinstance(auth, InClusterAuth):
            return configuration_in_cluster()
        assert isinstance(auth, KubeconfigAuth)
        return configuration_from_kubeconfig(auth.kubeconfig, auth.context)

    async def _ensure_started(self) -> None:
        async with self._start_lock:
            if self.client is None:
                timeout = self.ctx.timeout
                self.client = await self._act(
                    lambda: KubeClient(self._configuration(), timeout=timeout)
                )
                scopes: list[str | None] = list(self.config.namespaces) or [None]
                for ns in scopes:
                    for resource, selector in (
                        ("cronjobs", self.config.label_selector),
                        ("jobs", None),  # Jobs carry their template's labels, not the CronJob's
                    ):
                        self.informers.append(
                            Informer(
                                client=self.client,
                                cache=self.cache,
                                resource=resource,
                                namespace=ns,
                                label_selector=selector,
                                page_size=self.config.page_size,
                                watch_timeout=int(self.config.watch_timeout.total_seconds()),
                                resync=self.config.resync_every.total_seconds(),
                            )
                        )
                for informer in self.informers:
                    informer.start()
        deadline = time.monotonic() + self.ctx.timeout
        while not all(i.synced.is_set() for i in self.informers):
            failed = next(
                (i for i in self.informers if i.error is not None and not i.synced.is_set()),
                None,
            )
            if failed is not None and failed.error is not None:
                raise _adapter_error(failed.error)
            if time.monotonic() >= deadline:
                raise AdapterUnavailable(
                    f"the first list of {self.ctx.source!r} did not finish within "
                    f"{self.ctx.timeout:g}s"
                )
            await asyncio.sleep(_POLL)

    def _healthy(self) -> None:
        """Raise when a watch cannot reconnect: the cache would otherwise go stale unseen."""
        for informer in self.informers:
            if informer.error is not None:
                raise _adapter_error(informer.error)

    async def aclose(self) -> None:
        self._closed = True
        for informer in self.informers:
            informer.stop()
        loop = asyncio.get_running_loop()
        informers = list(self.informers)

        def finish() -> None:
            for informer in informers:
                informer.join(5)

        await loop.run_in_executor(self._pool, finish)
        self._pool.shutdown(wait=False)
        if self.client is not None:
            self.client.close()

    @property
    def request_count(self) -> int:
        """API requests sent so far (watch requests included)."""
        return self.client.request_count if self.client is not None else 0

    def _scoped(self, namespace: str) -> bool:
        return not self.config.namespaces or namespace in self.config.namespaces

    def _governed(self, job_id: str) -> dict[str, Any]:
        parsed = parse_cronjob_id(job_id)
        if parsed is None:
            raise NotFound(
                f"{job_id!r} is not a Kubernetes CronJob id (<namespace>/<name>@<uid prefix>)"
            )
        obj = self.cache.cronjob(job_id)
        if obj is None:
            current = self.cache.current_id(parsed.namespace, parsed.name)
            hint = (
                f"; it was deleted and re-created: the CronJob is now {current}" if current else ""
            )
            raise NotFound(
                f"CronJob {parsed.namespace}/{parsed.name} (uid {parsed.uid8}…) is not governed "
                f"by source {self.ctx.source!r} or no longer exists{hint}"
            )
        return obj

    # -- health ---------------------------------------------------------------------------------
    async def check(self) -> SourceHealth:
        await self._ensure_started()
        assert self.client is not None
        client = self.client
        version = await self._act(client.version)
        details: dict[str, Any] = {
            "server": client.server,
            "version": version.get("gitVersion"),
            "namespaces": list(self.config.namespaces) or "all",
            "watches": {
                i.scope: {"resourceVersion": i.resource_version, "lists": i.lists, "gone": i.gone}
                for i in self.informers
            },
        }
        broken = [i for i in self.informers if i.error is not None]
        if broken:
            return SourceHealth(
                status=HealthStatus.DEGRADED,
                message="; ".join(f"{i.scope}: {i.error}" for i in broken),
                details=details,
            )
        return SourceHealth(
            status=HealthStatus.OK,
            message=f"Kubernetes {version.get('gitVersion', '?')} at {client.server}",
            details=details,
        )

    # -- inventory ------------------------------------------------------------------------------
    async def list_jobs(self) -> AsyncIterator[JobRecord]:
        await self._ensure_started()
        self._healthy()
        for record in self.cache.job_records():
            yield record

    async def lineage(self, job: JobRecord) -> list[EdgeRecord]:
        obj = self.cache.cronjob(job.native_id)
        if obj is None:
            return []
        meta = obj["metadata"]
        template = ((obj.get("spec") or {}).get("jobTemplate") or {}).get("metadata") or {}
        values = [
            *after_tokens((meta.get("annotations") or {}).get(AFTER_ANNOTATION)),
            *after_tokens((template.get("annotations") or {}).get(AFTER_ANNOTATION)),
        ]
        edges: list[EdgeRecord] = []
        for token in dict.fromkeys(values):
            source, _, native = token.partition("/")
            if not native:
                continue  # reported as a problem of the job
            ref_source: str | None = source
            if source == self.ctx.source:
                ref_source = None
                if parse_cronjob_id(native) is None and native.count("/") == 1:
                    ns, name = native.split("/")
                    native = self.cache.current_id(ns, name) or native
            edges.append(
                EdgeRecord(
                    kind=EdgeKind.DEPENDS_ON,
                    src=NodeRef(kind=NodeKind.JOB, id=native, source=ref_source),
                    dst=NodeRef(kind=NodeKind.JOB, id=job.native_id),
                    evidence=(
                        f"annotation {AFTER_ANNOTATION} on CronJob "
                        f"{meta.get('namespace')}/{meta.get('name')}"
                    ),
                )
            )
        return edges

    # -- runs -------------------------------------------------------------------------------------
    async def _read_pods(self) -> None:
        """Pods of failed Jobs, at most ``podReadsPerSync`` per call, on the request pool
        (so at most ``maxConcurrentRequests`` at once)."""
        client = self.client
        if client is None or self.config.pod_reads_per_sync == 0:
            return
        with self.cache.lock:
            due = list(self.cache.pod_queue.items())[: self.config.pod_reads_per_sync]

        async def read(run_id: str, ns: str, name: str) -> None:
            try:
                pods = await self._blocking(lambda: client.list_pods(ns, name))
            except (KubeAuthFailed, KubeRejected, KubeNotFound, KubeBadResponse):
                pods = []  # no permission to read pods, or gone: the conditions must do
            except KubeError:
                return  # unreachable for now: try again next time
            self.cache.set_pods(run_id, pods)

        await asyncio.gather(*(read(r, ns, name) for r, (ns, name) in due))

    def _cursor(self, cursor: str | None) -> int:
        if cursor:
            epoch, _, seq = cursor.partition(":")
            if epoch == self._epoch and seq.isdigit():
                return int(seq)
        return 0  # a cursor of an earlier process: report everything the cache holds

    async def list_runs(self, cursor: str | None) -> RunPage:
        await self._ensure_started()
        self._healthy()
        await self._read_pods()
        self.cache.find_missed(grace=self.config.missed_grace)
        after = self._cursor(cursor)
        # The gateway stores each page with its cursor before it asks for the next: what
        # came before this cursor is in its history.
        self.cache.forget_delivered(after)
        runs, seq, more = self.cache.changes(after, _PAGE)
        return RunPage(runs=tuple(runs), cursor=f"{self._epoch}:{seq}", more=more)

    async def get_runs(self, native_ids: Sequence[str]) -> list[RunRecord]:
        await self._ensure_started()
        self._healthy()
        out: list[RunRecord] = []
        for native_id in dict.fromkeys(native_ids):
            parsed = parse_run_id(native_id)
            if parsed is None or not self._scoped(parsed.namespace):
                continue
            record = self.cache.run(native_id)
            if record is not None:
                self._missing.pop(native_id, None)
                out.append(record)
            elif parsed.name is not None:
                # Not in the cluster although the lists are complete: deleted while nobody
                # watched, unless it is so new that the watch has not delivered it yet (a
                # Job Accord just created): only after MISSING_GRACE is it called deleted.
                first = self._missing.setdefault(native_id, time.monotonic())
                if time.monotonic() - first < MISSING_GRACE:
                    continue
                del self._missing[native_id]
                now = self._clock()
                out.append(
                    RunRecord(
                        native_id=native_id,
                        job_native_id=parsed.cronjob,
                        state=STATES["Deleted"],
                        native_state="Deleted",
                        ended_at=now,
                        message=(
                            f"Job {parsed.namespace}/{parsed.name} no longer exists in the "
                            "cluster and Accord did not see it finish"
                        ),
                    )
                )
        return out

    # -- actions ----------------------------------------------------------------------------------
    async def trigger(self, job_id: str, params: Mapping[str, Any]) -> RunRecord:
        await self._ensure_started()
        self._governed(job_id)
        if params:
            raise ActionNotSupported(
                "Kubernetes CronJobs take no parameters (got "
                f"{', '.join(sorted(params))}); trigger without any"
            )
        parsed = parse_cronjob_id(job_id)
        assert parsed is not None and self.client is not None
        client = self.client
        cj = await self._act(lambda: client.read_cronjob(parsed.namespace, parsed.name))
        uid = str(cj["metadata"].get("uid", ""))
        if cronjob_id(parsed.namespace, parsed.name, uid) != job_id:
            raise NotFound(f"CronJob {job_id} was deleted and re-created; refresh and retry")
        body = manual_job(cj, source=self.ctx.source)
        created = await self._act(lambda: client.create_job(parsed.namespace, body))
        self.cache.apply("jobs", "ADDED", created, local=True)
        made = created["metadata"]
        run_id = f"{job_id}/{made['name']}@{str(made['uid']).replace('-', '')[:8]}"
        record = self.cache.run(run_id)
        if record is None:
            raise InvalidResponse(f"the API server answered the Job creation of {job_id} oddly")
        return record

    async def cancel(self, run_id: str) -> None:
        await self._ensure_started()
        parsed = parse_run_id(run_id)
        if parsed is None or parsed.name is None or not self._scoped(parsed.namespace):
            raise NotFound(f"{run_id!r} is not a Job of source {self.ctx.source!r}")
        job = self.cache.find("jobs", parsed.namespace, parsed.name)
        if job is None or job["metadata"]["uid"].replace("-", "")[:8] != parsed.uid8:
            raise NotFound(f"Job {parsed.namespace}/{parsed.name} no longer exists")
        record = self.cache.run(run_id)
        if record is not None and record.state.terminal:
            raise ActionNotSupported(
                f"Job {parsed.namespace}/{parsed.name} already ended ({record.native_state}); "
                "there is nothing to cancel"
            )
        assert self.client is not None
        client = self.client
        uid = str(job["metadata"]["uid"])
        try:
            await self._blocking(
                lambda: client.delete_job(
                    parsed.namespace,
                    str(parsed.name),
                    propagation=self.config.cancel_propagation,
                    uid=uid,
                )
            )
        except KubeNotFound:
            raise NotFound(f"Job {parsed.namespace}/{parsed.name} no longer exists") from None
        except KubeConflict:
            raise NotFound(
                f"Job {parsed.namespace}/{parsed.name} was replaced by another of that name"
            ) from None
        except KubeError as exc:
            raise _adapter_error(exc) from None
        self.cache.apply("jobs", "DELETED", job)

    async def _suspend(self, job_id: str, suspend: bool) -> None:
        await self._ensure_started()
        obj = self._governed(job_id)
        meta = obj["metadata"]
        assert self.client is not None
        client = self.client
        # metadata.uid in a patch is a precondition: never suspend a re-created namesake.
        patch = {"metadata": {"uid": meta["uid"]}, "spec": {"suspend": suspend}}
        try:
            updated = await self._blocking(
                lambda: client.patch_cronjob(meta["namespace"], meta["name"], patch)
            )
        except KubeNotFound:
            raise NotFound(f"CronJob {job_id} no longer exists") from None
        except KubeConflict:
            raise NotFound(f"CronJob {job_id} was deleted and re-created") from None
        except KubeError as exc:
            raise _adapter_error(exc) from None
        self.cache.apply("cronjobs", "MODIFIED", updated, local=True)

    async def pause(self, job_id: str) -> None:
        await self._suspend(job_id, True)

    async def resume(self, job_id: str) -> None:
        await self._suspend(job_id, False)


def manual_job(cronjob: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """A Job from a CronJob's template, as ``kubectl create job --from=cronjob/NAME`` builds
    it: the template's labels and annotations plus ``cronjob.kubernetes.io/instantiate:
    manual``, a controller owner reference without ``blockOwnerDeletion``, the template's
    spec. The name is ``<cronjob>-manual-<6 hex>`` (at most 63 characters)."""
    meta = cronjob["metadata"]
    template = (cronjob.get("spec") or {}).get("jobTemplate") or {}
    tmeta = template.get("metadata") or {}
    annotations = dict(tmeta.get("annotations") or {})
    annotations[MANUAL_ANNOTATION] = "manual"
    annotations["accord.dev/source"] = source
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"{str(meta['name'])[:49]}-manual-{secrets.token_hex(3)}",
            "namespace": meta["namespace"],
            "labels": dict(tmeta.get("labels") or {}),
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "CronJob",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": dict(template.get("spec") or {}),
    }
