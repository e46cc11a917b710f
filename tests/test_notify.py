"""Notification by change: verdicts over sequences of results, each judged against what the
output last said (the cluster state keeps it; see test_output_slack.py)."""

from __future__ import annotations

import pytest

from accre_monitor.outputs.notify import (
    NEW,
    QUIET,
    RECOVERY,
    REPEAT,
    SPEAKS,
    Said,
    is_problem,
    judge,
)

T0 = 1_800_000_000.0


def run(statuses, level="WARNING", renotify=3600.0, step=60.0, said=None):
    """The verdicts for results of `statuses`, one every `step` seconds, remembering what
    was said as an output does once its message went out."""
    verdicts = []
    for n, status in enumerate(statuses):
        date = T0 + n * step
        verdict = judge(said, status, date, level, renotify)
        verdicts.append(verdict)
        if verdict in SPEAKS:
            said = Said(status, date)
    return verdicts, said


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
    verdicts, said = run(["WARNING"] * 13, renotify=300.0, step=60.0)
    # said at 0 s, then again at 300 s and 600 s
    assert [n for n, v in enumerate(verdicts) if v != QUIET] == [0, 5, 10]
    assert verdicts[5] == REPEAT
    assert said.date == T0 + 600  # the last time it was said


def test_renotify_zero_never_repeats():
    verdicts, _ = run(["CRITICAL"] * 100, renotify=0.0, step=3600.0)
    assert verdicts.count(NEW) == 1 and set(verdicts[1:]) == {QUIET}


def test_a_problem_never_said_has_no_recovery():
    # the problem was silenced, or short of min_occurrences: nothing was said of it
    assert judge(None, "OK", T0, "WARNING", 3600.0) == QUIET
    assert judge(Said("OK", T0), "OK", T0 + 60, "WARNING", 3600.0) == QUIET


def test_what_counts_is_what_was_said_not_what_was_seen():
    # said OK; the CRITICALs after it were never said: the next one is a new problem
    assert judge(Said("OK", T0), "CRITICAL", T0 + 600, "WARNING", 3600.0) == NEW
    # said CRITICAL; a CRITICAL after an unsaid OK is the same problem still
    assert judge(Said("CRITICAL", T0), "CRITICAL", T0 + 600, "WARNING", 3600.0) == QUIET


@pytest.mark.parametrize("level", ["OK", "WARNING", "CRITICAL"])
def test_every_problem_is_said_once_and_every_end_of_one_too(level):
    statuses = ["OK", "WARNING", "CRITICAL", "UNKNOWN", "WARNING", "OK", "OK", "CRITICAL"]
    verdicts, _ = run(statuses, level=level, renotify=0.0)
    for n, (status, verdict) in enumerate(zip(statuses, verdicts, strict=True)):
        before = statuses[n - 1] if n else None
        started = is_problem(status, level) and status != before
        ended = before is not None and is_problem(before, level) and not is_problem(status, level)
        assert (verdict in SPEAKS) == (started or ended), (n, status, verdict)
