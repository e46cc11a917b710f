"""The RabbitMQ bus keeps order and delivers once: a backlog spooled while the broker was
unreachable goes out oldest first and at once when it answers again; a record that reaches
the broker twice reaches Nagios once; a retry waits its own backoff, never another
record's. Against a real RabbitMQ node, the NSCA daemon and the Elasticsearch test server.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from servers import free_port
from test_outage import ElasticsearchStore, nsca_ids
from test_rabbitmq import Node, wait_until

from accre_monitor.codec import encode
from accre_monitor.pipeline.spool import Spool, spool_settings
from accre_monitor.record import build_record, iso_now

pytestmark = pytest.mark.integration

# no store is written to where only the broker's queue is looked at
UNUSED_REDIS = '[outputs.redis]\nurl = "redis://127.0.0.1:1/0"\n'


@pytest.fixture
def nodes(cli, broker):
    made = []

    def make(sections: str, spool: str = "") -> Node:
        node = Node(cli, broker, sections, spool=spool)
        made.append(node)
        shown = node.pipeline("topology")  # the queues exist before anything is published
        assert shown.returncode == 0, shown.stdout + shown.stderr
        return node

    yield make
    for node in made:
        node.close()


def unreachable(node) -> None:
    """The broker refuses connections, as a stopped one does (the config names a closed port)."""
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    text = node.cli.config_path.read_text()
    node.cli.config_path.write_text(text.replace(f'url = "{node.broker.url}"', f'url = "{dead}"'))


def reachable(node) -> None:
    text = node.cli.config_path.read_text()
    node.cli.config_path.write_text(
        re.sub(r'^url = "amqp://[^"]*"$', f'url = "{node.broker.url}"', text, flags=re.M)
    )


def spooled_for_broker(node) -> int:
    return node.status()["outputs"].get("broker", {}).get("spooled", 0)


def queued_ids(node, output: str) -> list[str]:
    """The record ids in the output's queue, head first (taken off the queue)."""
    return [json.loads(body)["id"] for _, body in node.messages(output, take=True)]


# -- order -----------------------------------------------------------------------------------


def test_a_run_after_an_outage_puts_its_record_behind_the_spooled_ones(nodes):
    node = nodes(UNUSED_REDIS)
    unreachable(node)
    ids = [node.run()[0]["id"] for _ in range(3)]
    assert spooled_for_broker(node) == 3
    reachable(node)
    fourth, stderr = node.run()
    assert spooled_for_broker(node) == 0, stderr
    assert queued_ids(node, "redis") == [*ids, fourth["id"]]


def test_a_backlog_left_by_an_outage_is_forwarded_at_once_oldest_first(nodes):
    # the spool's backoff is seconds long: forwarded one by one as each comes due, the
    # backlog would trickle out over several replays
    node = nodes(UNUSED_REDIS, spool="backoff_base = 2\nbackoff_max = 2\n")
    unreachable(node)
    ids = [node.run()[0]["id"] for _ in range(5)]
    assert spooled_for_broker(node) == 5
    reachable(node)
    back = time.monotonic()
    forwarded = []
    while True:  # what a timer does: replay what is due, again and again
        result = node.pipeline("replay", "--due")
        counts = re.findall(r"broker: delivered (\d+)", result.stdout)
        assert counts, result.stdout + result.stderr
        if int(counts[0]):
            forwarded.append(int(counts[0]))
        if result.returncode == 0:
            break
        assert time.monotonic() - back < 20, result.stdout + result.stderr
        time.sleep(0.1)
    assert forwarded == [5]  # all in one go, once the broker had taken the first
    assert time.monotonic() - back < 10
    assert queued_ids(node, "redis") == ids


