"""Terraform Cloud simulator: the documented subset of HCP Terraform's API v2 (JSON:API)
that Accord's Terraform adapter uses, over real HTTP on 127.0.0.1.

It exists so that the adapter can be tested against the API's documented shapes and
limits without an HCP Terraform account, and so that the demo has an organization to
show. It says it is a simulator wherever a user can see it: the ``X-Simulator`` header of
every answer, and the demo's source description and labels.

Reproduced (from the API documentation and the official go-tfe / python-tfe clients):

* ``GET /api/v2/organizations/:org``; ``GET /organizations/:org/workspaces`` (``search[name]``,
  ``include=project,current_run``); ``GET /organizations/:org/workspaces/:name``;
  ``GET /workspaces/:id``; workspace attributes name, description, auto-apply, locked,
  execution-mode, operations, tag-names, vcs-repo, terraform-version, resource-count,
  created-at, updated-at; relationships organization, project, current-run, locked-by.
* ``POST /workspaces/:id/actions/lock`` (``{"reason": ...}``), ``unlock``, ``force-unlock``
  → 200 with the workspace; 409 when already locked / not locked / locked by another user.
* Runs: ``POST /runs`` (workspace relationship; message, is-destroy, plan-only, auto-apply)
  → 201; ``GET /runs/:id``; ``GET /workspaces/:id/runs`` and ``GET /organizations/:org/runs``
  newest first, with ``filter[status_group]`` (``non_final``, ``final``, ``discardable``),
  ``filter[status]``, ``filter[workspace_names]`` and ``filter[operation]`` — plan-only runs
  are left out unless ``filter[operation]`` names ``plan_only``; the organization list omits
  ``total-count``/``total-pages``. ``include=plan,apply,created_by,workspace``. Run
  attributes status, status-timestamps (``<status>-at``), created-at, message, source,
  trigger-reason, is-destroy, plan-only, auto-apply, has-changes, actions
  (is-cancelable/-confirmable/-discardable/-force-cancelable), permissions; plans and
  applies with their own status vocabulary and timestamps.
* Run actions ``apply`` (only when confirmable), ``discard``, ``cancel`` (only while
  queued for or in a phase), ``force-cancel`` (only after a cancel) → 202 without a body,
  409 with a JSON:API error otherwise.
* The run status machine as the test drives it (:class:`SimState` ``create_run``,
  ``plan(has_changes=, policy=, cost_estimate=)``, ``confirm``, ``finish_apply``, ``fail``,
  ``discard``, ``cancel``): pending → plan_queued → planning → planned (awaiting
  confirmation) / planned_and_finished / policy_override / policy_soft_failed; confirmed
  → apply_queued → applying → applied / errored; auto-apply workspaces confirm themselves;
  a locked workspace's runs wait in pending. An applied run queues a run in every
  workspace with a run trigger from its workspace (source ``tfe-run-trigger``, message
  naming the causing run).
* ``GET /workspaces/:id/run-triggers?filter[run-trigger][type]=inbound|outbound`` (400
  without the filter); resources with workspace-name, sourceable-name, and the workspace
  and sourceable relationships.
* JSON:API: ``application/vnd.api+json`` both ways (a POST body of another type → 415),
  ``page[number]``/``page[size]`` (default 20, at most 100), ``links`` and
  ``meta.pagination`` (current-page, page-size, prev-page, next-page, total-pages,
  total-count), JSON:API error objects, 400 for an unknown ``include``.
* Auth: bearer tokens; none or a wrong one → 401; a token limited to some organizations
  or workspaces gets 404 for the others (the API never says 403 for a hidden resource).
* Limits: 30 requests per second per user on every endpoint and 30 per minute on the
  run-list endpoints (sliding windows, both configurable and switchable off), answered
  with 429, the documented error body, ``X-RateLimit-Limit`` and ``X-RateLimit-Reset``
  (seconds) and no ``Retry-After``; faults: the next N answers 429 or 503.
* Notification deliveries (generic destinations): payload_version 1 run payloads for
  run:created, run:planning, run:needs_attention, run:applying, run:completed and
  run:errored, signed with ``X-TFE-Notification-Signature`` = hex HMAC-SHA512 of the body
  keyed with the configuration's token; none for plan-only runs or local-execution
  workspaces. Deliveries wait in ``state.outbox``; ``send_deliveries()`` POSTs them.
* Headers ``X-TFE-Version`` and ``TFP-API-Version``; ``GET /api/v2/ping`` → 204.

Not reproduced: configuration versions and uploads, VCS, plan and apply logs and JSON
plans, state versions and outputs, variables, policy checks and their override endpoint,
cost estimates and run tasks as resources (their statuses only), agent pools, teams and
workspace permissions beyond visibility, ``PATCH``/``DELETE`` of any resource, run-trigger
creation over HTTP, notification configuration endpoints (configured through
:class:`SimState`), workspace and assessment (payload_version "2") notifications,
``force-execute``, run queue positions, the organization runs list's default one-year
time frame and the ``filter[timeframe]``/``search[...]`` run filters, the cool-off before
force-cancel, and the exact message Terraform Cloud writes on runs queued by run triggers
(this simulator names the causing run there; the adapter links the runs only where the
message names one).
"""

from .server import JSONAPI, TfcSimulator
from .state import (
    Delivery,
    Faults,
    NotificationConfig,
    Run,
    RunTrigger,
    SimError,
    SimState,
    TokenInfo,
    Workspace,
)

__all__ = [
    "JSONAPI",
    "Delivery",
    "Faults",
    "NotificationConfig",
    "Run",
    "RunTrigger",
    "SimError",
    "SimState",
    "TfcSimulator",
    "TokenInfo",
    "Workspace",
]
