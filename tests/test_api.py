"""The public API as stand-alone check scripts and check authors use it."""

import json
import subprocess
import sys
import textwrap

import accre_monitor
from accre_monitor.testing import run_check

SEED_EXAMPLE = """
import os
from accre_monitor import monitor_command

@monitor_command
def loadavg_seed(opts):
    data = os.getloadavg(); status = 'OK'
    if 'warning' in opts:
        for idx, val in enumerate(opts['warning']):
            if data[idx] > val: status = 'WARNING'
    return status, data
"""


def script(cli, body):
    path = cli.tmp / "script.py"
    path.write_text(textwrap.dedent(body))
    return subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, env=cli.env, timeout=60
    )


def test_the_public_names_are_importable_from_the_package():
    assert accre_monitor.EXITCODE_MAPS == {
        "nagios": {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}
    }
    assert callable(accre_monitor.monitor_command)
    assert callable(accre_monitor.complete_check)
    assert callable(accre_monitor.maybe_acquire_lock)


def test_complete_check_delivers_and_exits_with_the_status_code(cli):
    result = script(
        cli,
        """
        from accre_monitor import complete_check
        complete_check("standalone", ("warning", {"x": 1}, "X high"), outputs=["nagios-stdout"],
                       runtime=0.5)
        """,
    )
    assert result.returncode == 1, result.stderr
    short, _, payload = result.stdout.splitlines()[0].partition(" | ")
    assert short == "X high"
    record = json.loads(payload)
    assert (record["name"], record["status"], record["runtime"]) == ("standalone", "WARNING", 0.5)


def test_complete_check_uses_the_configured_outputs(cli):
    cli.write_config('[monitoring]\noutputs = ["stdout"]\n')
    result = script(
        cli, "from accre_monitor import complete_check\ncomplete_check('s', ('CRITICAL', None))\n"
    )
    assert result.returncode == 2
    assert json.loads(result.stdout)["status"] == "CRITICAL"


def test_complete_check_turns_a_bad_return_into_unknown(cli):
    result = script(cli, "from accre_monitor import complete_check\ncomplete_check('s', 'fine')\n")
    assert result.returncode == 3
    assert json.loads(result.stdout)["status"] == "UNKNOWN"


def test_the_seed_example_runs_unchanged(cli):
    cli.write_module("seedsite.checks", SEED_EXAMPLE)
    cli.write_config('[monitoring]\ncheck_modules = ["seedsite.checks"]\n')
    ok = cli.run("loadavg_seed", "--warning", "1000,1000,1000")
    warn = cli.run("--options", '{"warning": [-1, -1, -1]}', "loadavg_seed")
    assert (ok.returncode, warn.returncode) == (0, 1), ok.stderr + warn.stderr


def test_run_check_gives_the_record_without_printing_or_exiting(capsys):
    def my_check(opts):
        return "warning", {"seen": opts}, "MY WARNING"

    record = run_check(my_check, {"limit": 3})
    assert record["status"] == "WARNING"
    assert record["data"] == {"seen": {"limit": 3}}
    assert record["name"] == "my_check"
    assert capsys.readouterr().out == ""


def test_run_check_guards_like_the_cli():
    def broken(opts):
        return 1 / 0

    assert run_check(broken)["data"]["exception"] == "ZeroDivisionError"
    assert run_check("loadavg", timeout=5)["status"] == "OK"
