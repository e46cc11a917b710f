import os
import time

import pytest

from accre_monitor import Range
from accre_monitor.runner import run_guarded, run_in_process


def raises(opts):
    raise RuntimeError("disk on fire")


def sleeps(opts):
    time.sleep(opts["seconds"])
    return "OK", None


def prints(opts):
    print("noise from the check")
    return "OK", 1


def exits(opts):
    raise SystemExit(4)


def dies(opts):
    os._exit(9)


def returns_garbage(opts):
    return "all good"


def returns_tuple_data(opts):
    return "ok", (1, 2.5, {"k": (3,)}), "short", "long"


def returns_perf_hints(opts):
    return "OK", {"load": 0.5}, "short", None, {"load": {"warn": Range.alert_above(3)}}


@pytest.mark.parametrize("timeout", [0, 5])
def test_a_check_that_raises_is_unknown_with_the_exception_and_traceback(timeout):
    (status, data, short, long, _), _ = run_guarded(raises, {}, timeout)
    assert status == "UNKNOWN"
    assert data["exception"] == "RuntimeError"
    assert data["message"] == "disk on fire"
    assert "RuntimeError: disk on fire" in short
    assert "Traceback" in long and "raises" in long


@pytest.mark.parametrize("timeout", [0, 5])
def test_a_check_returning_garbage_is_unknown(timeout):
    (status, data, _, _, _), _ = run_guarded(returns_garbage, {}, timeout)
    assert status == "UNKNOWN"
    assert "expected (status, data" in data["error"]


@pytest.mark.parametrize("timeout", [0, 5])
def test_a_valid_result_comes_back_normalized(timeout):
    result, runtime = run_guarded(returns_tuple_data, {}, timeout)
    assert result == ("OK", [1, 2.5, {"k": [3]}], "short", "long", None)
    assert runtime >= 0


@pytest.mark.parametrize("timeout", [0, 5])
def test_performance_data_hints_come_back_as_plain_json(timeout):
    result, _ = run_guarded(returns_perf_hints, {}, timeout)
    assert result == ("OK", {"load": 0.5}, "short", None, {"load": {"warn": "~:3"}})


def test_a_check_that_hangs_is_stopped_at_its_timeout():
    started = time.monotonic()
    (status, data, short, _, _), runtime = run_guarded(sleeps, {"seconds": 30}, 0.5)
    assert time.monotonic() - started < 5
    assert status == "UNKNOWN"
    assert short == "UNKNOWN: timed out after 0.5 s"
    assert 0.5 <= runtime < 5


def test_a_check_that_exits_is_unknown():
    (status, data, _, _, _), _ = run_guarded(exits, {}, 5)
    assert status == "UNKNOWN"
    assert data["exception"] == "SystemExit"


def test_a_check_process_that_dies_is_unknown():
    (status, data, short, _, _), _ = run_guarded(dies, {}, 5)
    assert status == "UNKNOWN"
    assert "ended without a result (exit status 9)" in short


def test_what_a_guarded_check_prints_goes_to_stderr_not_stdout(capfd):
    result, _ = run_guarded(prints, {}, 5)
    captured = capfd.readouterr()
    assert result[0] == "OK"
    assert "noise from the check" not in captured.out
    assert "noise from the check" in captured.err


def test_in_process_runs_pass_the_options():
    assert run_in_process(lambda opts: ("OK", opts), {"a": 1}) == ("OK", {"a": 1}, None, None, None)
