"""The adapter contract: everything a newcomer needs to connect a scheduler to Accord.

An adapter turns one scheduling system (Airflow, cron, Jenkins, ...) into Accord's model.
It is constructed once per configured Source and lives as long as that source's sync
worker. It never touches the database: it returns records, and the gateway stores them.

Contract (checked for every registered adapter by ``adapters.testing.contract``):

* ``info`` is class-level data: the adapter's ``type`` (the ``type:`` of a Source
  document), a display name and every capability an adapter of this type may have.
  ``capabilities_for(config)`` (a classmethod) and the ``capabilities`` property say what
  one Source, with its settings, can do: a subset of ``info.capabilities`` (a cron source
  fed by an agent cannot act on its host). Actions an adapter cannot do raise
  :class:`ActionNotSupported`, and the capability is absent from ``capabilities``; the
  gateway refuses such an action before it calls the adapter.
* ``config_model`` is a pydantic model of the adapter's Source settings. Secrets in it are
  :class:`SecretRef` values, resolved through the ``secrets`` callable only when used.
* ``list_jobs`` yields the whole inventory every time (level-triggered: the gateway diffs
  it against the store; what is no longer listed is tombstoned). Re-listing without a
  change at the source yields equal records.
* ``list_runs(cursor)`` returns runs created or changed since ``cursor`` (``None`` = from
  the beginning of what the adapter is willing to backfill), and a new cursor. Cursors are
  opaque strings, monotonic: passing the returned cursor never returns older changes
  again, except that the same run may be reported twice (the gateway's upserts are
  idempotent). ``more=True`` means call again at once with the new cursor.
* ``get_runs(ids)`` re-reads runs the gateway holds as non-terminal. Unknown ids are left
  out of the answer (not an error).
* ``lineage(job)`` returns edges the source knows for that job.
* ``trigger``/``cancel``/``pause``/``resume``/``retry`` act on the source, and so do
  ``apply``/``discard`` on a run that waits for approval (a plan to confirm). The gateway has
  already authorized, checked guardrails and will audit; the adapter only acts.
* ``parse_webhook`` verifies the signature of a webhook body and returns hints of what
  changed; a bad signature raises :class:`AdapterAuthError`. Hints only make a sync
  happen sooner: they are never the only truth.
* Errors: :class:`AdapterUnavailable` (temporary, with ``retry_after`` seconds when the
  source said so), :class:`AdapterAuthError` (permanent until reconfigured),
  :class:`NotFound`, :class:`ActionNotSupported`, :class:`InvalidResponse`. Nothing else
  should escape an adapter.
* Blocking calls (a vendor SDK, file reads) run in ``self.threads`` (:class:`SourceThreads`),
  the source's own worker threads, at most ``ctx.concurrency`` at once — never in AnyIO's
  default thread pool, which the API shares: a slow source must not starve the API.
* ``aclose`` releases connections (and, in :class:`BaseAdapter`, the source's threads).
* Optional, for forecasts and missed runs: the classmethod ``schedule_calendar(job_id=,
  expression=, timezone=, next_run_at=)`` turns a stored job schedule (what ``list_jobs``
  reported as ``schedule`` and ``next_run_at``) into a :class:`~gateway.model.calendar.
  Calendar`, or None when the dialect has no calendar (an asset-triggered DAG, ``@every``).
  The gateway never parses a tool's dialect itself. ``reports_missed_runs = True`` says the
  adapter records missed runs itself (cron, Kubernetes); for the others the gateway does,
  from the calendar.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import entry_points
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, SecretStr, ValidationError

from gateway.model import (
    ActionNotSupported,
    AdapterAuthError,
    AdapterError,
    AdapterInfo,
    AdapterUnavailable,
    Capability,
    EdgeRecord,
    InvalidResponse,
    JobRecord,
    NotFound,
    RunPage,
    RunRecord,
    SecretRef,
    SourceHealth,
    SyncHint,
)
from gateway.model.calendar import Calendar

__all__ = [
    "DEFAULT_CONCURRENCY",
    "ENTRY_POINT_GROUP",
    "ActionNotSupported",
    "Adapter",
    "AdapterAuthError",
    "AdapterConfigError",
    "AdapterContext",
    "AdapterError",
    "AdapterInfo",
    "AdapterUnavailable",
    "BaseAdapter",
    "Capability",
    "DemoPart",
    "InvalidResponse",
    "NotFound",
    "Registry",
    "SecretResolver",
    "SourceThreads",
    "UnknownAdapterType",
    "registry",
]

ENTRY_POINT_GROUP = "accord.adapters"
DEFAULT_CONCURRENCY = 4
"""Blocking calls one source may run at once unless its ``spec.sync.concurrency`` says."""
_log = logging.getLogger(__name__)
T = TypeVar("T")

SecretResolver = Callable[[SecretRef], SecretStr]
"""Turns a secret reference into its value (raises ``LookupError`` with a clear message)."""


@dataclass
class DemoPart:
    """What an adapter contributes to the demo federation (``adapters.<type>.demo``).

    ``documents`` are Source documents (as dicts) labelled demo; ``env`` holds the
    environment variables their secret references need; ``stop`` ends whatever the part
    started (a simulator thread, a temp directory); ``simulated`` says whether a simulator
    stands in for the real system.
    """

    documents: list[dict[str, Any]]
    env: dict[str, str]
    stop: Callable[[], None]
    # True when the part serves a simulator (not the real system): the sources are then
    # labelled ``accord.dev/simulator: "true"`` and shown as simulators everywhere.
    simulated: bool = False


@dataclass(frozen=True)
class AdapterContext:
    """What the gateway gives an adapter when it builds one for a Source."""

    source: str  # the Source's name
    domain: str
    secrets: SecretResolver
    timeout: float = 30.0
    concurrency: int = DEFAULT_CONCURRENCY  # blocking calls at once, in the source's threads


class SourceThreads:
    """The worker threads of one source, for its blocking calls.

    AnyIO's default thread limiter (40 threads) also runs the API's synchronous routes and
    dependencies; a slow source that filled it would stall the API. A source's blocking
    calls run here instead: at most ``size`` at once, the rest wait their turn. A caller
    that gives up (a timeout, a cancelled sync) stops waiting at once, but the call keeps
    its thread until the blocking function returns, so a source never holds more than
    ``size`` threads however slow it is.
    """

    def __init__(self, size: int, name: str) -> None:
        self.size = max(1, size)
        self.name = name
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.size, thread_name_prefix=f"accord-source-{self.name}"
                )
            return self._pool

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in one of the source's threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), functools.partial(fn, *args))

    def close(self) -> None:
        """Let the threads end once their calls return (a later ``run`` starts new ones)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


