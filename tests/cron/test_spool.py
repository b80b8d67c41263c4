"""The spool format: JSON lines written without the json module, read back faithfully."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.cron.spool import RunWriter, default_dir, dumps, iso, new_run_id
from adapters.cron.spool_read import inspect_run, iter_runs, read_run, record_dict
from gateway.model import RunRecord, RunState


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -17,
        3.25,
        "plain",
        'quote " and backslash \\',
        "tab\tnewline\nreturn\rbell\x07nul\x00",
        "unicode: é ü 日本 🎉 \u2028",
        ["a", 1, None, [2.5, {"k": "v"}]],
        {"run": "h:1", "argv": ["sh", "-c", "echo 'x'"], "exit": None, "duration": 0.000123},
    ],
)
def test_dumps_is_json(value: object) -> None:
    text = dumps(value)
    assert json.loads(text) == value
    assert text == json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def test_undecodable_bytes_survive_as_escapes() -> None:
    name = os.fsdecode(b"report-\xff.csv")  # a file name that is not UTF-8
    text = dumps({"argv": [name]})
    text.encode()  # writable as UTF-8
    assert json.loads(text)["argv"][0] == name


def test_iso_and_run_ids() -> None:
    assert iso(1_700_000_000.5) == "2023-11-14T22:13:20.500000+00:00"
    assert datetime.fromisoformat(iso(1_700_000_000.000001)) == datetime(
        2023, 11, 14, 22, 13, 20, 1, tzinfo=UTC
    )
    ids = {new_run_id("web-1", 1_700_000_000_123_456_789, 42) for _ in range(50)}
    assert len(ids) == 50
    assert all(i.startswith("web-1:20231114T221320.123456Z:42:") for i in ids)


def test_default_dir() -> None:
    assert default_dir({"ACCORD_SPOOL_DIR": "/var/spool/accord"}) == "/var/spool/accord"
    assert default_dir({"XDG_DATA_HOME": "/x", "HOME": "/h"}) == "/x/accord/spool"
    assert default_dir({"HOME": "/home/al"}) == "/home/al/.local/share/accord/spool"


def test_a_half_written_event_is_not_read(tmp_path: Path) -> None:
    writer = RunWriter(str(tmp_path), 1_700_000_000_000_000_000, 7)
    writer.write({"event": "start", "run": "r1", "job": "j", "at": iso(1_700_000_000)})
    (path,) = iter_runs(tmp_path)
    with open(path, "a") as fh:
        fh.write('{"v":1,"event":"end","run":"r1","exit"')  # the writer is mid-line
    run = read_run(path)
    assert run is not None and run.end is None and run.events == 1
    writer.close()


def test_record_of_a_finished_and_of_a_lost_run(tmp_path: Path) -> None:
    writer = RunWriter(str(tmp_path), 1_700_000_000_000_000_000, 7)
    start = {"event": "start", "run": "r1", "job": "j", "user": "alice", "trigger": "schedule"}
    writer.write({**start, "at": iso(1_700_000_000), "pid": 999_999_999, "pid_start": 1})
    (path,) = iter_runs(tmp_path)
    run = read_run(path)
    assert run is not None and not run.wrapper_alive()  # no such process
    lost = RunRecord.model_validate(record_dict(run, "j", lost=True))
    assert (lost.state, lost.native_state, lost.actor) == (RunState.FAILED, "lost", "alice")
    writer.write(
        {
            "event": "end",
            "run": "r1",
            "at": iso(1_700_000_062.5),
            "exit": None,
            "signal": 9,
            "duration": 62.5,
            "tail": "last words",
            "error": None,
        }
    )
    writer.close()
    run = read_run(path)
    assert run is not None
    done = RunRecord.model_validate(record_dict(run, "j"))
    assert (done.state, done.native_state) == (RunState.CANCELLED, "signal 9")
    assert done.message == "killed by SIGKILL after 1 min 2 s; last output:\nlast words"
    assert done.ended_at is not None and done.started_at is not None
    assert (done.ended_at - done.started_at).total_seconds() == 62.5


def test_damage_is_told_from_a_write_in_progress(tmp_path: Path) -> None:
    """A live wrapper's unfinished line is a write in progress; a corrupted line, a file
    cut mid-record by a dead writer, or a start that never became whole is damage."""
    w = RunWriter(str(tmp_path), 1_700_000_000_000_000_000, os.getpid())
    w.write({"event": "start", "run": "h:1", "at": iso(1.7e9), "pid": os.getpid()})
    with open(w.path, "ab") as fh:
        fh.write(b'{"v":1,"event":"end"')  # this process (alive) is still writing
    run, damage = inspect_run(Path(w.path))
    assert run is not None and damage is None
    dead = Path(w.path).read_bytes().replace(f'"pid":{os.getpid()}'.encode(), b'"pid":999999')
    Path(w.path).write_bytes(dead)
    run, damage = inspect_run(Path(w.path))
    assert run is not None and damage and "truncated mid-record after line 1" in damage
    Path(w.path).write_bytes(b"\x00garbage\n" + dead)
    run, damage = inspect_run(Path(w.path))
    assert damage and "line 1 is not a spool event" in damage
    Path(w.path).write_bytes(b'{"v":1,"event":"st')
    assert inspect_run(Path(w.path)) == (None, None), "a start being written"
    assert inspect_run(Path(w.path), now=os.stat(w.path).st_mtime + 120)[1] == (
        "truncated before its first record was complete (18 bytes)"
    )
    w.close()
