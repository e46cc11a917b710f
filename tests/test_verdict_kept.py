"""Delivery problems never hide the check's verdict: the result reaches Nagios with its own
exit code, the record is kept for later, stderr says what is wrong once, and spool_health
turns CRITICAL naming it. Problems of the check's side are UNKNOWN, with the reason on stdout.
"""

from __future__ import annotations

import json
import os

import pytest
from servers import RedisServer, missing_reason
from test_outage import RedisStore

WARN = ("loadavg", "--warning", "-1,-1,-1")  # always WARNING: exit 1

BIG = """
from accre_monitor import monitor_command

@monitor_command
def big_numbers(opts):
    \"\"\"Data with an integer beyond 64 bits.\"\"\"
    return "OK", {"big": 2**70 + 12345, "small": 3}
"""


def pipeline(cli, *args):
    return cli.run(*args, script="accre-pipeline")


def status(cli) -> dict:
    result = pipeline(cli, "status", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def spool_line(cli, budget: bool = True) -> str:
    return f'[spool]\npath = "{cli.tmp / "spool.db"}"\n' + ("inline_budget = 2\n" if budget else "")


def health(cli, *extra: str):
    result = cli.run(*extra, "--outputs", "nagios-stdout", "spool_health")
    return result.returncode, result.stdout.splitlines()[0] if result.stdout else ""


def test_a_malformed_store_url_keeps_the_verdict_and_the_record(cli):
    cli.write_config(f'{spool_line(cli)}[outputs.redis]\nurl = "redis://admin:pw@[::1"\n')
    result = cli.run("--outputs", "nagios-stdout,redis", *WARN)
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("LOAD WARNING")
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "outputs.redis.url" in errors[0]
    assert "pw" not in result.stderr
    assert status(cli)["outputs"]["redis"]["spooled"] == 1
    code, line = health(cli)
    assert code == 2 and "outputs.redis.url" in line


@pytest.mark.parametrize(
    ("output", "package", "extra", "section"),
    [
        ("redis", "redis", "redis", 'url = "redis://127.0.0.1:1/0"'),
        ("couch", "urllib3", "couch", 'url = "http://127.0.0.1:1"'),
        ("elasticsearch", "elasticsearch", "elasticsearch", 'hosts = ["http://127.0.0.1:1"]'),
    ],
)
def test_a_missing_client_package_keeps_the_verdict_and_the_record(
    cli, output, package, extra, section
):
    (cli.sitedir / "sitecustomize.py").write_text(f"import sys\nsys.modules[{package!r}] = None\n")
    cli.write_config(f"{spool_line(cli)}[outputs.{output}]\n{section}\n")
    result = cli.run("--outputs", f"nagios-stdout,{output}", *WARN)
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("LOAD WARNING")
    assert f"pip install 'accre-monitor[{extra}]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert status(cli)["outputs"][output]["spooled"] == 1
    code, line = health(cli)
    assert code == 2 and f"needs the {package} package" in line


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ('inline_budget = "x"', "spool.inline_budget"),
        ("inline_budget = -5", "spool.inline_budget"),
        ('backoff_base = "x"', "spool.backoff_base"),
        ("backoff_max = -1", "spool.backoff_max"),
        ('busy_timeout = "x"', "spool.busy_timeout"),
        ("busy_timeout = -1", "spool.busy_timeout"),
        ("max_entries = true", "spool.max_entries"),
        ('drain_limit = "x"', "spool.drain_limit"),
    ],
)
def test_a_bad_spool_value_falls_back_to_its_default_and_says_so(cli, setting, key):
    cli.write_config(
        f"{spool_line(cli, budget=False)}{setting}\n"
        '[outputs.redis]\nurl = "redis://127.0.0.1:1/0"\ntimeout = 0.5\n'
    )
    result = cli.run("--outputs", "nagios-stdout,redis", *WARN)
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("LOAD WARNING")
    errors = [line for line in result.stderr.splitlines() if key in line]
    assert len(errors) == 1 and str(cli.config_path) in errors[0]
    assert "using the default" in errors[0]
    assert status(cli)["outputs"]["redis"]["spooled"] == 1
    code, line = health(cli)
    assert code == 2 and key in line


def test_a_bad_spool_path_falls_back_to_the_default_spool(cli):
    cli.write_config('[spool]\npath = 5\n[outputs.redis]\nurl = "redis://127.0.0.1:1/0"\n')
    result = cli.run("--outputs", "stdout,redis", *WARN)
    assert result.returncode == 1
    assert "spool.path must be a non-empty string" in result.stderr
    default = cli.home / ".local" / "state" / "accre-monitor" / "spool.db"
    assert default.exists()
    assert status(cli)["outputs"]["redis"]["spooled"] == 1


def test_unknown_keys_are_warned_about_with_the_file(cli):
    cli.write_config(
        f'{spool_line(cli)}inline_budjet = 3\n[outputs.redis]\nurl = "redis://127.0.0.1:1/0"\n'
        "timeuot = 3\n"
    )
    result = cli.run("--outputs", "stdout,redis", "loadavg")
    for key in ("spool.inline_budjet", "outputs.redis.timeuot"):
        (line,) = [line for line in result.stderr.splitlines() if key in line]
        assert str(cli.config_path) in line


