"""The installed `accre-monitor` command, run as Nagios would run it."""

import json
import os
import time

import pytest

SITE_CHECKS = """
import os, time
from accre_monitor import monitor_command

@monitor_command
def echo_options(opts):
    \"\"\"Return the options payload as data.

    Long description: every option is echoed back.
    \"\"\"
    return opts.get("status", "OK"), opts


@monitor_command
def sleeper(opts):
    \"\"\"Sleep for --seconds.\"\"\"
    time.sleep(opts.get("seconds", 30))
    return "OK", None


@monitor_command
def raiser(opts):
    \"\"\"Always raises.\"\"\"
    raise ValueError("bad disk")


@monitor_command
def auditor_users(opts):
    \"\"\"Audit users.\"\"\"
    return "OK", []
"""


@pytest.fixture
def site(cli):
    cli.write_module("mysite.checks", SITE_CHECKS)
    cli.write_config('[monitoring]\ncheck_modules = ["mysite.checks"]\n')
    return cli


def record_of(result):
    assert result.stdout, result.stderr
    return json.loads(result.stdout)


def test_loadavg_runs_with_the_builtin_default_config(cli):
    if os.path.exists("/etc/accre-monitor/config.toml"):
        pytest.skip("/etc/accre-monitor/config.toml exists on this machine")
    result = cli.run("loadavg")
    assert result.returncode == 0, result.stderr
    record = record_of(result)
    assert record["name"] == "loadavg"
    assert record["status"] == "OK"
    assert record["data"] == pytest.approx(list(os.getloadavg()), abs=1.0)
    assert set(record) >= {"id", "node", "date", "name", "status", "data", "runtime"}
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("status", "code"), [("OK", 0), ("WARNING", 1), ("CRITICAL", 2), ("UNKNOWN", 3)]
)
def test_the_exit_code_is_the_nagios_code_of_the_status(site, status, code):
    result = site.run("echo_options", "--status", status.lower())
    assert result.returncode == code
    assert record_of(result)["status"] == status


def test_json_and_extra_options_give_the_same_payload(site):
    from_json = site.run("--options", '{"warning": [1,1,1], "critical": [2,2,2]}', "echo_options")
    from_args = site.run("echo_options", "--warning", "1,1,1", "--critical=2,2,2")
    assert record_of(from_json)["data"] == record_of(from_args)["data"]
    assert record_of(from_args)["data"] == {"warning": [1, 1, 1], "critical": [2, 2, 2]}


def test_extra_options_override_json_options_and_flags_are_null(site):
    result = site.run("--options", '{"a": 1, "b": 2}', "echo_options", "--a", "x", "--dry-run")
    assert record_of(result)["data"] == {"a": "x", "b": 2, "dry_run": None}


def test_loadavg_thresholds_from_the_command_line(cli):
    result = cli.run("--outputs", "stdout", "loadavg", "--warning", "-1,-1,-1")
    assert result.returncode == 1
    result = cli.run("loadavg", "--warning", "-1,-1,-1", "--critical", "-1,-1,-1")
    assert result.returncode == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--options", "{not json", "loadavg"], "--options is not valid JSON"),
        (["--options", "[1]", "loadavg"], "--options must be a JSON object"),
        (["no_such_check"], "unknown check 'no_such_check'"),
        (["--outputs", "carrier-pigeon", "loadavg"], "unknown output 'carrier-pigeon'"),
        (["--timeout", "soon", "loadavg"], "--timeout must be a number"),
        (["--config", "/nonexistent/config.toml", "loadavg"], "cannot read config file"),
        (["loadavg", "stray"], "unexpected argument 'stray'"),
        ([], "no check given"),
    ],
)
def test_user_errors_are_one_line_on_stderr_and_unknown_on_stdout(cli, args, message):
    result = cli.run(*args)
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    if "output" in message or "config" in message:  # no usable output: one plain line
        assert result.stdout.startswith("ACCRE-MONITOR UNKNOWN - ")
        assert message in result.stdout and result.stdout.count("\n") == 1
    else:  # rendered as an UNKNOWN record by the configured output (stdout: JSON)
        record = json.loads(result.stdout)
        assert record["status"] == "UNKNOWN"
        assert message in record["short"] and message in record["data"]["error"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no_such_check"], "unknown check 'no_such_check'"),
        (["--options", "{not json", "loadavg"], "--options is not valid JSON"),
    ],
)
def test_nagios_shows_why_a_run_is_unknown(cli, args, message):
    cli.write_config('[monitoring]\noutputs = ["nagios-stdout"]\n')
    result = cli.run(*args)
    assert result.returncode == 3
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"UNKNOWN - {message}") and " | " in first


def test_an_invalid_config_file_is_one_line_and_unknown(cli):
    cli.write_config("[monitoring]\noutputs = 7\n")
    result = cli.run("loadavg")
    assert result.returncode == 3
    assert "monitoring.outputs must be list" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_check_that_raises_is_delivered_as_unknown(site):
    result = site.run("--outputs", "nagios-stdout", "raiser")
    assert result.returncode == 3
    first, *long = result.stdout.splitlines()
    assert first.startswith("UNKNOWN: check raised ValueError: bad disk | {")
    assert json.loads(first.partition(" | ")[2])["data"]["exception"] == "ValueError"
    assert any("Traceback" in line for line in long)


def test_a_check_that_hangs_is_stopped_and_its_lock_released(site):
    site.write_config(
        f'[monitoring]\ncheck_modules = ["mysite.checks"]\nlockdir = "{site.tmp / "locks"}"\n'
    )
    started = time.monotonic()
    result = site.run("--timeout", "1", "sleeper", "--seconds", "60")
    assert time.monotonic() - started < 20
    assert result.returncode == 3
    assert record_of(result)["short"] == "UNKNOWN: timed out after 1 s"
    again = site.run("--timeout", "1", "sleeper", "--seconds", "0")
    assert again.returncode == 0, again.stdout


