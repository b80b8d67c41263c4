"""What the replayed Airflow holds: recorded API answers, and the changes requests make.

The recording (``adapters/airflow/demo_data``) holds the answers of a real Airflow 3 for
DAGs, DAG runs, task instances, assets and asset events. :class:`ReplayState` loads them
(optionally moved in time so that the newest run finished a moment ago), keeps for every
run the ``updated_at`` that Airflow filters on but does not return, and changes like
Airflow does when asked to trigger, pause, mark failed or clear. Tests change it directly
too (:meth:`ReplayState.add_run`, :meth:`ReplayState.remove_dag`).
"""

from __future__ import annotations

import copy
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["DEMO_DATA", "ReplayState", "RunPlan"]

Json = dict[str, Any]

DEMO_DATA = Path(__file__).resolve().parents[2] / "airflow" / "demo_data"

_ISO_IN_ID = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?\+00:00")
_RUN_ID_KEYS = {"dag_run_id", "run_id", "source_run_id"}
_TIME_KEYS = {
    "timestamp",
    "run_after",
    "queued_when",
    "scheduled_when",
    "last_parsed_time",
    "last_expired",
    "last_scheduling_decision",
}
_UNFINISHED_TI = {None, "scheduled", "queued", "up_for_retry", "up_for_reschedule", "deferred"}


def _is_time_key(key: str) -> bool:
    return (
        key in _TIME_KEYS
        or key.endswith(("_date", "_at"))
        or key.startswith(("next_dagrun", "data_interval"))
    )


