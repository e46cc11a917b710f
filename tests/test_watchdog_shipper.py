"""The watchdog inside `accre-pipeline ship`, against real servers: a check that stops
reporting gives one stale record in the store and in the state, and its next result replaces
it; a silent node gives one keepalive record and no stale record per check, and its next
result recovers it; two shippers on one RabbitMQ and one state fire each stale record once,
also when the one acting is killed; SIGTERM stops the watchdog and frees its lease.
"""

from __future__ import annotations

import json
import re
import signal
import time
import uuid

import pytest
import test_rabbitmq
from test_rabbitmq import Node, Shipper, wait_until

from accre_monitor.pipeline.state_sqlite import SqliteState
from accre_monitor.pipeline.state_store import open_state
from accre_monitor.record import iso_now, new_id

pytestmark = pytest.mark.integration

redis_store = test_rabbitmq.redis_store  # the fixture, shared

STALE_TEXT = re.compile(r"^no result for (\S+) from (\S+) since \d\d:\d\d:\d\d \(ttl (\S+) s\)$")


def stored(redis_store) -> list[dict]:
    """Every record in the Redis store's history, oldest first."""
    import redis

    with redis.Redis.from_url(redis_store.server.url) as client:
        entries = client.xrange("accre-monitor:history")
    return [json.loads(fields[b"record"]) for _id, fields in entries]


def stale_records(redis_store, check: str | None = None) -> list[dict]:
    return [
        r
        for r in stored(redis_store)
        if r.get("stale") and r["name"] != "keepalive" and check in (None, r["name"])
    ]


def keepalives(redis_store) -> list[dict]:
    return [r for r in stored(redis_store) if r["name"] == "keepalive"]


def lease_free(url: str, key_prefix: str = "accre-monitor") -> bool:
    """Whether no watchdog holds the lease now (asked through the store, then let go)."""
    store = open_state({"url": url, "key_prefix": key_prefix})
    try:
        free = store.acquire_lease("watchdog", "the test", 1.0)
        if free:
            store.release_lease("watchdog", "the test")
        return free
    finally:
        store.close()


def sqlite_url(cli) -> str:
    return f"sqlite:///{cli.tmp / 'state.db'}"


def in_process_config(cli, redis_store, state: str, checks: str = "") -> None:
    cli.write_config(
        '[monitoring]\noutputs = ["stdout", "redis"]\nnode = "n1"\n'
        f'[spool]\npath = "{cli.tmp / "spool.db"}"\n'
        "[bus]\nbatch_wait = 0.1\n"
        f"[state]\nwatchdog_interval = 0.2\nlease = 2\n{state}"
        f"{redis_store.section()}{checks}"
    )


def run(cli, check: str) -> dict:
    result = cli.run(check)
    assert result.returncode in (0, 1, 2), result.stderr
    return json.loads(result.stdout)


def test_a_check_that_stops_reporting_is_stale_once_in_the_store_and_the_state(cli, redis_store):
    checks = "[checks.loadavg]\nttl = 1\n[checks.memory]\nttl = 4\n"
    in_process_config(cli, redis_store, "", checks)
    last = run(cli, "loadavg")
    run(cli, "memory")
    shipper = Shipper(cli, 0)
    try:
        [stale] = wait_until(lambda: stale_records(redis_store, "loadavg"), what="stale record")
        # the other check's gap, 3 s later: rounds went by meanwhile
        wait_until(lambda: stale_records(redis_store, "memory"), what="the later stale record")
        assert len(stale_records(redis_store, "loadavg")) == 1
        assert stale["node"] == "n1" and stale["status"] == "UNKNOWN"
        assert stale["id"] != last["id"] and stale["data"]["last_result"] == last["date"]
        assert STALE_TEXT.match(stale["short"]).groups() == ("loadavg", "n1", "1")
        state = SqliteState(str(cli.tmp / "state.db"))
        entry = state.get("n1", "loadavg")
        assert entry.stale and entry.status == "UNKNOWN" and entry.record_id == stale["id"]

        fresh = run(cli, "loadavg")  # its next result replaces it
        entry = state.get("n1", "loadavg")
        assert entry.record_id == fresh["id"] and not entry.stale
        assert fresh["id"] in [r["id"] for r in stored(redis_store)]
        state.close()
    finally:
        assert shipper.stop() == 0, shipper.text()
    assert "watchdog stopped" in shipper.text()
    assert lease_free(sqlite_url(cli))  # released: another takes over at once