def test_every_record_spooled_for_the_broker_is_forwarded_even_one_older_than_the_last(nodes):
    # two services of one check on a node (disk_usage for /home and for /scratch) end
    # together: the one that made its record first may reach the spool second. The broker
    # carries every record to stores that keep them all: none may be taken for a duplicate.
    node = nodes(UNUSED_REDIS)
    now = time.time()
    newer = build_record("disk_usage", "OK", {"/scratch": 50}, date=iso_now(now))
    older = build_record("disk_usage", "OK", {"/home": 40}, date=iso_now(now - 1))
    spool = Spool(spool_settings({"path": str(node.cli.tmp / "spool.db")}))
    try:
        for record in (newer, older):
            spool.add([(record["id"], "broker", encode(record))], error="timed out", attempts=0)
            result = node.pipeline("replay")
            assert "broker: delivered 1, still spooled 0" in result.stdout, result.stdout
    finally:
        spool.close()
    assert queued_ids(node, "redis") == [newer["id"], older["id"]]


# -- at most once ----------------------------------------------------------------------------


def nsca_section(daemon) -> str:
    return f"[outputs.nagios-nsca]\nport = {daemon.port}\ntimeout = 2\n"


def publish_twice_then_once_more(node, daemon) -> tuple[dict, dict]:
    """A record published twice, then a later one; a shipper delivers them all to NSCA."""
    # a run that gave up on a publish (a blocked broker) spools the record, yet the broker
    # may have taken it: forwarded from the spool later, it arrives a second time
    record = build_record("loadavg", "OK", {"load1": 0.5})
    for _ in range(2):
        node.publish("OK.loadavg", encode(record), record["id"])
    later = build_record("loadavg", "OK", {"load1": 0.7})
    node.publish("OK.loadavg", encode(later), later["id"])
    shipper = node.ship("--outputs", "nagios-nsca")
    wait_until(lambda: later["id"] in nsca_ids(daemon), what="the later record sent")
    assert shipper.stop() == 0
    return record, later


def test_a_record_that_reaches_the_broker_twice_reaches_nagios_once(nodes, daemon):
    node = nodes(nsca_section(daemon))
    record, later = publish_twice_then_once_more(node, daemon)
    assert nsca_ids(daemon) == [record["id"], later["id"]]
    assert node.status()["outputs"]["nagios-nsca"]["duplicates"] == 1


def test_status_shows_the_duplicates_skipped_in_its_table(nodes, daemon):
    node = nodes(nsca_section(daemon))
    publish_twice_then_once_more(node, daemon)
    table = node.pipeline("status").stdout.splitlines()
    headers = [line.split() for line in table if line.startswith("output ")]
    rows = [line.split() for line in table if line.startswith("nagios-nsca ")]
    assert headers and rows, table
    assert "duplicates" in headers[0], table
    assert rows[0][headers[0].index("duplicates")] == "1", table


# -- retries ---------------------------------------------------------------------------------


def test_a_retry_waits_its_own_backoff_not_that_of_a_record_refused_more_often(nodes):
    store = ElasticsearchStore()
    try:
        node = nodes(store.section(timeout=5), spool="backoff_base = 0.5\nbackoff_max = 60\n")
        shipper = node.ship("--outputs", "elasticsearch")
        shipper.wait_for("connected to the broker")
        store.server.fail_items(5, status=429)  # the store refuses this one item five times
        first, _ = node.run(outputs="stdout,elasticsearch")
        # refused at once, then after 0.5, 1, 2 and 4 s: it now waits 8 s
        wait_until(lambda: store.server.request_count("/_bulk") >= 5, what="five refusals")
        store.server.fail_items(1, status=429)  # and the next one once
        published = time.monotonic()
        second, _ = node.run(outputs="stdout,elasticsearch")
        wait_until(lambda: second["id"] in store.stored_ids(), what="the second record stored")
        waited = time.monotonic() - published
        assert waited < 3, f"the second record waited {waited:.1f} s"
        assert first["id"] not in store.stored_ids()  # still waiting its long backoff
        assert shipper.stop() == 0
    finally:
        store.close()