def parse_time(value: str) -> datetime:
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def fmt_time(when: datetime) -> str:
    """Airflow's way of writing a time in its answers."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _shift_value(value: Any, key: str, delta: timedelta) -> Any:
    if isinstance(value, dict):
        return {k: _shift_value(v, k, delta) for k, v in value.items()}
    if isinstance(value, list):
        return [_shift_value(v, key, delta) for v in value]
    if not isinstance(value, str) or not delta:
        return value
    if key in _RUN_ID_KEYS:
        return _ISO_IN_ID.sub(
            lambda m: _shifted_iso(m.group(0), delta, "+00:00"),
            value,
        )
    if _is_time_key(key):
        try:
            when = parse_time(value)
        except ValueError:
            return value
        return fmt_time(when + delta)
    return value


def _shifted_iso(text: str, delta: timedelta, suffix: str) -> str:
    when = parse_time(text) + delta
    fmt = "%Y-%m-%dT%H:%M:%S.%f" if "." in text else "%Y-%m-%dT%H:%M:%S"
    return when.strftime(fmt) + suffix


@dataclass
class RunPlan:
    """How a run started through the replay server proceeds (when runs progress by themselves)."""

    t0: datetime
    outcome: str = "success"
    step: float = 2.0
    bump_tries: bool = False


@dataclass
class _Run:
    seq: int
    body: Json
    updated_at: datetime
    plan: RunPlan | None = None


@dataclass
class ReplayState:
    """The replayed Airflow's data. Every method takes the lock; answers are deep copies."""

    dags: dict[str, Json] = field(default_factory=dict)
    runs: dict[tuple[str, str], _Run] = field(default_factory=dict)
    tis: dict[tuple[str, str], list[Json]] = field(default_factory=dict)
    assets: list[Json] = field(default_factory=list)
    events: list[Json] = field(default_factory=list)
    tasks: dict[str, list[Json]] = field(default_factory=dict)
    version: str = "3"
    auto_progress: bool = False
    step_seconds: float = 2.0
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    lock: threading.RLock = field(default_factory=threading.RLock)
    _seq: int = 0

    # -- loading --------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        directory: Path = DEMO_DATA,
        *,
        shift_to_now: bool = False,
        realign: bool = False,
        auto_progress: bool = False,
        clock: Callable[[], datetime] | None = None,
    ) -> ReplayState:
        state = cls(auto_progress=auto_progress)
        if clock is not None:
            state.clock = clock

        def read(name: str) -> Any:
            return json.loads((directory / name).read_text())

        raw: Json = {
            "dags": read("dags.json")["dags"],
            "dag_runs": read("dag_runs.json")["dag_runs"],
            "task_instances": read("task_instances.json")["task_instances"],
            "assets": read("assets.json")["assets"],
            "asset_events": read("asset_events.json")["asset_events"],
            "tasks": read("tasks.json"),
        }
        state.version = str(read("version.json").get("version", "3"))
        if realign:
            _realign(raw)
        if shift_to_now:
            latest = max(
                (
                    parse_time(r[k])
                    for r in raw["dag_runs"]
                    for k in ("end_date", "start_date", "queued_at", "run_after")
                    if r.get(k)
                ),
                default=None,
            )
            if latest is not None:
                # Whole hours keep hourly run ids on the hour.
                hours = (state.clock() - latest) // timedelta(hours=1)
                raw = _shift_value(raw, "", timedelta(hours=hours))
        for dag in raw["dags"]:
            state.dags[dag["dag_id"]] = dag
        for run in raw["dag_runs"]:
            state._add(run, _last_change(run))
        for ti in raw["task_instances"]:
            state.tis.setdefault((ti["dag_id"], ti["dag_run_id"]), []).append(ti)
        state.assets = raw["assets"]
        state.events = raw["asset_events"]
        state.tasks = raw["tasks"]
        return state

    def _add(self, body: Json, updated_at: datetime, plan: RunPlan | None = None) -> _Run:
        self._seq += 1
        run = _Run(self._seq, body, updated_at, plan)
        self.runs[(body["dag_id"], body["dag_run_id"])] = run
        return run

    # -- reading --------------------------------------------------------------------------
    def tick(self) -> None:
        """Move runs that proceed by themselves (runs started here, when auto_progress)."""
        with self.lock:
            now = self.clock()
            for key, run in self.runs.items():
                if run.plan is not None:
                    self._advance(key, run, now)

    def dag_list(self) -> list[Json]:
        with self.lock:
            return [copy.deepcopy(self.dags[k]) for k in sorted(self.dags)]

    def dag(self, dag_id: str) -> Json | None:
        with self.lock:
            dag = self.dags.get(dag_id)
            return copy.deepcopy(dag) if dag is not None else None

    def run_list(
        self,
        dag_id: str,
        *,
        updated_gte: datetime | None = None,
        updated_lte: datetime | None = None,
        states: Iterable[str] = (),
    ) -> list[tuple[int, Json]]:
        wanted = set(states)
        with self.lock:
            out = [
                (run.seq, copy.deepcopy(run.body))
                for (d, _), run in self.runs.items()
                if (dag_id == "~" or d == dag_id)
                and (updated_gte is None or run.updated_at >= updated_gte)
                and (updated_lte is None or run.updated_at <= updated_lte)
                and (not wanted or run.body.get("state") in wanted)
            ]
        return sorted(out, key=lambda p: p[0])

    def run(self, dag_id: str, run_id: str) -> Json | None:
        with self.lock:
            run = self.runs.get((dag_id, run_id))
            return copy.deepcopy(run.body) if run is not None else None

    def task_instances(self, dag_ids: Iterable[str], run_ids: Iterable[str]) -> list[Json]:
        dags, runs = set(dag_ids), set(run_ids)
        with self.lock:
            out: list[Json] = []
            for key in sorted(self.runs, key=lambda k: self.runs[k].seq):
                if (dags and key[0] not in dags) or (runs and key[1] not in runs):
                    continue
                out.extend(copy.deepcopy(self.tis.get(key, [])))
            return out

    def asset_list(self) -> list[Json]:
        with self.lock:
            return copy.deepcopy(self.assets)

    def event_list(self) -> list[Json]:
        with self.lock:
            return copy.deepcopy(self.events)

    def upstream_events(self, dag_id: str, run_id: str) -> list[Json]:
        with self.lock:
            return [
                copy.deepcopy(ev)
                for ev in self.events
                if any(
                    c.get("dag_id") == dag_id and c.get("run_id") == run_id
                    for c in ev.get("created_dagruns", [])
                )
            ]

    # -- changes --------------------------------------------------------------------------
    def set_paused(self, dag_id: str, paused: bool) -> Json | None:
        with self.lock:
            dag = self.dags.get(dag_id)
            if dag is None:
                return None
            dag["is_paused"] = paused
            return copy.deepcopy(dag)

    def remove_dag(self, dag_id: str) -> bool:
        """Delete a DAG with its runs, as ``DELETE /dags/{id}`` does."""
        with self.lock:
            if self.dags.pop(dag_id, None) is None:
                return False
            for key in [k for k in self.runs if k[0] == dag_id]:
                del self.runs[key]
                self.tis.pop(key, None)
            for asset in self.assets:
                for ref in ("producing_tasks", "consuming_tasks", "scheduled_dags"):
                    asset[ref] = [t for t in asset.get(ref, []) if t.get("dag_id") != dag_id]
            return True

    def add_run(
        self,
        dag_id: str,
        state: str,
        *,
        run_type: str = "manual",
        triggered_by: str | None = "rest_api",
        user: str | None = "admin",
        conf: Json | None = None,
        note: str | None = None,
        plan: RunPlan | None = None,
    ) -> Json:
        """Create a run of ``dag_id`` in ``state`` (queued, running, success or failed)."""
        with self.lock:
            dag = self.dags[dag_id]
            now = self.clock()
            run_id = f"{run_type}__{now.isoformat(timespec='microseconds')}"
            n = 1
            while (dag_id, run_id) in self.runs:
                n += 1
                run_id = f"{run_type}__{now.isoformat(timespec='microseconds')}_{n}"
            template = self._latest_run(dag_id)
            body: Json = copy.deepcopy(template) if template else {}
            body.update(
                {
                    "dag_run_id": run_id,
                    "dag_id": dag_id,
                    "dag_display_name": dag.get("dag_display_name", dag_id),
                    "logical_date": None,
                    "queued_at": fmt_time(now),
                    "start_date": None,
                    "end_date": None,
                    "duration": None,
                    "data_interval_start": None,
                    "data_interval_end": None,
                    "run_after": fmt_time(now),
                    "last_scheduling_decision": None,
                    "run_type": run_type,
                    "state": "queued",
                    "triggered_by": triggered_by,
                    "triggering_user_name": user,
                    "conf": conf or {},
                    "note": note,
                }
            )
            body.setdefault("dag_versions", [])
            body.setdefault("bundle_version", None)
            key = (dag_id, run_id)
            self.tis[key] = [self._new_ti(dag_id, run_id, t, now) for t in self._template(dag_id)]
            run = self._add(body, now, plan)
            if state != "queued":
                self._finish(key, run, state, now, fail_first=True)
            return copy.deepcopy(run.body)

    def trigger(self, dag_id: str, conf: Json, note: str | None, user: str | None) -> Json:
        plan = RunPlan(self.clock(), step=self.step_seconds) if self.auto_progress else None
        return self.add_run(dag_id, "queued", conf=conf, note=note, user=user, plan=plan)

    def patch_run(
        self, dag_id: str, run_id: str, state: str | None, note: str | None, set_note: bool
    ) -> Json | None:
        with self.lock:
            key = (dag_id, run_id)
            run = self.runs.get(key)
            if run is None:
                return None
            now = self.clock()
            if set_note:
                run.body["note"] = note
            if state is not None:
                run.plan = None
                if state == "queued":
                    run.body["state"] = "queued"
                else:
                    self._finish(key, run, state, now)
            run.updated_at = now
            return copy.deepcopy(run.body)

    def clear_run(self, dag_id: str, run_id: str) -> Json | None:
        with self.lock:
            key = (dag_id, run_id)
            run = self.runs.get(key)
            if run is None:
                return None
            now = self.clock()
            run.body.update(
                {
                    "state": "queued",
                    "queued_at": fmt_time(now),
                    "start_date": None,
                    "end_date": None,
                    "duration": None,
                }
            )
            for ti in self.tis.get(key, []):
                ti.update({"state": None, "start_date": None, "end_date": None, "duration": None})
            run.updated_at = now
            if self.auto_progress:
                run.plan = RunPlan(now, step=self.step_seconds, bump_tries=True)
            return copy.deepcopy(run.body)

    # -- helpers --------------------------------------------------------------------------
    def _latest_run(self, dag_id: str) -> Json | None:
        runs = [r for (d, _), r in self.runs.items() if d == dag_id]
        return max(runs, key=lambda r: r.seq).body if runs else None

    def _template(self, dag_id: str) -> list[Json]:
        latest = self._latest_run(dag_id)
        if latest is not None:
            tis = self.tis.get((dag_id, latest["dag_run_id"]))
            if tis:
                return tis
        tasks = self.tasks.get(dag_id) or [{"task_id": "task", "operator_name": "EmptyOperator"}]
        return [
            {"task_id": t["task_id"], "map_index": -1, "operator": t.get("operator_name")}
            for t in tasks
        ]

    def _new_ti(self, dag_id: str, run_id: str, template: Json, now: datetime) -> Json:
        ti = copy.deepcopy(template)
        ti.update(
            {
                "id": str(uuid.uuid4()),
                "dag_id": dag_id,
                "dag_run_id": run_id,
                "task_display_name": ti.get("task_display_name", template["task_id"]),
                "map_index": template.get("map_index", -1),
                "logical_date": None,
                "run_after": fmt_time(now),
                "start_date": None,
                "end_date": None,
                "duration": None,
                "state": None,
                "try_number": 0,
                "queued_when": None,
                "scheduled_when": None,
                "note": None,
            }
        )
        return ti

    def _finish(
        self,
        key: tuple[str, str],
        run: _Run,
        state: str,
        now: datetime,
        *,
        fail_first: bool = False,
    ) -> None:
        """End a run in ``state``, its tasks the way Airflow ends them.

        Marking a run failed fails its running tasks and skips the ones not started;
        ``fail_first`` instead makes it fail at its first task (a run that failed by itself).
        """
        body = run.body
        body["state"] = state
        if state in ("success", "failed"):
            body["start_date"] = body.get("start_date") or fmt_time(now)
            body["end_date"] = fmt_time(now)
            body["duration"] = (now - parse_time(body["start_date"])).total_seconds()
        elif state == "running":
            body["start_date"] = body.get("start_date") or fmt_time(now)
        tis = self.tis.get(key, [])
        for i, ti in enumerate(tis):
            current = ti.get("state")
            if state == "success" and (current in _UNFINISHED_TI or current == "running"):
                self._ti_done(ti, "success", now)
            elif state == "failed" and fail_first:
                if i == 0:
                    self._ti_done(ti, "failed", now)
                else:
                    ti.update({"state": "upstream_failed", "try_number": 0})
            elif state == "failed" and current == "running":
                self._ti_done(ti, "failed", now)
            elif state == "failed" and current in _UNFINISHED_TI:
                ti["state"] = "skipped"
        if state == "running" and tis and all(t.get("state") is None for t in tis):
            tis[0].update({"state": "running", "start_date": fmt_time(now), "try_number": 1})
        run.updated_at = now

    @staticmethod
    def _ti_done(ti: Json, state: str, now: datetime) -> None:
        ti["state"] = state
        ti["try_number"] = max(1, int(ti.get("try_number") or 0))
        ti["start_date"] = ti.get("start_date") or fmt_time(now)
        ti["end_date"] = fmt_time(now)
        ti["duration"] = (now - parse_time(ti["start_date"])).total_seconds()

    def _advance(self, key: tuple[str, str], run: _Run, now: datetime) -> None:
        plan = run.plan
        assert plan is not None
        tis = self.tis.get(key, [])
        started = plan.t0 + timedelta(seconds=1)
        changed = False
        if now >= started and run.body.get("state") == "queued":
            run.body["state"] = "running"
            run.body["start_date"] = fmt_time(started)
            changed = True
        for i, ti in enumerate(tis):
            begin = started + timedelta(seconds=i * plan.step)
            end = begin + timedelta(seconds=plan.step)
            want = None if now < begin else ("running" if now < end else plan.outcome)
            if want is not None and ti.get("state") != want:
                if ti.get("state") is None:
                    base = int(ti.get("try_number") or 0)
                    ti["try_number"] = base + 1 if plan.bump_tries or base == 0 else base
                    ti["start_date"] = fmt_time(begin)
                    ti["queued_when"] = fmt_time(begin)
                ti["state"] = want
                if want != "running":
                    ti["end_date"] = fmt_time(end)
                    ti["duration"] = plan.step
                changed = True
        finish = started + timedelta(seconds=len(tis) * plan.step)
        if now >= finish and run.body.get("state") == "running":
            run.body["state"] = plan.outcome
            run.body["end_date"] = fmt_time(finish)
            run.body["duration"] = (finish - started).total_seconds()
            run.plan = None
            changed = True
        if changed:
            run.updated_at = now