def test_a_silent_node_gives_one_keepalive_no_stale_checks_and_recovers(cli, redis_store):
    checks = "[checks.loadavg]\nttl = 1\n[checks.memory]\nttl = 1\n"
    in_process_config(cli, redis_store, "node_ttl = 3\n", checks)
    run(cli, "loadavg")
    run(cli, "memory")  # reported after loadavg: the node is alive when loadavg comes due
    shipper = Shipper(cli, 0)
    try:
        [keepalive] = wait_until(lambda: keepalives(redis_store), what="keepalive record")
        assert keepalive["node"] == "n1" and keepalive["status"] == "CRITICAL"
        assert keepalive["short"].startswith("no result from n1 since ")
        assert stale_records(redis_store) == []  # one alert for the node, none per check

        run(cli, "loadavg")  # its next result of any check recovers the keepalive
        found = wait_until(lambda: keepalives(redis_store)[1:], what="recovered keepalive")
        assert [(r["status"], r["short"]) for r in found] == [("OK", "n1 reports again")]
        state = SqliteState(str(cli.tmp / "state.db"))
        assert state.get("n1", "keepalive").status == "OK"
        state.close()
    finally:
        assert shipper.stop() == 0, shipper.text()
    assert stale_records(redis_store) == []


def test_the_shipper_runs_the_watchdog_when_the_state_is_all_it_ships(cli):
    cli.write_config(
        '[monitoring]\noutputs = ["stdout"]\nnode = "n1"\n'
        f'[spool]\npath = "{cli.tmp / "spool.db"}"\n[bus]\nbatch_wait = 0.1\n'
        "[state]\nwatchdog_interval = 0.2\n[checks.loadavg]\nttl = 1\n"
    )
    run(cli, "loadavg")
    shipper = Shipper(cli, 0)
    try:
        state = SqliteState(str(cli.tmp / "state.db"))
        wait_until(lambda: state.get("n1", "loadavg").stale, what="the check called stale")
        state.close()
    finally:
        assert shipper.stop() == 0, shipper.text()


# -- two shippers on one broker and one state ------------------------------------------------


def probe(node: str, ttl: float) -> bytes:
    record = {
        "id": new_id(),
        "node": node,
        "date": iso_now(),
        "name": "probe",
        "status": "OK",
        "data": {},
        "ttl": ttl,
    }
    return json.dumps(record).encode()


@pytest.fixture(params=["sqlite", "redis"])
def shared_state(request, cli, redis_store) -> str:
    """The URL of the state the shippers share: a SQLite file on this machine, or Redis."""
    if request.param == "sqlite":
        return sqlite_url(cli)
    try:
        import accre_monitor.pipeline.state_redis  # noqa: F401
    except ImportError:
        pytest.skip("no Redis state store in this tree (pipeline/state_redis.py)")
    return redis_store.server.url


def test_two_shippers_fire_each_stale_record_once_even_when_the_active_one_is_killed(
    cli, broker, redis_store, shared_state
):
    prefix = uuid.uuid4().hex[:8]
    node = Node(
        cli,
        broker,
        f'[state]\nurl = "{shared_state}"\nkey_prefix = "{prefix}"\n'
        "watchdog_interval = 0.2\nlease = 1.5\n" + redis_store.section(),
    )
    try:
        assert node.pipeline("topology").returncode == 0
        shippers = [node.ship(), node.ship()]
        for shipper in shippers:
            shipper.wait_for("watchdog started")
        for number in range(20):
            node.publish("OK.probe", probe(f"n{number:02}", 1))
        wait_until(lambda: len(stale_records(redis_store)) >= 20, what="20 stale records")
        node.publish("OK.probe", probe("canary", 3))  # its gap comes after many rounds
        wait_until(
            lambda: any(r["node"] == "canary" for r in stale_records(redis_store)),
            what="the canary's stale record",
        )
        nodes = sorted(r["node"] for r in stale_records(redis_store))
        assert nodes == sorted([f"n{number:02}" for number in range(20)] + ["canary"])

        # one watchdog acted, the other stood by
        [active] = [s for s in shippers if "watchdog acting" in s.text()]
        assert not lease_free(shared_state, prefix)
        # the acting one dies; the other takes over once its lease runs out
        active.process.send_signal(signal.SIGKILL)
        active.process.wait(timeout=10)
        for number in range(5):
            node.publish("OK.probe", probe(f"m{number}", 1))
        wait_until(lambda: len(stale_records(redis_store)) >= 26, what="5 more stale records")
        node.publish("OK.probe", probe("canary2", 2))
        wait_until(
            lambda: any(r["node"] == "canary2" for r in stale_records(redis_store)),
            what="the second canary's stale record",
        )
        records = stale_records(redis_store)
        assert len(records) == 27
        assert len({r["node"] for r in records}) == 27  # each node and check once
        [survivor] = [s for s in shippers if s is not active]
        assert "watchdog acting" in survivor.text()
        assert survivor.stop() == 0, survivor.text()
        assert lease_free(shared_state, prefix)
    finally:
        node.close()


def test_the_watchdog_stops_cleanly_on_sigterm(cli, redis_store):
    in_process_config(cli, redis_store, "")
    shipper = Shipper(cli, 0)
    shipper.wait_for("watchdog acting")
    started = time.monotonic()
    assert shipper.stop() == 0
    assert time.monotonic() - started < 10
    assert "watchdog stopped" in shipper.text()
    assert lease_free(sqlite_url(cli))
