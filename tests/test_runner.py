import enum
import json
import marshal
import os
import signal
import threading
import time

import pytest

from accre_monitor import Range
from accre_monitor.record import MAX_DEPTH
from accre_monitor.runner import decode_result, run_guarded, run_in_process


@pytest.fixture(params=["pidfd", "polling"])
def exit_watch(request, monkeypatch):
    """Both ways the runner learns of the check process's exit: a pidfd, or polling waitpid."""
    if request.param == "polling":
        monkeypatch.delattr(os, "pidfd_open")  # as on Linux before 5.3
    return request.param


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
def test_a_valid_result_comes_back_normalized(timeout, exit_watch):
    result, runtime = run_guarded(returns_tuple_data, {}, timeout)
    assert result == ("OK", [1, 2.5, {"k": [3]}], "short", "long", None)
    assert runtime >= 0


@pytest.mark.parametrize("timeout", [0, 5])
def test_performance_data_hints_come_back_as_plain_json(timeout):
    result, _ = run_guarded(returns_perf_hints, {}, timeout)
    assert result == ("OK", {"load": 0.5}, "short", None, {"load": {"warn": "~:3"}})


def test_a_check_that_hangs_is_stopped_at_its_timeout(exit_watch):
    started = time.monotonic()
    (status, data, short, _, _), runtime = run_guarded(sleeps, {"seconds": 30}, 0.5)
    assert time.monotonic() - started < 5
    assert status == "UNKNOWN"
    assert short == "UNKNOWN: timed out after 0.5 s"
    assert 0.5 <= runtime < 5


def sleeps_after_saying_who(opts):
    with open(opts["pidfile"], "w") as handle:
        handle.write(str(os.getpid()))
    time.sleep(30)
    return "OK", None


def test_an_interrupted_run_takes_its_check_process_down(tmp_path, request):
    pidfile = tmp_path / "check.pid"
    # A suite started in the background (`cmd &`, nohup) inherits SIGINT ignored, and Python
    # then never raises KeyboardInterrupt: give the test the handler an operator's ^C meets.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, previous))

    def interrupt_once_the_check_runs():
        deadline = time.monotonic() + 10
        while not pidfile.exists() or not pidfile.read_text():
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_once_the_check_runs, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        run_guarded(sleeps_after_saying_who, {"pidfile": str(pidfile)}, 20)
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.waitpid(child, os.WNOHANG)
        except ChildProcessError:  # killed and reaped
            break
        time.sleep(0.01)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the check process outlived the interrupted run")


def test_a_check_that_exits_is_unknown():
    (status, data, _, _, _), _ = run_guarded(exits, {}, 5)
    assert status == "UNKNOWN"
    assert data["exception"] == "SystemExit"


def test_a_check_process_that_dies_is_unknown(exit_watch):
    (status, data, short, _, _), _ = run_guarded(dies, {}, 5)
    assert status == "UNKNOWN"
    assert "ended without a result (exit status 9)" in short


def writes_everywhere(opts):
    print("printed by the check")
    os.write(1, b"written to fd 1 by the check\n")
    os.write(2, b"written to fd 2 by the check\n")
    return "OK", 1


@pytest.mark.parametrize("timeout", [0, 5])
def test_what_a_check_writes_to_stdout_goes_to_stderr(capfd, timeout):
    result, _ = run_guarded(writes_everywhere, {}, timeout)
    captured = capfd.readouterr()
    assert result[0] == "OK"
    assert captured.out == ""
    for text in ("printed by", "written to fd 1 by", "written to fd 2 by"):
        assert f"{text} the check" in captured.err


def test_stdout_is_restored_after_an_in_process_run(capfd):
    run_guarded(writes_everywhere, {}, 0)
    print("after the check")
    os.write(1, b"fd 1 after the check\n")
    assert capfd.readouterr().out == "after the check\nfd 1 after the check\n"


def floods_stderr(opts):
    os.write(1, b"x" * opts["size"])
    return "OK", opts["size"]


def test_output_larger_than_a_pipe_is_relayed_whole(capfd, exit_watch):
    result, _ = run_guarded(floods_stderr, {"size": 1 << 20}, 10)
    assert result[0] == "OK"
    assert capfd.readouterr().err.count("x") == 1 << 20


def test_a_stderr_nobody_reads_cannot_keep_the_run_past_its_timeout(exit_watch):
    read_fd, write_fd = os.pipe()
    saved = os.dup(2)
    os.dup2(write_fd, 2)  # a pipe that fills up and is never read
    try:
        started = time.monotonic()
        (status, _, short, _, _), _ = run_guarded(floods_stderr, {"size": 1 << 20}, 1)
        elapsed = time.monotonic() - started
    finally:
        os.dup2(saved, 2)
        for fd in (saved, read_fd, write_fd):
            os.close(fd)
    assert elapsed < 5
    assert (status, short) == ("UNKNOWN", "UNKNOWN: timed out after 1 s")


def starts_a_daemon(opts):
    """Fork a process that lives until the test closes its end of the `release` pipe."""
    release_r, release_w = opts["release"]
    started_r, started_w = os.pipe()
    if os.fork() == 0:
        os.close(release_w)
        print("daemon started", flush=True)
        os.write(started_w, b"!")  # said it while the check still runs
        os.read(release_r, 1)
        os._exit(0)
    os.read(started_r, 1)
    if opts.get("then_die"):
        os._exit(9)
    return "OK", "daemon started"


@pytest.fixture
def release():
    """A pipe whose write end, closed when the test ends, ends the daemons of starts_a_daemon."""
    read_fd, write_fd = os.pipe()
    yield read_fd, write_fd
    os.close(read_fd)
    os.close(write_fd)


