"""Reading runs from cron's log: the line formats, pairing start/status/end, and reading
incrementally through rotation."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from adapters.cron.syslog import FileCursor, Pairing, parse_line, read_new_lines

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

# Lines as Debian's cron 3.0pl1-162 (-L 15) and rsyslog wrote them on this project's host.
LOG_15 = "".join(
    f"{line}\n"
    for line in (
        "2026-11-25T08:47:26.330321+00:00 vm cron[3901]: (CRON) STARTUP (fork ok)",
        "2026-11-25T08:48:01.347235+00:00 vm CRON[4897]: (root) CMD ([4903] echo hello )",
        "2026-11-25T08:48:01.347893+00:00 "
        'vm CRON[4898]: (root) CMD ([4905] sh -c "kill -TERM \\$\\$")',
        "2026-11-25T08:48:01.347922+00:00 vm CRON[4900]: (root) CMD ([4902] true)",
        '2026-11-25T08:48:01.347985+00:00 vm CRON[4899]: (root) CMD ([4901] sh -c "exit 3")',
        "2026-11-25T08:48:01.349088+00:00 "
        "vm CRON[4897]: (CRON) info (No MTA installed, discarding output)",
        "2026-11-25T08:48:01.349119+00:00 vm CRON[4897]: (root) END ([4903] echo hello )",
        "2026-11-25T08:48:01.351260+00:00 "
        "vm CRON[4899]: (CRON) error (grandchild #4901 failed with exit status 3)",
        '2026-11-25T08:48:01.351287+00:00 vm CRON[4899]: (root) END ([4901] sh -c "exit 3")',
        "2026-11-25T08:48:01.351819+00:00 vm CRON[4900]: (root) END ([4902] true)",
        "2026-11-25T08:48:05.358635+00:00 "
        "vm CRON[4898]: (CRON) error (grandchild #4905 terminated by signal 9)",
        "2026-11-25T08:48:05.358766+00:00 "
        'vm CRON[4898]: (root) END ([4905] sh -c "kill -TERM \\$\\$")',
    )
)


def events(text: str):  # type: ignore[no-untyped-def]
    out = [parse_line(x, reference=NOW, tz=UTC) for x in text.splitlines()]
    return [e for e in out if e is not None]


def test_level_15_gives_start_status_and_end() -> None:
    runs = {r.command: r for r in Pairing().feed(events(LOG_15))}
    assert set(runs) == {"echo hello", 'sh -c "kill -TERM \\$\\$"', "true", 'sh -c "exit 3"'}
    ok = runs["true"]
    assert ok.user == "root" and ok.job_pid == 4902
    assert ok.started_at == datetime(2026, 11, 25, 8, 48, 1, 347922, tzinfo=UTC)
    assert ok.ended_at == datetime(2026, 11, 25, 8, 48, 1, 351819, tzinfo=UTC)
    assert (ok.exit, ok.signal) == (None, None)  # success is never logged as a status
    failed = runs['sh -c "exit 3"']
    assert (failed.exit, failed.signal, failed.ended) == (3, None, True)
    killed = runs['sh -c "kill -TERM \\$\\$"']
    assert (killed.exit, killed.signal) == (None, 9)
    assert killed.ended_at == datetime(2026, 11, 25, 8, 48, 5, 358766, tzinfo=UTC)
    assert len({r.key for r in runs.values()}) == 4


def test_without_level_8_the_logging_pids_pair_the_lines() -> None:
    # Without -L 8 the start is logged by the job's process, status and end by its parent.
    log = (
        "Nov 25 08:48:01 vm CRON[4903]: (alice) CMD (/home/alice/bin/sync)\n"
        "Nov 25 08:48:01 vm CRON[4910]: (alice) CMD (/home/alice/bin/sync)\n"
        "Nov 25 08:48:09 vm CRON[4909]: (CRON) error (grandchild #4910 failed with exit status 2)\n"
        "Nov 25 08:48:09 vm CRON[4909]: (alice) END (/home/alice/bin/sync)\n"
        "Nov 25 08:48:30 vm CRON[4902]: (alice) END (/home/alice/bin/sync)\n"
    )
    runs = Pairing().feed(events(log))
    ended = {r.job_pid: r for r in runs}
    assert ended[4910].exit == 2
    assert ended[4910].ended_at == datetime(2026, 11, 25, 8, 48, 9, tzinfo=UTC)
    assert ended[4903].exit is None and ended[4903].ended
    assert ended[4903].ended_at == datetime(2026, 11, 25, 8, 48, 30, tzinfo=UTC)


def test_a_run_open_across_reads_is_carried_in_the_pairing() -> None:
    lines = LOG_15.splitlines(True)
    first, second = "".join(lines[:5]), "".join(lines[5:])
    pairing = Pairing()
    started = pairing.feed(events(first))
    assert {r.command for r in started if not r.ended} == {
        "echo hello",
        'sh -c "kill -TERM \\$\\$"',
        "true",
        'sh -c "exit 3"',
    }
    carried = Pairing.from_json(json.loads(json.dumps(pairing.to_json())))
    ended = {r.command: r for r in carried.feed(events(second))}
    assert ended['sh -c "exit 3"'].exit == 3
    assert ended["true"].ended
    assert carried.open == {}


def test_bsd_timestamps_get_a_year_that_is_not_in_the_future() -> None:
    (jan,) = events("Jan  3 04:05:06 vm CRON[7]: (root) CMD (x)\n")
    assert jan.at == datetime(2026, 1, 3, 4, 5, 6, tzinfo=UTC)
    (dec,) = events("Dec 31 23:59:00 vm CRON[7]: (root) CMD (x)\n")
    assert dec.at == datetime(2025, 12, 31, 23, 59, tzinfo=UTC)


def test_other_lines_are_ignored() -> None:
    assert (
        events(
            "2026-11-25T08:47:29.085270+00:00 vm crontab[3949]: (root) REPLACE (root)\n"
            "2026-11-25T08:51:01.407385+00:00 vm cron[3901]: Error: bad minute; while reading x\n"
            "2026-11-25T08:51:01.407393+00:00 vm sshd[1]: (root) CMD (not cron)\n"
            "garbage\n"
        )
        == []
    )


def test_incremental_reading_with_partial_lines_rotation_and_truncation(tmp_path: Path) -> None:
    log = tmp_path / "cron.log"
    log.write_text("line 1\nline 2\nhalf a li")
    lines, cursor, more = read_new_lines(log, None)
    assert lines == ["line 1", "line 2"] and not more
    assert cursor is not None and cursor.offset == len("line 1\nline 2\n")
    with open(log, "a") as fh:
        fh.write("ne\nline 4\n")
    lines, cursor, _ = read_new_lines(log, cursor)
    assert lines == ["half a line", "line 4"]
    # logrotate: the file moves to cron.log.1 (more written to it first), a new one starts
    with open(log, "a") as fh:
        fh.write("line 5\n")
    os.rename(log, tmp_path / "cron.log.1")
    log.write_text("line 6\n")
    lines, cursor, _ = read_new_lines(log, cursor)
    assert lines == ["line 5", "line 6"]
    lines, cursor, _ = read_new_lines(log, cursor)
    assert lines == []
    # copytruncate: the same file, shorter than where we were
    log.write_text("")
    with open(log, "a") as fh:
        fh.write("7\n")
    lines, cursor, _ = read_new_lines(log, cursor)
    assert lines == ["7"]
    assert FileCursor.from_json(json.loads(json.dumps(cursor.to_json()))) == cursor  # type: ignore[union-attr]


def test_first_read_starts_with_the_rotated_file(tmp_path: Path) -> None:
    (tmp_path / "cron.log.1").write_text("old\n")
    (tmp_path / "cron.log").write_text("new\n")
    lines, _, _ = read_new_lines(tmp_path / "cron.log", None)
    assert lines == ["old", "new"]


def test_a_missing_log_reads_nothing(tmp_path: Path) -> None:
    assert read_new_lines(tmp_path / "absent.log", None) == ([], None, False)
