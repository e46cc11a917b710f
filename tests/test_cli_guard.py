"""The installed command running checks that misbehave: Nagios still gets one clean result."""

import json
import os
import signal
import time

import pytest

from accre_monitor.record import MAX_DEPTH

ODD_CHECKS = """
import os, signal, sys, time
from accre_monitor import monitor_command


@monitor_command
def starts_daemon(opts):
    \"\"\"Leave a process running that holds our stdout and stderr, like a careless daemon.\"\"\"
    pid = os.fork()
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    with open(opts["pidfile"], "w") as handle:
        handle.write(str(pid))
    print("stray output of the check")
    return "OK", "started"


@monitor_command
def noisy(opts):
    \"\"\"Write to stdout both ways a check can.\"\"\"
    print("printed by the check")
    sys.stdout.flush()
    os.write(1, b"written to fd 1 by the check\\n")
    return "OK", 1


@monitor_command
def undecodable(opts):
    \"\"\"Report a file name that is not valid UTF-8.\"\"\"
    name = os.fsdecode(b"/scratch/\\xff")
    return "WARNING", {name: name}, f"odd file {name}", f"found {name}"


@monitor_command
def deep(opts):
    \"\"\"Return data nested 1,100 levels deep.\"\"\"
    data = []
    for _ in range(1099):
        data = [data]
    return "OK", data


@monitor_command
def killed_while_writing(opts):
    \"\"\"Send half the result, then die by SIGKILL, as the OOM killer would leave it.\"\"\"
    write = os.write

    def write_half_and_die(fd, data):
        write(fd, bytes(data[: len(data) // 2]))
        os.kill(os.getpid(), signal.SIGKILL)

    os.write = write_half_and_die
    return "OK", "x" * 100000
"""


@pytest.fixture
def site(cli):
    cli.write_module("oddsite.checks", ODD_CHECKS)
    cli.write_config('[monitoring]\ncheck_modules = ["oddsite.checks"]\n')
    return cli


def record_of(result):
    assert result.stdout, result.stderr
    return json.loads(result.stdout)


def stop_daemon(pidfile):
    """Kill the daemon the check left behind; True if it was still running."""
    if not pidfile.exists():
        return False
    try:
        os.kill(int(pidfile.read_text()), signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def test_a_daemon_left_by_the_check_holds_neither_the_result_nor_our_pipes(site, tmp_path):
    pidfile = tmp_path / "daemon.pid"
    started = time.monotonic()
    run = site.popen("--timeout", "10", "starts_daemon", "--pidfile", str(pidfile))
    try:
        stdout, stderr = run.communicate(timeout=5)  # both pipes at EOF, the process ended
    finally:
        run.kill()
        daemon_was_running = stop_daemon(pidfile)
    assert time.monotonic() - started < 5
    assert daemon_was_running
    assert run.returncode == 0, stderr
    assert json.loads(stdout)["data"] == "started"
    assert "stray output of the check" in stderr


@pytest.mark.parametrize("timeout", ["0", "5"])
def test_what_a_check_writes_to_stdout_reaches_stderr_only(site, timeout):
    result = site.run("--timeout", timeout, "noisy")
    assert result.returncode == 0, result.stderr
    assert record_of(result)["status"] == "OK"
    assert "printed by the check" in result.stderr
    assert "written to fd 1 by the check" in result.stderr


@pytest.mark.parametrize("timeout", ["0", "5"])
@pytest.mark.parametrize("outputs", ["stdout", "nagios-stdout"])
def test_undecodable_text_comes_out_as_valid_utf8(site, timeout, outputs):
    result = site.run(
        "--timeout",
        timeout,
        "--outputs",
        outputs,
        "undecodable",
        encoding="utf-8",
        errors="surrogateescape",
    )
    assert result.returncode == 1, result.stderr
    result.stdout.encode("utf-8")  # undecodable bytes would have become lone surrogates
    assert "Traceback" not in result.stderr
    if outputs == "stdout":
        record = record_of(result)
        assert record["data"] == {"/scratch/\ufffd": "/scratch/\ufffd"}
        assert (record["short"], record["long"]) == (
            "odd file /scratch/\ufffd",
            "found /scratch/\ufffd",
        )
    else:
        assert result.stdout.startswith("odd file /scratch/\ufffd | ")


@pytest.mark.parametrize("timeout", ["0", "5"])
def test_data_nested_too_deep_is_unknown_saying_so(site, timeout):
    result = site.run("--timeout", timeout, "deep")
    assert result.returncode == 3, result.stderr
    record = record_of(result)
    assert record["short"] == f"UNKNOWN: check returned data nested deeper than {MAX_DEPTH} levels"
    assert "Traceback" not in result.stderr


def test_a_check_killed_while_writing_its_result_is_unknown(site):
    result = site.run("--timeout", "10", "killed_while_writing")
    assert result.returncode == 3, result.stderr
    record = record_of(result)
    assert record["short"] == (
        "UNKNOWN: check process ended with an incomplete result (killed by signal 9)"
    )
    assert "Traceback" not in result.stderr


def test_a_launcher_that_ignores_sigchld_still_gets_the_result(cli):
    import json
    import signal
    import subprocess

    from conftest import console_script

    result = subprocess.run(
        [console_script("accre-monitor"), "--timeout", "10", "loadavg"],
        capture_output=True,
        text=True,
        env=cli.env,
        timeout=60,
        preexec_fn=lambda: signal.signal(signal.SIGCHLD, signal.SIG_IGN),
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "OK"
    assert "Traceback" not in result.stderr
