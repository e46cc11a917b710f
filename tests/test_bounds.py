"""Every numeric setting of every section has a type and bounds.

The keys are taken from the code's own tables of defaults (`[monitoring]`, `[spool]`,
`[bus]`, and every output's `settings_keys`), so a key added later is walked too.
Each gets what TOML can say and no timer, `poll` or AMQP frame can take: nan, inf, -inf,
-1, 0, 1e300, a string, a boolean. A bad value is one line naming `section.key` (and the
file); the check's verdict stays its own, or is UNKNOWN for `[monitoring]`; never a
traceback.
"""

from __future__ import annotations

import json

import pytest

from accre_monitor.config import MONITORING_KEYS
from accre_monitor.errors import ConfigError
from accre_monitor.outputs import OUTPUTS, create_output, output_class
from accre_monitor.sections import BUS, SPOOL, STATE, bus_section, spool_section, state_section

# TOML literal -> the value it is
BAD = {
    "nan": float("nan"),
    "inf": float("inf"),
    "-inf": float("-inf"),
    "-1": -1,
    "1e300": 1e300,
    '"5"': "5",
    "true": True,
}
ZERO = {"0": 0}  # a fine value for some keys (no limit, off), refused by others


def numeric(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


MONITORING = [key for key, (_, default) in MONITORING_KEYS.items() if numeric(default)]
SECTIONS = {
    "spool": (SPOOL, spool_section),
    "bus": (BUS, bus_section),
    "state": (STATE, state_section),
}
SECTION_KEYS = [
    (section, key)
    for section, (spec, _) in SECTIONS.items()
    for key, setting in spec.items()
    if numeric(setting.default)
]

# the settings an output needs before any other can be checked
REQUIRED = {"slack": {"webhook_url": "https://hooks.slack.com/services/T0/B0/x"}}


def every_output() -> dict[str, type]:
    """One output name per output class (the Slack presets share one)."""
    found: dict[type, str] = {}
    for name in OUTPUTS:
        found.setdefault(output_class(name), name)
    return {name: cls for cls, name in found.items()}


OUTPUT_KEYS = [
    (name, key)
    for name, cls in every_output().items()
    for key, default in cls.settings_keys.items()
    if numeric(default)
]


def test_the_walk_covers_the_settings_named_in_the_reports():
    assert MONITORING == ["timeout", "ttl"]
    for key in ("node_ttl", "watchdog_interval", "lease"):
        assert ("state", key) in SECTION_KEYS
    for key in ("connect_timeout", "batch_wait", "prefetch", "heartbeat", "batch_size"):
        assert ("bus", key) in SECTION_KEYS
    for key in ("inline_budget", "backoff_max", "backoff_base", "busy_timeout", "max_entries"):
        assert ("spool", key) in SECTION_KEYS
    for name in ("redis", "couch", "elasticsearch", "nagios-nsca", "slack-all"):
        assert (name, "timeout") in OUTPUT_KEYS and (name, "batch_size") in OUTPUT_KEYS
    assert ("nagios-nsca", "port") in OUTPUT_KEYS and ("slack-all", "min_interval") in OUTPUT_KEYS
    assert ("prometheus-textfile", "stale_after") in OUTPUT_KEYS


@pytest.mark.parametrize("literal", [*BAD, *ZERO])
@pytest.mark.parametrize(("section", "key"), SECTION_KEYS)
def test_a_section_value_out_of_bounds_is_one_problem_and_the_default(section, key, literal):
    spec, check = SECTIONS[section]
    value = {**BAD, **ZERO}[literal]
    settings, _, problems = check({key: value})
    if literal in ZERO and not problems:
        assert settings[key] == 0
        return
    (problem,) = problems
    assert problem.startswith(f"{section}.{key} must be ")
    assert settings[key] == spec[key].default or (section, key) == ("bus", "url")


@pytest.mark.parametrize("literal", [*BAD, *ZERO])
@pytest.mark.parametrize(("name", "key"), OUTPUT_KEYS)
def test_an_output_value_out_of_bounds_is_one_clear_error(name, key, literal):
    from accre_monitor.outputs import section_of

    value = {**BAD, **ZERO}[literal]
    settings = {**REQUIRED.get(section_of(name), {}), key: value}
    try:
        output = create_output(name, settings)
    except ConfigError as exc:
        assert str(exc).startswith(f"outputs.{section_of(name)}.{key} must be ")
        assert "\n" not in str(exc)
        return
    output.close()
    assert literal in ZERO, f"outputs.{name}.{key} = {literal} was accepted"


@pytest.mark.parametrize(
    ("section", "setting", "key"),
    [
        ("bus", "prefetch = 70000", "bus.prefetch"),  # AMQP's prefetch count has 16 bits
        ("bus", "heartbeat = 70000", "bus.heartbeat"),
        ("spool", "inline_budget = 1e9", "spool.inline_budget"),
        ("spool", "backoff_max = 1e12", "spool.backoff_max"),
    ],
)
def test_a_value_too_large_for_what_uses_it_is_refused(cli, section, setting, key):
    cli.write_config(f"[{section}]\n{setting}\n")
    done = cli.run("--outputs", "nagios-stdout", "loadavg")
    assert done.returncode == 0
    (line,) = [line for line in done.stderr.splitlines() if key in line]
    assert str(cli.config_path) in line and "using the default" in line


# -- through the command line ---------------------------------------------------------------


@pytest.mark.parametrize("literal", [*BAD, *ZERO])
@pytest.mark.parametrize("key", MONITORING)
def test_a_monitoring_value_out_of_bounds_is_unknown_with_the_reason_on_stdout(cli, key, literal):
    cli.write_config(f'[monitoring]\noutputs = ["nagios-stdout"]\n{key} = {literal}\n')
    done = cli.run("loadavg")
    assert "Traceback" not in done.stderr
    if literal in ZERO and done.returncode == 0:
        assert done.stdout.startswith("LOAD OK")
        return
    assert done.returncode == 3, done.stderr
    (line,) = done.stdout.splitlines()
    assert line.startswith("ACCRE-MONITOR UNKNOWN - ") and f"monitoring.{key} must be" in line
    assert str(cli.config_path) in line
    assert len(done.stderr.splitlines()) == 1 and f"monitoring.{key}" in done.stderr


@pytest.mark.parametrize("literal", ["nan", "inf", "-inf", "1e300", "-1"])
def test_a_timeout_out_of_bounds_on_the_command_line_is_unknown(cli, literal):
    done = cli.run("--timeout", literal, "--outputs", "nagios-stdout", "loadavg")
    assert done.returncode == 3 and "Traceback" not in done.stderr
    assert "--timeout must be a number of seconds from 0" in done.stdout


@pytest.mark.parametrize("literal", [*BAD, *ZERO])
def test_every_delivery_value_out_of_bounds_keeps_the_verdict_and_is_named_once(cli, literal):
    """Every numeric key of [spool] and [bus] at once: one line each, on every surface."""
    lines = {section: [f"[{section}]"] for section in SECTIONS}
    for section, key in SECTION_KEYS:
        lines[section].append(f"{key} = {literal}")
    cli.write_config(
        "\n".join(line for section in lines.values() for line in section)
        + '\n[outputs.redis]\nurl = "redis://127.0.0.1:1/0"\ntimeout = 0.5\n'
    )
    done = cli.run("--outputs", "nagios-stdout,redis", "loadavg", "--warning", "-1,-1,-1")
    assert done.returncode == 1, done.stderr  # the check's own WARNING
    assert done.stdout.startswith("LOAD WARNING")
    health = cli.run("spool_health")
    status = cli.run("status", "--json", script="accre-pipeline")
    replay = cli.run("replay", script="accre-pipeline")
    for run in (done, health, status, replay):
        assert "Traceback" not in run.stderr, run.stderr
    assert json.loads(status.stdout)["outputs"]["redis"]["spooled"] == 1
    refused = 0
    for section, key in SECTION_KEYS:
        named = [line for line in done.stderr.splitlines() if f" {section}.{key} " in line]
        if literal in ZERO and not named:
            continue
        refused += 1
        (line,) = named
        assert str(cli.config_path) in line and "using the default" in line
        assert f"{section}.{key}" in health.stdout
        assert f"{section}.{key}" in status.stderr and f"{section}.{key}" in replay.stderr
    if literal not in ZERO:
        assert refused == len(SECTION_KEYS)
    if refused:
        assert health.returncode == 2


@pytest.mark.parametrize(
    ("output", "setting", "key"),
    [
        ("redis", "timeout = inf", "outputs.redis.timeout"),
        ("redis", "batch_size = 1e300", "outputs.redis.batch_size"),
        ("nagios-nsca", "port = 70000", "outputs.nagios-nsca.port"),
        ("nagios-nsca", "max_age = nan", "outputs.nagios-nsca.max_age"),
    ],
)
def test_an_output_value_out_of_bounds_keeps_the_verdict_and_the_record(cli, output, setting, key):
    cli.write_config(f"[outputs.{output}]\n{setting}\n")
    done = cli.run("--outputs", f"nagios-stdout,{output}", "loadavg")
    assert done.returncode == 0 and done.stdout.startswith("LOAD OK")
    (line,) = [line for line in done.stderr.splitlines() if key in line]
    assert str(cli.config_path) in line and "Traceback" not in done.stderr
    health = cli.run("spool_health")
    assert health.returncode == 2 and key in health.stdout
    status = json.loads(cli.run("status", "--json", script="accre-pipeline").stdout)
    assert status["outputs"][output]["spooled"] == 1
