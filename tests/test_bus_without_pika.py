"""The RabbitMQ bus configured where pika is not installed (`pip install .` without the
`rabbitmq` extra): every run keeps its verdict and its record, says once what to install,
and every `accre-pipeline` command says it in one line instead of a traceback.

pika is hidden from the subprocesses by a `sitecustomize` that puts None in its place in
`sys.modules`, as `import pika` then fails the way a missing package does.
"""

from __future__ import annotations

import json

import pytest
from servers import free_port

HINT = "pip install 'accre-monitor[rabbitmq]'"


@pytest.fixture
def node(cli):
    (cli.sitedir / "sitecustomize.py").write_text("import sys\nsys.modules['pika'] = None\n")
    cli.write_config(
        f'[bus]\nkind = "rabbitmq"\nurl = "amqp://127.0.0.1:{free_port()}/%2F"\n'
        f'[spool]\npath = "{cli.tmp / "spool.db"}"\ninline_budget = 2\n'
        '[outputs.redis]\nurl = "redis://127.0.0.1:1/0"\n'
    )
    return cli


def pipeline(cli, *args):
    return cli.run(*args, script="accre-pipeline")


@pytest.mark.parametrize(
    ("thresholds", "code", "status"),
    [
        ((), 0, "OK"),
        (("--warning", "-1,-1,-1"), 1, "WARNING"),
        (("--critical", "-1,-1,-1"), 2, "CRITICAL"),
    ],
)
def test_a_run_without_pika_keeps_its_verdict_and_its_record(node, thresholds, code, status):
    result = node.run("--outputs", "nagios-stdout,redis", "loadavg", *thresholds)
    assert result.returncode == code, result.stderr
    assert result.stdout.startswith(f"LOAD {status}")
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert HINT in line and "pika" in line
    shown = pipeline(node, "status", "--json")
    assert json.loads(shown.stdout)["outputs"]["broker"]["spooled"] == 1


def test_spool_health_is_critical_naming_pika(node):
    node.run("--outputs", "stdout,redis", "loadavg")
    result = node.run("--outputs", "nagios-stdout", "spool_health")
    assert result.returncode == 2, result.stdout + result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("SPOOL CRITICAL") and "pika" in first and HINT in first


@pytest.mark.parametrize("command", ["status", "topology", "replay", "ship"])
def test_every_pipeline_command_without_pika_says_what_to_install(node, command):
    node.run("--outputs", "stdout,redis", "loadavg")  # one record spooled for the broker
    result = pipeline(node, command)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    hints = [line for line in (result.stdout + result.stderr).splitlines() if HINT in line]
    assert len(hints) == 1, result.stdout + result.stderr
    assert len(result.stderr.splitlines()) <= 1, result.stderr


def test_status_without_pika_still_shows_the_spool(node):
    node.run("--outputs", "stdout,redis", "loadavg")
    result = pipeline(node, "status")
    assert result.returncode == 1
    assert "broker" in result.stdout and HINT in result.stdout
    shown = json.loads(pipeline(node, "status", "--json").stdout)
    assert HINT in shown["broker"]["error"]
