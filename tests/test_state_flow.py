"""Where the cluster state sits in the flow of a record: on the in-process bus the run takes
each record into the state before the other remote outputs; with `inline = false` the
node's shipper does; on the RabbitMQ bus the queue PREFIX.state, bound to every record,
is consumed by every shipper. Either way a state that cannot take a record keeps it for
later, and never changes the check's result.
"""

from __future__ import annotations

import json
import os

import pytest
from test_rabbitmq import node_factory, wait_until  # noqa: F401 - fixtures

from accre_monitor.config import Config
from accre_monitor.pipeline.state_sqlite import SqliteState
from accre_monitor.pipeline.wiring import build_destinations

WARN = ("loadavg", "--warning", "-1,-1,-1")


def state_of(path) -> dict:
    store = SqliteState(str(path))
    try:
        return {entry.key: entry for entry in store.entries()}
    finally:
        store.close()


def configure(cli, extra: str = "", spool: str = "") -> tuple:
    state = cli.tmp / "state" / "state.db"
    cli.write_config(
        '[monitoring]\noutputs = ["stdout"]\n'
        f'[spool]\npath = "{cli.tmp / "spool.db"}"\n{spool}'
        f'[state]\nurl = "sqlite:///{state}"\n{extra}'
    )
    return state, os.uname().nodename.split(".")[0]


def test_a_config_that_keeps_the_state_puts_it_first_among_the_destinations():
    config = Config(data={"monitoring": {"outputs": ["stdout"]}, "state": {}})
    assert [d.name for d in build_destinations(config)] == ["state", "stdout"]
    plain = Config(data={"monitoring": {"outputs": ["stdout"]}})
    assert [d.name for d in build_destinations(plain)] == ["stdout"]
    assert not plain.keeps_state


def test_a_ttl_or_an_output_that_reads_the_state_keeps_it():
    assert Config(data={"monitoring": {"ttl": 300}}).keeps_state
    assert Config(data={"checks": {"loadavg": {"ttl": 120}}}).keeps_state
    assert Config(data={"outputs": {"redis": {"min_occurrences": 3}}}).keeps_state
    assert Config(data={"outputs": {"slack": {"webhook_url": "https://x.invalid/"}}}).keeps_state
    assert Config(data={"outputs": {"redis": {}}}).defined_outputs() == ["stdout", "redis"]
    assert Config(data={"outputs": {"redis": {}}, "state": {}}).defined_outputs() == [
        "state",
        "stdout",
        "redis",
    ]


def test_the_run_takes_each_result_into_the_state(cli):
    path, node = configure(cli, extra="", spool="")
    cli.config_path.write_text(cli.config_path.read_text() + "[checks.loadavg]\nttl = 120\n")
    first = cli.run(*WARN)
    assert first.returncode == 1, first.stderr
    second = cli.run(*WARN)
    assert second.returncode == 1, second.stderr
    entry = state_of(path)[(node, "loadavg")]
    assert entry.status == "WARNING"
    assert entry.occurrences == 2
    assert entry.ttl == 120.0
    assert entry.record["ttl"] == 120


def test_a_record_older_than_the_state_never_rewinds_it(cli):
    path, node = configure(cli)
    assert cli.run(*WARN).returncode == 1
    store = SqliteState(str(path))
    try:
        old = {
            "id": "old-one",
            "node": node,
            "name": "loadavg",
            "status": "CRITICAL",
            "date": "2020-01-01T00:00:00+00:00",
        }
        (taken,) = store.take([old])
        assert not taken.applied and not taken.current
        assert store.get(node, "loadavg").status == "WARNING"
    finally:
        store.close()


def test_with_inline_false_the_shipper_takes_the_records_into_the_state(cli):
    path, node = configure(cli, spool="inline = false\n")
    assert cli.run(*WARN).returncode == 1
    assert not path.exists() or (node, "loadavg") not in state_of(path)
    replay = cli.run("replay", script="accre-pipeline")
    assert replay.returncode == 0, replay.stderr
    assert state_of(path)[(node, "loadavg")].status == "WARNING"


def test_a_state_that_cannot_be_written_keeps_the_record_and_the_verdict(cli):
    path, node = configure(cli)
    path.mkdir(parents=True)  # a directory where the state file should be: it cannot open
    result = cli.run(*WARN)
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["status"] == "WARNING"
    status = json.loads(cli.run("status", "--json", script="accre-pipeline").stdout)
    owed = status["outputs"]["state"]
    assert owed["spooled"] == 1 and owed["dead_letters"] == 0, status  # held, not refused
    assert "rejected=True" not in result.stderr
    path.rmdir()
    replay = cli.run("replay", script="accre-pipeline")
    assert replay.returncode == 0, replay.stderr
    assert state_of(path)[(node, "loadavg")].status == "WARNING"


@pytest.mark.integration
def test_on_the_broker_every_shipper_keeps_the_state_from_its_queue(node_factory, cli):  # noqa: F811
    path = cli.tmp / "state" / "state.db"
    node = node_factory(
        f'[state]\nurl = "sqlite:///{path}"\n[outputs.redis]\nurl = "redis://127.0.0.1:1"\n'
    )
    topology = node.pipeline("topology")
    assert topology.returncode == 0, topology.stderr
    assert f"{node.prefix}.state" in topology.stdout
    for _ in range(3):
        node.run(*WARN, outputs="stdout,redis", expect=1)
    assert node.queue_depth("state") == 3
    shipper = node.ship("--outputs", "state")
    host = os.uname().nodename.split(".")[0]
    wait_until(
        lambda: (
            path.exists()
            and (host, "loadavg") in state_of(path)
            and state_of(path)[(host, "loadavg")].occurrences == 3
        ),
        what="three results in the state",
    )
    assert shipper.stop() == 0
    assert node.queue_depth("state") == 0