def test_a_check_that_leaves_a_daemon_running_returns_at_once(release, capfd, exit_watch):
    started = time.monotonic()
    result, _ = run_guarded(starts_a_daemon, {"release": release}, 10)
    assert time.monotonic() - started < 5
    assert result == ("OK", "daemon started", None, None, None)
    assert "daemon started" in capfd.readouterr().err


def test_a_check_that_dies_leaving_a_daemon_is_unknown_at_once(release, exit_watch):
    started = time.monotonic()
    (status, _, short, _, _), _ = run_guarded(
        starts_a_daemon, {"release": release, "then_die": 1}, 10
    )
    assert time.monotonic() - started < 5
    assert status == "UNKNOWN"
    assert "ended without a result (exit status 9)" in short


def killed_while_writing(opts):
    """Send half the result, then die by SIGKILL, as the OOM killer would leave it."""
    if os.getpid() == opts["runner_pid"]:
        return "UNKNOWN", "must run in a child process"
    write = os.write

    def write_half_and_die(fd, data):
        write(fd, bytes(data[: len(data) // 2]))
        os.kill(os.getpid(), signal.SIGKILL)

    os.write = write_half_and_die  # in the child only: it is a copy of this process
    return "OK", "x" * 100_000


def test_a_check_killed_while_writing_its_result_is_unknown(exit_watch):
    (status, data, short, _, _), _ = run_guarded(
        killed_while_writing, {"runner_pid": os.getpid()}, 10
    )
    assert status == "UNKNOWN"
    assert short == "UNKNOWN: check process ended with an incomplete result (killed by signal 9)"
    assert 0 < data["received_bytes"] < 100_000


FRAMED = marshal.dumps(("OK", {"a": 1}, "short", None, None))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (FRAMED[:-3], "EOFError"),
        (b"", "EOFError"),
        (b"\xff not marshal", "ValueError"),
        (marshal.dumps({"status": "OK"}), "ValueError"),
        (marshal.dumps(("OK", 1)), "ValueError"),
        (marshal.dumps(("FINE", 1, None, None, None)), "ValueError"),
        (marshal.dumps(("OK", 1, 2, None, None)), "ValueError"),
        (marshal.dumps(("OK", 1, None, None, ["hints"])), "ValueError"),
        (marshal.dumps(3), "TypeError"),
        (b"[\x01\x00\x00\x00" * 3000 + b"N", "ValueError"),  # nested past marshal's limit
    ],
)
def test_a_payload_that_cannot_be_decoded_is_unknown_saying_so(payload, reason):
    status, data, short, _, _ = decode_result(payload)
    assert status == "UNKNOWN"
    assert short == f"UNKNOWN: check process sent a result that cannot be decoded: {reason}"
    assert data["received_bytes"] == len(payload)
    json.dumps(data)


def test_a_decodable_payload_is_the_result():
    sent = ("WARNING", {"a": [1, 2**70, 0.5, True, None, "\u00e9"]}, "s", None, {"a": {"uom": "s"}})
    assert decode_result(marshal.dumps(sent)) == sent


class Level(enum.IntEnum):
    HIGH = 3


class Mode(enum.StrEnum):
    FAST = "fast"


def returns_enums(opts):
    return "OK", {Mode.FAST: [Level.HIGH]}, Mode.FAST, None, {"$": {"max": Level.HIGH}}


@pytest.mark.parametrize("timeout", [0, 5])
def test_enum_values_come_back_as_their_plain_values(timeout):
    (status, data, short, long, perf), _ = run_guarded(returns_enums, {}, timeout)
    assert (status, data, short, long, perf) == (
        "OK",
        {"fast": [3]},
        "fast",
        None,
        {"$": {"max": 3}},
    )
    assert type(short) is str and type(data["fast"][0]) is int and type(perf["$"]["max"]) is int


def undecodable_names(opts):
    name = os.fsdecode(b"caf\xe9-\xff")
    return "OK", {name: [name]}, f"found {name}", f"long {name}"


@pytest.mark.parametrize("timeout", [0, 5])
def test_lone_surrogates_come_back_replaced(timeout):
    (status, data, short, long, _), _ = run_guarded(undecodable_names, {}, timeout)
    name = "caf\ufffd-\ufffd"
    assert (status, data, short, long) == ("OK", {name: [name]}, f"found {name}", f"long {name}")


def nests(opts):
    data = []
    for _ in range(opts["depth"] - 1):
        data = [data]
    return "OK", data


@pytest.mark.parametrize("timeout", [0, 5])
def test_data_nested_too_deep_is_unknown_saying_so(timeout):
    (status, data, short, _, _), _ = run_guarded(nests, {"depth": 1100}, timeout)
    assert status == "UNKNOWN"
    assert short == f"UNKNOWN: check returned data nested deeper than {MAX_DEPTH} levels"
    assert data["returned"].startswith("('OK', [[[")


def raises_with_surrogates(opts):
    raise OSError("cannot read " + os.fsdecode(b"/scratch/\xff"))


@pytest.mark.parametrize("timeout", [0, 5])
def test_an_exception_message_with_surrogates_is_reported(timeout):
    (status, data, short, long, _), _ = run_guarded(raises_with_surrogates, {}, timeout)
    assert status == "UNKNOWN"
    assert data["message"] == "cannot read /scratch/\ufffd"
    assert short == "UNKNOWN: check raised OSError: cannot read /scratch/\ufffd"
    long.encode("utf-8")


def test_in_process_runs_pass_the_options():
    assert run_in_process(lambda opts: ("OK", opts), {"a": 1}) == ("OK", {"a": 1}, None, None, None)
