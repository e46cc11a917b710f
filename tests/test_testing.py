"""`accre_monitor.testing.run_check`: a check's record without a command line, stdout kept clean."""

import os

import pytest

from accre_monitor.testing import run_check


def chatty(opts):
    print("printed by the check")
    os.write(1, b"written to fd 1 by the check\n")
    return "OK", os.fsdecode(b"odd \xff")


@pytest.mark.parametrize("timeout", [0, 5])
def test_run_check_keeps_what_the_check_writes_off_stdout(capfd, timeout):
    record = run_check(chatty, timeout=timeout)
    captured = capfd.readouterr()
    assert record["status"] == "OK"
    assert record["data"] == "odd \ufffd"
    assert captured.out == ""
    assert "printed by the check" in captured.err
    assert "written to fd 1 by the check" in captured.err
