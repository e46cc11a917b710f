"""Slack decides from the cluster state, seen from the command line and from two shippers:
`min_occurrences`, a replayed old result, a silence, and a recovery posted whichever
shipper handles it. Real servers: the Slack test webhook, Redis, the NSCA daemon, RabbitMQ.
"""

from __future__ import annotations

import json
import time
import types
import uuid

import pytest
from servers import RedisServer, missing_reason
from test_outage import nsca_ids

from accre_monitor.codec import encode
from accre_monitor.pipeline.spool import Spool, spool_settings
from accre_monitor.pipeline.state_sqlite import SqliteState
from accre_monitor.record import build_record, iso_now

pytest.importorskip("urllib3")

pytestmark = pytest.mark.integration

CODES = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}

SHAPES = """
from accre_monitor import monitor_command

@monitor_command
def shaped(opts):
    \"\"\"Returns the status it is given.\"\"\"
    return opts.get("status", "OK"), {}
"""


@pytest.fixture
def redis_server():
    if missing_reason("redis"):
        pytest.skip(missing_reason("redis"))
    with RedisServer() as server:
        yield server


def redis_ids(server) -> list[str]:
    import redis

    with redis.Redis.from_url(server.url) as client:
        entries = client.xrange("accre-monitor:history")
    return [json.loads(fields[b"record"])["id"] for _id, fields in entries]


def slack_section(slack, extra: str = "") -> str:
    # one message per result (grouping has tests of its own)
    return (
        f'[outputs.slack]\nwebhook_url = "{slack.url}"\nmin_interval = 0\ntimeout = 2\n'
        f"group_wait = 0\n{extra}"
    )


def configure(cli, sections: str, outputs: list[str], node: str = "cn0001") -> None:
    cli.write_module("shapes", SHAPES)
    cli.write_config(
        f'[monitoring]\ncheck_modules = ["shapes"]\nnode = "{node}"\n'
        f"outputs = {json.dumps(outputs)}\n"
        f'[spool]\npath = "{cli.tmp / "spool.db"}"\ninline_budget = 5\n{sections}'
    )


def check(cli, status: str) -> dict:
    """One run of the site check giving `status`, delivered inline: its record."""
    result = cli.run("shaped", "--status", status)
    assert result.returncode == CODES[status], result.stderr
    assert "spooled" not in result.stderr, result.stderr
    return json.loads(result.stdout)


def titles(slack) -> list[str]:
    return [p["attachments"][0]["title"] for p in slack.delivered()]


# -- min_occurrences -------------------------------------------------------------------------


def test_min_occurrences_3_alerts_from_the_third_result_everywhere(
    cli, slack, redis_server, daemon
):
    sections = (
        slack_section(slack, 'notify = "change"\nmin_occurrences = 3\n')
        + f'[outputs.redis]\nurl = "{redis_server.url}"\nmin_occurrences = 3\n'
        + f"[outputs.nagios-nsca]\nport = {daemon.port}\ntimeout = 1\nmin_occurrences = 3\n"
    )
    configure(cli, sections, ["stdout", "slack-warning", "redis", "nagios-nsca"])
    first, second = check(cli, "CRITICAL"), check(cli, "CRITICAL")
    assert titles(slack) == [] and redis_ids(redis_server) == [] and nsca_ids(daemon) == []
    third = check(cli, "CRITICAL")
    assert titles(slack) == ["CRITICAL: shaped on cn0001"]
    back = check(cli, "OK")
    assert titles(slack)[1:] == ["OK: shaped on cn0001 (recovered from CRITICAL)"]
    assert redis_ids(redis_server) == [third["id"], back["id"]]
    assert nsca_ids(daemon) == [third["id"], back["id"]]
    # a single CRITICAL and its OK: nothing at all, anywhere
    check(cli, "CRITICAL")
    check(cli, "OK")
    assert len(titles(slack)) == 2
    assert redis_ids(redis_server) == [third["id"], back["id"]]
    assert nsca_ids(daemon) == [third["id"], back["id"]]
    assert first["id"] not in redis_ids(redis_server) + nsca_ids(daemon)
    assert second["id"] not in redis_ids(redis_server) + nsca_ids(daemon)
    status = cli.run("status", "--json", script="accre-pipeline")
    assert json.loads(status.stdout)["outputs"] == {}  # nothing held back is owed


def test_a_bad_min_occurrences_is_one_line_and_the_record_waits(cli, slack):
    configure(cli, slack_section(slack, "min_occurrences = 0\n"), ["stdout", "slack-all"])
    result = cli.run("shaped", "--status", "CRITICAL")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "min_occurrences must" in line]
    assert len(lines) == 1, result.stderr
    assert "outputs.slack.min_occurrences must be an integer from 1 to 1000, not 0" in lines[0]
    assert "Traceback" not in result.stderr
    assert slack.requests == []
    status = json.loads(cli.run("status", "--json", script="accre-pipeline").stdout)
    assert status["outputs"]["slack-all"]["spooled"] == 1


# -- a replayed old result, a silence ----------------------------------------------------------


