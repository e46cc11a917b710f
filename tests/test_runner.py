import os
import time

import pytest

from accre_monitor.record import MAX_DEPTH
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


@pytest.mark.parametrize("timeout", [0, 5])
def test_a_check_that_raises_is_unknown_with_the_exception_and_traceback(timeout):
    (status, data, short, long), _ = run_guarded(raises, {}, timeout)
    assert status == "UNKNOWN"
    assert data["exception"] == "RuntimeError"
    assert data["message"] == "disk on fire"
    assert "RuntimeError: disk on fire" in short
    assert "Traceback" in long and "raises" in long


@pytest.mark.parametrize("timeout", [0, 5])
def test_a_check_returning_garbage_is_unknown(timeout):
    (status, data, _, _), _ = run_guarded(returns_garbage, {}, timeout)
    assert status == "UNKNOWN"
    assert "expected (status, data" in data["error"]


@pytest.mark.parametrize("timeout", [0, 5])
def test_a_valid_result_comes_back_normalized(timeout):
    result, runtime = run_guarded(returns_tuple_data, {}, timeout)
    assert result == ("OK", [1, 2.5, {"k": [3]}], "short", "long")
    assert runtime >= 0


def test_a_check_that_hangs_is_stopped_at_its_timeout():
    started = time.monotonic()
    (status, data, short, _), runtime = run_guarded(sleeps, {"seconds": 30}, 0.5)
    assert time.monotonic() - started < 5
    assert status == "UNKNOWN"
    assert short == "UNKNOWN: timed out after 0.5 s"
    assert 0.5 <= runtime < 5


def test_a_check_that_exits_is_unknown():
    (status, data, _, _), _ = run_guarded(exits, {}, 5)
    assert status == "UNKNOWN"
    assert data["exception"] == "SystemExit"


def test_a_check_process_that_dies_is_unknown():
    (status, data, short, _), _ = run_guarded(dies, {}, 5)
    assert status == "UNKNOWN"
    assert "ended without a result (exit status 9)" in short


def test_what_a_guarded_check_prints_goes_to_stderr_not_stdout(capfd):
    result, _ = run_guarded(prints, {}, 5)
    captured = capfd.readouterr()
    assert result[0] == "OK"
    assert "noise from the check" not in captured.out
    assert "noise from the check" in captured.err


def test_in_process_runs_pass_the_options():
    assert run_in_process(lambda opts: ("OK", opts), {"a": 1}) == ("OK", {"a": 1}, None, None)


def undecodable_names(opts):
    name = os.fsdecode(b"caf\xe9-\xff")
    return "OK", {name: [name]}, f"found {name}", f"long {name}"


@pytest.mark.parametrize("timeout", [0, 5])
def test_lone_surrogates_come_back_replaced(timeout):
    (status, data, short, long), _ = run_guarded(undecodable_names, {}, timeout)
    name = "caf\ufffd-\ufffd"
    assert (status, data, short, long) == ("OK", {name: [name]}, f"found {name}", f"long {name}")


def nests(opts):
    data = []
    for _ in range(opts["depth"] - 1):
        data = [data]
    return "OK", data


@pytest.mark.parametrize("timeout", [0, 5])
def test_data_nested_too_deep_is_unknown_saying_so(timeout):
    (status, data, short, _), _ = run_guarded(nests, {"depth": 1100}, timeout)
    assert status == "UNKNOWN"
    assert short == f"UNKNOWN: check returned data nested deeper than {MAX_DEPTH} levels"
    assert data["returned"].startswith("('OK', [[[")


def raises_with_surrogates(opts):
    raise OSError("cannot read " + os.fsdecode(b"/scratch/\xff"))


@pytest.mark.parametrize("timeout", [0, 5])
def test_an_exception_message_with_surrogates_is_reported(timeout):
    (status, data, short, long), _ = run_guarded(raises_with_surrogates, {}, timeout)
    assert status == "UNKNOWN"
    assert data["message"] == "cannot read /scratch/\ufffd"
    assert short == "UNKNOWN: check raised OSError: cannot read /scratch/\ufffd"
    long.encode("utf-8")