def test_the_config_timeout_applies_and_the_option_overrides_it(site):
    site.write_config('[monitoring]\ncheck_modules = ["mysite.checks"]\ntimeout = 0.5\n')
    assert record_of(site.run("sleeper", "--seconds", "10"))["status"] == "UNKNOWN"
    assert site.run("--timeout", "5", "sleeper", "--seconds", "1").returncode == 0


def flock_held(path):
    """Whether some process holds a flock(2) lock on `path`, as /proc/locks lists them."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return False
    wanted = (os.major(info.st_dev), os.minor(info.st_dev), info.st_ino)
    with open("/proc/locks") as locks:
        for line in locks:
            fields = line.split()  # 1: FLOCK ADVISORY WRITE <pid> <major>:<minor>:<inode> 0 EOF
            if fields[1] != "FLOCK":
                continue
            major, minor, inode = fields[5].split(":")
            if (int(major, 16), int(minor, 16), int(inode)) == wanted:
                return True
    return False


def test_a_second_run_of_a_running_check_is_critical_at_once(site):
    # a private lock directory: "[DEFAULT]" is shared by every run of this suite on the machine
    site.write_config(
        f'[monitoring]\ncheck_modules = ["mysite.checks"]\nlockdir = "{site.tmp / "locks"}"\n'
    )
    first = site.popen("sleeper", "--seconds", "10")
    try:
        # wait until the first run holds its lock, watching without taking it ourselves
        # (a second run started at once may beat the first to it)
        deadline = time.monotonic() + 10
        while not flock_held(site.tmp / "locks" / "sleeper.lock"):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first run never took its lock"
            time.sleep(0.02)
        second = site.run("--outputs", "nagios-stdout", "sleeper", "--seconds", "0")
        assert second.returncode == 2
        assert "already running" in second.stdout.splitlines()[0]
    finally:
        first.kill()
        first.wait()
    assert site.run("sleeper", "--seconds", "0").returncode == 0


def test_an_unsafe_lock_directory_is_refused_with_unknown(site):
    target = site.tmp / "target"
    target.mkdir(mode=0o700)
    (site.tmp / "link").symlink_to(target)
    site.write_config(
        f'[monitoring]\ncheck_modules = ["mysite.checks"]\nlockdir = "{site.tmp / "link"}"\n'
    )
    result = site.run("echo_options")
    assert result.returncode == 3
    assert "symlink" in result.stderr


def test_help_lists_every_check_with_its_first_paragraph(site):
    result = site.run("-h")
    assert result.returncode == 0
    assert "loadavg" in result.stdout
    assert "Load average over 1, 5 and 15 minutes against thresholds." in result.stdout
    assert "echo_options  Return the options payload as data." in result.stdout
    assert "Long description" not in result.stdout


def test_check_help_shows_the_whole_docstring(site):
    result = site.run("echo_options", "-h")
    assert result.returncode == 0
    assert "Return the options payload as data." in result.stdout
    assert "Long description: every option is echoed back." in result.stdout


def test_auditor_checks_are_hidden_unless_enabled(site):
    assert "auditor_users" not in site.run("-h").stdout
    assert "unknown check 'auditor_users'" in site.run("auditor_users").stderr
    site.write_config('[monitoring]\ncheck_modules = ["mysite.checks"]\nauditor = true\n')
    assert "auditor_users" in site.run("-h").stdout
    assert site.run("auditor_users").returncode == 0


def test_several_outputs_print_in_order(cli):
    result = cli.run("--outputs", "nagios-stdout,stdout", "loadavg")
    first, rest = result.stdout.split("\n", 1)
    assert first.startswith("LOAD OK - load average:")
    assert json.loads(rest)["name"] == "loadavg"


def test_configured_outputs_are_used(cli):
    cli.write_config('[monitoring]\noutputs = ["nagios-base64-stdout"]\nnode = "n42"\n')
    result = cli.run("loadavg")
    import base64

    payload = result.stdout.splitlines()[0].partition(" | ")[2]
    assert json.loads(base64.b64decode(payload))["node"] == "n42"


def test_checks_from_entry_points_are_found(cli):
    cli.write_module("epsite.more", SITE_CHECKS.replace("def echo_options", "def ep_echo"))
    dist = cli.sitedir / "epsite-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: epsite\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[accre_monitor.checks]\nepsite = epsite.more\n")
    result = cli.run("ep_echo", "--x", "1")
    assert result.returncode == 0, result.stderr
    assert record_of(result)["data"] == {"x": 1}
    assert "ep_echo" in cli.run("-h").stdout


def test_a_check_module_that_fails_to_import_gives_unknown(cli):
    cli.write_module(
        "badsite.checks",
        "raise ImportError('missing dependency')\n@monitor_command\ndef bad_one(opts): pass\n",
    )
    cli.write_config('[monitoring]\ncheck_modules = ["badsite.checks"]\n')
    result = cli.run("bad_one")
    assert result.returncode == 3
    assert "missing dependency" in record_of(result)["data"]["message"]


def test_a_missing_check_module_is_a_user_error(cli):
    cli.write_config('[monitoring]\ncheck_modules = ["nowhere.checks"]\n')
    result = cli.run("loadavg")
    assert result.returncode == 0  # built-in checks come first and need no scan of the rest
    result = cli.run("whatever")
    assert result.returncode == 3
    assert "nowhere.checks" in result.stderr