_EXEC_KEYS = (
    "queued_at",
    "start_date",
    "end_date",
    "last_scheduling_decision",
    "queued_when",
    "scheduled_when",
)


def _move(doc: Json, keys: Iterable[str], delta: timedelta) -> None:
    for k in keys:
        if isinstance(doc.get(k), str):
            doc[k] = fmt_time(parse_time(doc[k]) + delta)


def _realign(raw: Json) -> None:
    """Move each run's execution to where it would have happened in production.

    A recording catches up hours of scheduled intervals in a minute; realigned, every
    scheduled run starts right after its slot (``run_after``), asset events move with the
    runs that emitted them, and asset-triggered runs follow their latest event.
    """
    deltas: dict[tuple[str, str], timedelta] = {}
    for run in raw["dag_runs"]:
        if run.get("run_type") == "scheduled" and run.get("run_after") and run.get("queued_at"):
            delta = (
                parse_time(run["run_after"]) + timedelta(seconds=3) - parse_time(run["queued_at"])
            )
            deltas[(run["dag_id"], run["dag_run_id"])] = delta
    for ev in raw["asset_events"]:
        moved = deltas.get((ev.get("source_dag_id") or "", ev.get("source_run_id") or ""))
        if moved:
            _move(ev, ["timestamp"], moved)
    for run in raw["dag_runs"]:
        key = (run["dag_id"], run["dag_run_id"])
        if run.get("run_type") != "asset_triggered" or not run.get("queued_at"):
            continue
        sources = [
            parse_time(ev["timestamp"])
            for ev in raw["asset_events"]
            if any(
                c.get("dag_id") == key[0] and c.get("run_id") == key[1]
                for c in ev.get("created_dagruns", [])
            )
        ]
        if sources:
            deltas[key] = max(sources) + timedelta(seconds=2) - parse_time(run["queued_at"])
            _move(run, ["run_after"], deltas[key])
    for doc in [*raw["dag_runs"], *raw["task_instances"]]:
        moved = deltas.get((doc["dag_id"], doc["dag_run_id"]))
        if moved:
            _move(doc, _EXEC_KEYS, moved)
    for ev in raw["asset_events"]:
        for created in ev.get("created_dagruns", []):
            moved = deltas.get((created.get("dag_id"), created.get("run_id")))
            if moved:
                _move(created, ("start_date", "end_date"), moved)


def _last_change(run: Json) -> datetime:
    times = [
        parse_time(run[k])
        for k in ("end_date", "start_date", "queued_at", "run_after", "last_scheduling_decision")
        if run.get(k)
    ]
    return max(times) if times else datetime(1970, 1, 1, tzinfo=UTC)