@runtime_checkable
class Adapter(Protocol):
    """The protocol every adapter implements (see the module docstring for the contract)."""

    info: ClassVar[AdapterInfo]
    config_model: ClassVar[type[BaseModel]]

    @property
    def capabilities(self) -> frozenset[Capability]:
        """What this source can do with its settings (a subset of ``info.capabilities``)."""
        ...

    async def check(self) -> SourceHealth:
        """Probe the source: reachable, authenticated, how healthy."""
        ...

    def list_jobs(self) -> AsyncIterator[JobRecord]:
        """Yield the whole inventory."""
        ...

    async def list_runs(self, cursor: str | None) -> RunPage:
        """Runs created or changed since ``cursor``."""
        ...

    async def get_runs(self, native_ids: Sequence[str]) -> list[RunRecord]:
        """Re-read these runs (the gateway holds them as non-terminal)."""
        ...

    async def lineage(self, job: JobRecord) -> list[EdgeRecord]:
        """Edges the source knows for this job."""
        ...

    async def trigger(self, job_id: str, params: Mapping[str, Any]) -> RunRecord:
        """Start a run of ``job_id`` now; return the run (possibly still queued)."""
        ...

    async def cancel(self, run_id: str) -> None:
        """Stop a queued or running run."""
        ...

    async def pause(self, job_id: str) -> None:
        """Stop scheduling new runs of a job, reversibly."""
        ...

    async def resume(self, job_id: str) -> None:
        """Undo ``pause``."""
        ...

    async def retry(self, run_id: str) -> RunRecord:
        """Run a failed run again."""
        ...

    async def apply(self, run_id: str) -> None:
        """Confirm a run that waits for approval (e.g. a Terraform plan to apply)."""
        ...

    async def discard(self, run_id: str) -> None:
        """Reject a run that waits for approval; it ends without doing its work."""
        ...

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[SyncHint]:
        """Verify a webhook and say what changed."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class BaseAdapter:
    """Convenience base: optional actions answer ``ActionNotSupported`` with a clear message.

    Subclasses set ``info`` and ``config_model`` and implement what they support.
    """

    info: ClassVar[AdapterInfo]
    config_model: ClassVar[type[BaseModel]]
    reports_missed_runs: ClassVar[bool] = False

    def __init__(self, ctx: AdapterContext, config: BaseModel) -> None:
        self.ctx = ctx
        self.config = config
        self.threads = SourceThreads(ctx.concurrency, ctx.source)

    @classmethod
    def capabilities_for(cls, config: BaseModel) -> frozenset[Capability]:
        """What a source of this type with these settings can do (default: ``info``)."""
        return cls.info.capabilities

    @classmethod
    def schedule_calendar(
        cls,
        *,
        job_id: str,
        expression: str,
        timezone: str | None,
        next_run_at: datetime | None,
    ) -> Calendar | None:
        """The calendar of a stored schedule (default: the tool has no calendar dialect)."""
        return None

    @property
    def capabilities(self) -> frozenset[Capability]:
        return type(self).capabilities_for(self.config) & type(self).info.capabilities

    def _unsupported(self, action: str) -> ActionNotSupported:
        return ActionNotSupported(
            f"{self.info.display_name} sources do not support '{action}'"
            f" (source {self.ctx.source!r})"
        )

    async def lineage(self, job: JobRecord) -> list[EdgeRecord]:
        return []

    async def trigger(self, job_id: str, params: Mapping[str, Any]) -> RunRecord:
        raise self._unsupported("trigger")

    async def cancel(self, run_id: str) -> None:
        raise self._unsupported("cancel")

    async def pause(self, job_id: str) -> None:
        raise self._unsupported("pause")

    async def resume(self, job_id: str) -> None:
        raise self._unsupported("resume")

    async def retry(self, run_id: str) -> RunRecord:
        raise self._unsupported("retry")

    async def apply(self, run_id: str) -> None:
        raise self._unsupported("apply")

    async def discard(self, run_id: str) -> None:
        raise self._unsupported("discard")

    def parse_webhook(self, headers: Mapping[str, str], body: bytes) -> list[SyncHint]:
        raise self._unsupported("webhooks")

    async def aclose(self) -> None:
        self.threads.close()


class UnknownAdapterType(LookupError):
    def __init__(self, type_: str, known: Sequence[str]) -> None:
        super().__init__(
            f"unknown source type {type_!r}; known types: {', '.join(sorted(known)) or 'none'}"
        )
        self.type = type_
        self.known = sorted(known)


class AdapterConfigError(ValueError):
    """The adapter-specific settings of a Source are invalid."""

    def __init__(self, type_: str, error: ValidationError) -> None:
        self.errors = [
            (".".join(str(p) for p in e["loc"]), e["msg"]) for e in error.errors(include_url=False)
        ]
        detail = "; ".join(f"spec.{loc}: {msg}" for loc, msg in self.errors)
        super().__init__(f"invalid settings for a {type_!r} source: {detail}")


class Registry:
    """Adapter classes by ``type``, fed by the ``accord.adapters`` entry-point group."""

    def __init__(self) -> None:
        self._classes: dict[str, type[Adapter]] = {}
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in self._classes:
                continue
            try:
                cls = ep.load()
            except Exception as exc:  # a broken third-party package must not stop the gateway
                _log.error("adapter entry point %r failed to load: %s", ep.name, exc)
                continue
            self._classes[ep.name] = cls

    def register(self, cls: type[Adapter]) -> None:
        self._classes[cls.info.type] = cls

    def unregister(self, type_: str) -> None:
        self._classes.pop(type_, None)

    def types(self) -> list[str]:
        self._load()
        return sorted(self._classes)

    def get(self, type_: str) -> type[Adapter]:
        self._load()
        try:
            return self._classes[type_]
        except KeyError:
            raise UnknownAdapterType(type_, list(self._classes)) from None

    def validate_config(self, type_: str, settings: Mapping[str, Any]) -> BaseModel:
        cls = self.get(type_)
        try:
            return cls.config_model.model_validate(dict(settings))
        except ValidationError as exc:
            raise AdapterConfigError(type_, exc) from None

    def capabilities(self, type_: str, settings: Mapping[str, Any]) -> frozenset[Capability]:
        """What a source of this type with these settings can do, without building it."""
        cls = self.get(type_)
        config = self.validate_config(type_, settings)
        for_config = getattr(cls, "capabilities_for", None)
        caps = for_config(config) if callable(for_config) else cls.info.capabilities
        return frozenset(caps) & cls.info.capabilities

    def create(self, type_: str, ctx: AdapterContext, settings: Mapping[str, Any]) -> Adapter:
        cls = self.get(type_)
        config = self.validate_config(type_, settings)
        adapter: Adapter = cls(ctx, config)  # type: ignore[call-arg]
        return adapter


registry = Registry()
