"""`accre-pipeline`'s own command line: help, where `--config` goes, and its log lines."""

import re

import pytest


@pytest.mark.parametrize(
    "args",
    [["-h"], ["status", "-h"], ["replay", "-h"], ["dead-letters", "-h"], ["ship", "-h"]],
)
def test_help_shows_no_default_it_does_not_have(cli, args):
    result = cli.run(*args, script="accre-pipeline")
    assert result.returncode == 0, result.stderr
    assert "(default: -)" not in result.stdout
    assert result.stdout.count("(default:") <= 1, result.stdout


def test_ship_help_says_its_default_once(cli):
    text = " ".join(cli.run("ship", "-h", script="accre-pipeline").stdout.split())
    assert "only these remote outputs, comma-separated (default: every one)" in text
    assert "(default: every one) (default" not in text


@pytest.mark.parametrize("command", ["status", "replay", "dead-letters", "topology"])
def test_config_goes_before_or_after_the_command(cli, command):
    spool = cli.tmp / "elsewhere.db"
    config = cli.tmp / "other.toml"
    config.write_text(f'[spool]\npath = "{spool}"\n[bus]\nkind = "inprocess"\n')
    cli.write_config('[spool]\npath = "/nonexistent/default.db"\n')
    for args in (
        ["--config", str(config), command],
        [command, "--config", str(config)],
        [command, f"--config={config}"],
    ):
        result = cli.run(*args, script="accre-pipeline")
        assert "unrecognized arguments" not in result.stderr, result.stderr
        assert "/nonexistent" not in result.stdout + result.stderr, args
        if command == "status":
            assert result.returncode == 0, result.stderr
            assert f"spool: {spool}" in result.stdout
        if command == "topology":  # the chosen config was read: it has no broker
            assert 'no broker: [bus] kind is not "rabbitmq"' in result.stderr


def test_config_after_the_command_without_a_value_is_one_line(cli):
    result = cli.run("status", "--config", script="accre-pipeline")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith("option --config needs a value")


STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z accre-pipeline: ")


def test_the_shippers_plain_log_lines_carry_a_timestamp(cli):
    cli.write_config(f'[spool]\npath = "{cli.tmp / "spool.db"}"\n')
    result = cli.run("ship", script="accre-pipeline")  # nothing to ship: it says so and stops
    lines = result.stderr.strip().splitlines()
    assert lines, result
    assert all(STAMP.match(line) for line in lines), result.stderr


def test_an_abbreviated_config_option_is_the_config_too(cli):
    config = cli.tmp / "other.toml"
    config.write_text(f'[spool]\npath = "{cli.tmp / "other.db"}"\n')
    for args in (["status", "--conf", str(config)], ["--conf", str(config), "status"]):
        result = cli.run(*args, script="accre-pipeline")
        assert result.returncode == 0, result.stderr
        assert f"spool: {cli.tmp / 'other.db'}" in result.stdout
