"""Notification by change: verdicts over sequences of results, and the state that keeps them."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from accre_monitor.outputs.notify import (
    NEW,
    QUIET,
    RECOVERY,
    REPEAT,
    SPEAKS,
    STALE,
    NotifyState,
    Seen,
    judge,
)

T0 = 1_800_000_000.0


def run(statuses, level="WARNING", renotify=3600.0, step=60.0, seen=None):
    """The verdicts for results of `statuses`, one every `step` seconds."""
    verdicts = []
    for n, status in enumerate(statuses):
        verdict, after = judge(seen, status, T0 + n * step, level, renotify)
        verdicts.append(verdict)
        if verdict != STALE:
            seen = after
    return verdicts, seen


def test_a_new_problem_a_change_and_a_recovery_speak_and_nothing_else_does():
    verdicts, _ = run(["OK", "WARNING", "WARNING", "CRITICAL", "OK"])
    assert verdicts == [QUIET, NEW, QUIET, NEW, RECOVERY]
    assert sum(v in SPEAKS for v in verdicts) == 3


def test_critical_to_unknown_is_a_change_though_they_rank_alike():
    assert run(["CRITICAL", "UNKNOWN"], level="CRITICAL")[0] == [NEW, NEW]


def test_below_the_level_nothing_speaks_but_leaving_a_problem_is_a_recovery():
    verdicts, _ = run(["OK", "WARNING", "CRITICAL", "WARNING", "OK"], level="CRITICAL")
    assert verdicts == [QUIET, QUIET, NEW, RECOVERY, QUIET]


def test_the_first_ok_of_a_check_is_no_recovery():
    assert run(["OK"], level="OK")[0] == [QUIET]


def test_an_unchanged_problem_repeats_every_renotify_seconds_of_its_own_dates():
    verdicts, seen = run(["WARNING"] * 13, renotify=300.0, step=60.0)
    # said at 0 s, then again at 300 s and 600 s
    assert [n for n, v in enumerate(verdicts) if v != QUIET] == [0, 5, 10]
    assert verdicts[5] == REPEAT
    assert seen.since == T0  # the problem began with the first result


def test_renotify_zero_never_repeats():
    verdicts, _ = run(["CRITICAL"] * 100, renotify=0.0, step=3600.0)
    assert verdicts.count(NEW) == 1 and set(verdicts[1:]) == {QUIET}


def test_an_older_result_neither_speaks_nor_rewinds_the_state():
    _, seen = run(["OK", "CRITICAL"])  # CRITICAL at T0 + 60
    verdict, after = judge(seen, "WARNING", T0 + 30, "WARNING", 3600.0)
    assert verdict == STALE
    assert after == seen
    assert judge(seen, "CRITICAL", T0 + 120, "WARNING", 3600.0)[0] == QUIET


def test_state_remembers_per_output_node_and_check(tmp_path):
    state = NotifyState(str(tmp_path / "state.db"))
    seen = Seen("WARNING", T0, T0, T0)
    state.save("slack-warning", {("cn1", "disk"): seen}, ["r1"])
    state.close()
    again = NotifyState(str(tmp_path / "state.db"))
    assert again.load("slack-warning", [("cn1", "disk"), ("cn2", "disk")]) == {
        ("cn1", "disk"): seen
    }
    assert again.load("slack-critical", [("cn1", "disk")]) == {}
    assert again.sent("slack-warning", ["r1", "r2"]) == {"r1"}
    assert again.sent("slack-all", ["r1"]) == set()


def test_an_older_state_never_overwrites_a_newer_one(tmp_path):
    state = NotifyState(str(tmp_path / "state.db"))
    newer = Seen("CRITICAL", T0 + 60, T0 + 60, T0 + 60)
    state.save("s", {("cn1", "disk"): newer}, [])
    state.save("s", {("cn1", "disk"): Seen("OK", T0, T0, None)}, [])
    assert state.load("s", [("cn1", "disk")])[("cn1", "disk")] == newer


def test_the_state_file_is_private_and_in_wal_mode(tmp_path):
    path = tmp_path / "new" / "slack-state.db"
    state = NotifyState(str(path))
    state.save("s", {}, ["r1"])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert state.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_without_a_directory_the_state_lives_in_memory(tmp_path):
    state = NotifyState(None)
    state.save("s", {("cn1", "disk"): Seen("OK", T0, T0, None)}, ["r1"])
    assert state.sent("s", ["r1"]) == {"r1"}
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_state_file_is_set_aside_and_a_fresh_one_used(tmp_path, capsys):
    path = tmp_path / "slack-state.db"
    path.write_bytes(b"this is not a database at all" * 200)
    state = NotifyState(str(path))
    state.save("s", {("cn1", "disk"): Seen("OK", T0, T0, None)}, [])
    assert state.load("s", [("cn1", "disk")])
    assert [p.name for p in tmp_path.glob("slack-state.db.corrupt-*")]
    assert "notification state is corrupt" in capsys.readouterr().err


WRITER = """
import sys
from accre_monitor.outputs.notify import NotifyState, Seen
state = NotifyState(sys.argv[1])
for n in range(40):
    t = 1_800_000_000.0 + n
    state.save("s", {(sys.argv[2], "disk"): Seen("OK", t, t, None)}, [f"{sys.argv[2]}-{n}"])
"""


def test_many_processes_writing_at_once_lose_nothing(tmp_path):
    path = str(tmp_path / "slack-state.db")
    procs = [
        subprocess.Popen(
            [sys.executable, "-P", "-c", WRITER, path, f"cn{n}"], stderr=subprocess.PIPE, text=True
        )
        for n in range(12)
    ]
    errors = [proc.communicate(timeout=120)[1] for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 12, errors
    state = NotifyState(path)
    ids = [f"cn{n}-{i}" for n in range(12) for i in range(40)]
    assert state.sent("s", ids) == set(ids)
    latest = state.load("s", [(f"cn{n}", "disk") for n in range(12)])
    assert {seen.taken for seen in latest.values()} == {T0 + 39}


@pytest.mark.parametrize("level", ["OK", "WARNING", "CRITICAL"])
def test_every_problem_is_said_once_and_every_end_of_one_too(level):
    statuses = ["OK", "WARNING", "CRITICAL", "UNKNOWN", "WARNING", "OK", "OK", "CRITICAL"]
    verdicts, _ = run(statuses, level=level, renotify=0.0)
    from accre_monitor.outputs.notify import is_problem

    for n, (status, verdict) in enumerate(zip(statuses, verdicts, strict=True)):
        before = statuses[n - 1] if n else None
        started = is_problem(status, level) and status != before
        ended = before is not None and is_problem(before, level) and not is_problem(status, level)
        assert (verdict in SPEAKS) == (started or ended), (n, status, verdict)