def test_spool_health_reads_the_config_of_its_own_run(cli, tmp_path):
    if missing_reason("redis"):
        pytest.skip(missing_reason("redis"))
    site = tmp_path / "site.toml"
    site.write_text(
        f'[spool]\npath = "{tmp_path / "site-spool.db"}"\n'
        '[outputs.redis]\nurl = "redis://127.0.0.1:1/0"\ntimeout = 0.5\n'
    )
    for _ in range(3):
        cli.run("--config", str(site), "--outputs", "stdout,redis", "loadavg")
    code, line = health(cli, "--config", str(site), "--options", '{"backlog_warning": 2}')
    assert code == 1, line
    assert line.startswith("SPOOL WARNING - redis 3 spooled")


def test_a_password_in_a_store_url_is_a_secret_worth_a_warning(cli):
    path = cli.write_config('[outputs.redis]\nurl = "redis://admin:S3cret@127.0.0.1:1/0"\n')
    os.chmod(path, 0o644)
    result = cli.run("loadavg")
    assert "holds secrets and is readable by every user" in result.stderr
    assert "S3cret" not in result.stderr
    os.chmod(path, 0o600)
    assert "holds secrets" not in cli.run("loadavg").stderr


def test_accre_pipeline_without_a_command_is_a_usage_error(cli):
    result = pipeline(cli)
    assert result.returncode == 2
    assert "a command is required" in result.stderr


def test_integers_beyond_64_bits_arrive_unchanged_through_the_spool(cli):
    if missing_reason("redis"):
        pytest.skip(missing_reason("redis"))
    store = RedisStore()
    try:
        cli.write_module("bigmod", BIG)
        cli.write_config(
            f'[monitoring]\ncheck_modules = ["bigmod"]\n{spool_line(cli)}{store.section()}'
        )
        store.down()
        printed = json.loads(cli.run("--outputs", "stdout,redis", "big_numbers").stdout)
        assert printed["data"]["big"] == 2**70 + 12345
        store.up()
        replayed = pipeline(cli, "replay")
        assert replayed.returncode == 0, replayed.stdout + replayed.stderr
        assert "CommandError" not in replayed.stdout + replayed.stderr
        import redis

        with redis.Redis.from_url(store.server.url) as client:
            stored = client.hget(f"accre-monitor:latest:{printed['node']}:big_numbers", "record")
        assert json.loads(stored)["data"] == {"big": 2**70 + 12345, "small": 3}
    finally:
        store.close()


def test_replay_says_what_failed_in_words(cli):
    cli.write_config(f'{spool_line(cli)}[outputs.redis]\nurl = "redis://127.0.0.1:1/0"\n')
    cli.run("--outputs", "stdout,redis", "loadavg")
    result = pipeline(cli, "replay")
    assert result.returncode == 1
    assert "CommandError" not in result.stdout + result.stderr
    assert "they stay in the spool" in result.stdout


@pytest.fixture
def redis_down():
    if missing_reason("redis"):
        pytest.skip(missing_reason("redis"))
    server = RedisServer()
    yield server
    server.close()


def corrupt_spool(cli) -> str:
    path = cli.tmp / "spool.db"
    cli.run("--outputs", "stdout,redis", "loadavg")  # the store is down: a spool appears
    with open(path, "r+b") as handle:
        handle.write(b"garbage where the header was")
    return str(path)


@pytest.mark.parametrize(
    "command", [("status",), ("replay",), ("dead-letters",), ("dead-letters", "purge")]
)
def test_accre_pipeline_on_a_corrupt_spool_prints_one_line(cli, command):
    cli.write_config(f'{spool_line(cli)}[outputs.redis]\nurl = "redis://127.0.0.1:1/0"\n')
    corrupt_spool(cli)
    result = pipeline(cli, *command)
    assert "Traceback" not in result.stderr
    said = [line for line in (result.stdout + result.stderr).splitlines() if "corrupt" in line]
    assert len(said) == 1, result.stdout + result.stderr


def test_a_corrupt_spool_is_set_aside_and_spool_health_names_it(cli):
    cli.write_config(f'{spool_line(cli)}[outputs.redis]\nurl = "redis://127.0.0.1:1/0"\n')
    path = corrupt_spool(cli)
    result = cli.run("--outputs", "nagios-stdout,redis", *WARN)
    assert result.returncode == 1 and result.stdout.startswith("LOAD WARNING")
    assert "record lost" not in result.stderr
    assert status(cli)["outputs"]["redis"]["spooled"] == 1  # the fresh spool took it
    (aside,) = status(cli)["set_aside"]
    assert aside.startswith(path + ".corrupt-")
    code, line = health(cli)
    assert code == 2 and aside in line
    os.remove(aside)
    code, line = health(cli)
    assert code == 0, line