@pytest.mark.parametrize("notify", ["every", "change"])
def test_a_replayed_old_critical_is_stored_and_posts_nothing(cli, slack, redis_server, notify):
    sections = slack_section(slack, f'notify = "{notify}"\n')
    sections += f'[outputs.redis]\nurl = "{redis_server.url}"\n'
    configure(cli, sections, ["stdout", "slack-all", "redis"])
    latest = check(cli, "OK")
    # a CRITICAL taken 30 minutes ago, still owed to both (a backlog from an outage)
    old = build_record("shaped", "CRITICAL", {}, node="cn0001", date=iso_now(time.time() - 1800))
    spool = Spool(spool_settings({"path": str(cli.tmp / "spool.db")}))
    spool.add([(old["id"], name, encode(old)) for name in ("redis", "slack-all")], "down", 0)
    spool.close()
    replayed = cli.run("replay", script="accre-pipeline")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert sorted(redis_ids(redis_server)) == sorted([latest["id"], old["id"]])  # stored
    assert [t.split(":")[0] for t in titles(slack)] == (["OK"] if notify == "every" else [])
    entry = SqliteState(str(cli.tmp / "state.db")).entries()[0]
    assert entry.record_id == latest["id"]  # never rewound


def test_a_silenced_critical_is_stored_and_reaches_nagios_but_is_not_posted(
    cli, slack, redis_server, daemon
):
    sections = slack_section(slack, 'notify = "change"\n')
    sections += f'[outputs.redis]\nurl = "{redis_server.url}"\n'
    sections += f"[outputs.nagios-nsca]\nport = {daemon.port}\ntimeout = 1\n"
    configure(cli, sections, ["stdout", "slack-warning", "redis", "nagios-nsca"])
    added = cli.run(
        *("silence", "add", "--node", "cn00*", "--expire", "3600"),
        *("--comment", "rack 1 maintenance"),
        script="accre-pipeline",
    )
    assert added.returncode == 0, added.stderr
    silence_id = added.stdout.strip()
    record = check(cli, "CRITICAL")
    assert redis_ids(redis_server) == [record["id"]]
    assert nsca_ids(daemon) == [record["id"]]
    assert slack.requests == []
    entry = SqliteState(str(cli.tmp / "state.db")).entries()[0]  # the default state
    assert entry.status == "CRITICAL" and entry.silenced == [silence_id]
    # the silence removed: the problem is said with its next result
    removed = cli.run("silence", "remove", silence_id, script="accre-pipeline")
    assert removed.returncode == 0, removed.stderr
    check(cli, "CRITICAL")
    assert titles(slack) == ["CRITICAL: shaped on cn0001"]


# -- two shippers, one state ------------------------------------------------------------------


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_two_shippers_sharing_the_state_post_a_recovery_exactly_once(cli, broker, slack, store):
    from test_rabbitmq import Shipper, wait_until

    if store == "redis":
        pytest.importorskip(
            "accre_monitor.pipeline.state_redis", reason="the Redis state store is not built in"
        )
        if missing_reason("redis"):
            pytest.skip(missing_reason("redis"))
        redis = RedisServer().start()
        url = redis.url
    else:
        redis = None
        url = f"sqlite:///{cli.tmp / 'shared' / 'state.db'}"
    prefix = f"t{uuid.uuid4().hex[:10]}"

    def config_for(machine: str) -> str:
        """One shipper's config: its own spool (as on its own machine), the shared state."""
        (cli.tmp / machine).mkdir()
        return (
            '[monitoring]\ncheck_modules = ["shapes"]\nnode = "cn0001"\n'
            'outputs = ["stdout", "slack-warning"]\n'
            f'[bus]\nkind = "rabbitmq"\nurl = "{broker.url}"\nexchange = "{prefix}"\n'
            f'queue_prefix = "{prefix}"\nbatch_wait = 0.2\nconnect_timeout = 1\n'
            f'[spool]\npath = "{cli.tmp / machine / "spool.db"}"\n'
            f'[state]\nurl = "{url}"\n' + slack_section(slack, 'notify = "change"\n')
        )

    cli.write_module("shapes", SHAPES)
    cli.write_config(config_for("a"))
    other = cli.tmp / "b.toml"
    other.write_text(config_for("b"))
    shippers = []
    try:
        first = Shipper(cli, 0)
        shippers.append(first)
        first.wait_for("connected to the broker")
        for status in ("OK", "CRITICAL"):
            result = cli.run("shaped", "--status", status)
            assert result.returncode == CODES[status], result.stderr
        wait_until(lambda: len(slack.delivered()) == 1, what="the problem posted by shipper A")
        second = Shipper(types.SimpleNamespace(tmp=cli.tmp, env={**cli.env,
                         "ACCRE_MONITOR_CONFIG": str(other)}), 1)  # fmt: skip
        shippers.append(second)
        second.wait_for("connected to the broker")
        first.kill()  # SIGKILL: shipper B takes over the Slack queue
        result = cli.run("shaped", "--status", "OK")
        assert result.returncode == 0, result.stderr
        wait_until(lambda: len(slack.delivered()) == 2, 60, "the recovery posted by shipper B")
        assert second.stop() == 0
    finally:
        for shipper in shippers:
            shipper.kill()
        if redis is not None:
            redis.close()
    assert titles(slack) == [
        "CRITICAL: shaped on cn0001",
        "OK: shaped on cn0001 (recovered from CRITICAL)",
    ]
