"""Kubernetes API-server simulator: the batch/v1 CronJob and Job API over real HTTP on
127.0.0.1, close enough for the official ``kubernetes`` Python client to talk to it
unchanged.

No API server can run here, so Accord's Kubernetes adapter is tested against this. It is
labelled "Kubernetes API-server simulator" wherever a user can see it (the
``X-Simulator`` header, ``gitVersion`` ``v1.31.0-simulator`` of ``/version``), and
the demo's cluster source is labelled a simulator.

Reproduced (shapes follow ``k8s.io/api/batch/v1`` and the API conventions):

* ``GET /apis/batch/v1/cronjobs`` and ``/jobs`` (all namespaces) and
  ``/apis/batch/v1/namespaces/{ns}/cronjobs|jobs[/{name}]``; ``GET /api/v1/pods``,
  ``/api/v1/namespaces/{ns}/pods``, ``/api/v1/namespaces``; ``GET /version``.
* Lists: ``labelSelector`` (``=``, ``==``, ``!=``, ``in``, ``notin``, exists, ``!key``),
  ``fieldSelector`` on ``metadata.name``/``metadata.namespace`` (others: 400),
  ``limit``/``continue`` served from a consistent snapshot (``remainingItemCount``), an
  expired continue token → 410 ``Expired``; ``metadata.resourceVersion`` of the list.
* Watches (``watch=true``): newline-delimited JSON events ``ADDED``/``MODIFIED``/
  ``DELETED``, ``BOOKMARK`` (only ``kind``, ``apiVersion``, ``metadata.resourceVersion``)
  when ``allowWatchBookmarks=true``, ``timeoutSeconds`` ending the stream cleanly, from a
  ``resourceVersion`` (events after it are replayed) or from ``0``/unset (synthetic
  ``ADDED`` for every object first). A resourceVersion older than the compacted history
  → an in-stream ``ERROR`` event with a 410 ``Expired`` Status (or, with
  ``faults.gone_as_http``, an HTTP 410). ``state.break_watches()`` drops every open
  stream mid-way (no terminating chunk), ``state.compact()`` forgets history.
* ``POST`` of CronJobs and Jobs (``generateName``, 409 ``AlreadyExists``, 422 ``Invalid``
  for names too long, unparseable schedules and unknown time zones); ``PATCH`` with
  ``application/merge-patch+json``, ``application/strategic-merge-patch+json`` (treated as
  a merge patch: enough for scalar fields such as ``spec.suspend``) and
  ``application/json-patch+json``; anything else → 415. ``DELETE`` with ``DeleteOptions``
  (``propagationPolicy`` ``Background``/``Foreground``/``Orphan``, default ``Orphan`` for
  Jobs and ``Background`` for CronJobs as batch/v1 does; ``preconditions.uid`` → 409 on a
  mismatch); dependents (by ``ownerReferences``) are deleted or orphaned accordingly.
* Objects: ``uid``, ``resourceVersion`` (one counter, as etcd's revision), ``generation``
  bumped on spec changes, ``creationTimestamp``; CronJob and Job defaults; Job pod-template
  labels ``batch.kubernetes.io/job-name`` / ``controller-uid`` (and the legacy ones).
* The CronJob controller, at every minute the clock passes: the most recent missed
  schedule time (in ``spec.timeZone`` or the controller's zone) starts a Job named
  ``<cronjob>-<unix minutes>`` with the template's labels and annotations,
  ``batch.kubernetes.io/cronjob-scheduled-timestamp`` and a controller owner reference
  with ``blockOwnerDeletion``; nothing starts while suspended, past
  ``startingDeadlineSeconds``, or while a Job runs under ``Forbid``; ``Replace`` deletes
  the running Job; ``status.active``, ``lastScheduleTime``, ``lastSuccessfulTime``;
  finished Jobs beyond ``successfulJobsHistoryLimit``/``failedJobsHistoryLimit`` are
  garbage-collected (deleted with their pods). ``state.controller_down`` stops it.
* Jobs: created → started (``startTime``, ``active``, a pod ``Running``) → ``Complete``
  (``SuccessCriteriaMet`` + ``Complete``, ``completionTime``) or ``Failed``
  (``FailureTarget`` + ``Failed`` with ``BackoffLimitExceeded``/``DeadlineExceeded``...);
  the pod ends ``Succeeded``, or ``Failed``/``Pending`` with a container ``terminated``
  reason (``OOMKilled``, ``Error``) or ``waiting`` reason (``ImagePullBackOff``).
  ``spec.suspend`` on a Job deletes its pods and sets ``Suspended``. Tests drive this with
  ``state.start_job``/``finish_job``; with ``auto`` Jobs start after a second and end
  after their CronJob's :class:`Plan`.
* Auth: ``Authorization: Bearer <token>``; anything else → 401 ``Unauthorized``.
  ``faults.unavailable`` answers N requests with 503 and ``Retry-After``.

Not reproduced: RBAC (403), other API groups and resources, ``PUT``/update conflicts on
``resourceVersion``, server-side apply, protobuf/CBOR, ``resourceVersionMatch`` with old
versions (lists always come from the latest state), ``sendInitialEvents``, the
inconsistent-continue token of a 410, watches sending ``DELETED`` when an object stops
matching a label selector, strategic-merge list semantics, ``status`` subresources, events
(``kubectl get events``), parallel or indexed Jobs, pod retries (one pod per Job),
``ttlSecondsAfterFinished``, ``@every`` schedules, and the controller's give-up after more
than 100 missed start times.
"""

from .server import KubeSimulator
from .state import ApiError, ClusterState, Faults, Plan, fmt_time, parse_time

__all__ = ["ApiError", "ClusterState", "Faults", "KubeSimulator", "Plan", "fmt_time", "parse_time"]
