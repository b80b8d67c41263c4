"""Jenkins simulator: a small Jenkins controller's JSON API over real HTTP on 127.0.0.1.

It exists so that Accord's Jenkins adapter (and python-jenkins, which it also serves) can
be tested against the documented API without a JVM, and so that the demo has a Jenkins to
show. It is labelled "Jenkins simulator" wherever a user can see it: the
``X-Jenkins-Simulator`` header, the system message (``description`` of ``/api/json``),
the ``Server`` header and every HTML page.

Reproduced (shapes and status codes follow Jenkins core, Stapler and the Pipeline plugins):

* ``GET <object>/api/json`` for the root, folders, multibranch projects, jobs (freestyle
  ``hudson.model.FreeStyleProject``, Pipeline ``...workflow.job.WorkflowJob``), builds
  (by number and ``lastBuild``-style aliases), the queue and queue items; ``_class`` on
  every object; ``tree=`` with Stapler's ``NamedPathPruner`` semantics (nesting, ``*``,
  ``{M,N}`` ranges, objects without sub-selection reduced to ``_class``); ``depth=``
  (approximated: full objects to the given depth, then name/url-style summaries);
  ``pretty=true``; ``builds`` capped at 100, ``allBuilds`` only when named in ``tree``.
* Job fields: name, fullName, displayName, description, url, color (``_anime`` while
  building, ``disabled``), buildable, inQueue, queueItem, nextBuildNumber, builds and the
  ``last*Build`` refs, property (string parameter definitions); freestyle also disabled,
  upstreamProjects/downstreamProjects (from *Build other projects*), scm.
* Build fields: number, url, id, queueId, result (``null`` while building), building,
  inProgress, timestamp, duration (0 while running), estimatedDuration, actions with a
  ``CauseAction`` (user, timer, SCM, remote, upstream causes) and a ``ParametersAction``.
* Queue: ``/queue/api/json``; ``/queue/item/<id>/api/json`` as Waiting/Blocked/
  Buildable/LeftItem with ``why``, ``executable`` once started and ``cancelled``; left
  items expire 5 minutes after leaving (then 404); ``POST /queue/cancelItem?id=`` → 204,
  404 unknown, 422 no longer cancellable.
* ``GET <job>/config.xml`` with ``TimerTrigger``/``SCMTrigger`` specs (freestyle under
  ``<triggers>``, Pipeline under ``PipelineTriggersJobProperty``), XML 1.1 prolog.
* ``POST <job>/build`` and ``buildWithParameters`` → 201 + ``Location`` of the queue item
  (303 for an identical queued item, 400 not parameterized, 409 disabled); ``<build>/stop``
  (``term``, ``kill``) → 302; ``<job>/enable``, ``disable``, ``doDelete`` → 302.
* ``<build>/wfapi/describe`` (RunExt with stages and the StatusExt vocabulary),
  ``<job>/wfapi/describe``, ``<job>/wfapi/runs`` (10 newest), ``<build>/consoleText``.
* Auth: HTTP Basic with an API token (no crumb needed) or a password (a crumb is needed
  for POST, bound to the session cookie the crumb issuer sets); anonymous requests → 403
  "Authentication required" (a Jenkins whose anonymous users lack Overall/Read), wrong
  credentials → 401. ``GET /crumbIssuer/api/json``; POST without a valid crumb → 403 "No
  valid crumb was included in the request". Headers ``X-Jenkins``, ``X-Jenkins-Session``,
  ``X-Content-Type-Options``, ``X-Frame-Options``.
* Behaviour: builds numbered per job; a SUCCESS queues the *Build other projects*
  downstream jobs with an upstream cause; non-concurrent jobs block their queue items while
  a build runs. Tests drive it through :class:`SimState` (``enqueue``, ``start``, ``finish``,
  ``abort``, ``rename``, ``delete``, ``reset_builds``, ``vanish``, ``advance``); the demo
  lets it run on its own (``auto=True``: quiet period, durations, failure rates, timers
  firing on Jenkins' hashed schedule).
* Faults (``state.faults``): every credential rejected (401), crumbs demanded even from
  API tokens, N answers 503 with ``Retry-After``, N answers of HTML instead of JSON,
  queue items that vanish instead of becoming builds.

Not reproduced: HTML pages beyond error stubs, ``/api/xml`` and ``/api/python``,
``xpath``, ``jsonp``, views, nodes/computers and executors, plugins, credentials, script
console, ``createItem``/``config.xml`` POST, SCM and real Pipeline execution (stages are
derived from the build's state), multibranch branch indexing, organization folders,
``wfapi`` pending input actions and logs, exact ``depth`` visibility rules, ``estimated``
ETAs in ``why``, and branch jobs' refusal to be disabled.
"""

from .server import CRUMB_FIELD, JenkinsSimulator
from .state import (
    Build,
    Faults,
    Folder,
    Job,
    QueueItem,
    SimState,
    cause_remote,
    cause_scm,
    cause_timer,
    cause_upstream,
    cause_user,
)
from .tree import Tree, TreeSyntaxError, parse_tree, render_depth, render_tree

__all__ = [
    "CRUMB_FIELD",
    "Build",
    "Faults",
    "Folder",
    "JenkinsSimulator",
    "Job",
    "QueueItem",
    "SimState",
    "Tree",
    "TreeSyntaxError",
    "cause_remote",
    "cause_scm",
    "cause_timer",
    "cause_upstream",
    "cause_user",
    "parse_tree",
    "render_depth",
    "render_tree",
]
