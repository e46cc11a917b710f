"""`accre-pipeline status` and `topology` show what the broker's queues hold, the messages
ready and those a shipper holds unacknowledged (its store down), and the consumers, against a
real RabbitMQ node and a real Redis stopped under the shipper.
"""

from __future__ import annotations

import json
import time

import pytest
import test_rabbitmq as rabbit

pytestmark = pytest.mark.integration

# the RabbitMQ tests' fixtures (the broker itself is conftest's): a node's config, a Redis store
node_factory = rabbit.node_factory
redis_store = rabbit.redis_store
wait_until = rabbit.wait_until


def queue_row(node, output: str = "redis") -> dict:
    status = node.status()
    return status["broker"]["queues"].get(f"{node.prefix}.{output}", {})


def hold_six(node, redis_store):
    """A shipper consuming the Redis queue while Redis is down, six records in its hands."""
    redis_store.down()
    shipper = node.ship()
    shipper.wait_for("connected to the broker")
    ids = [node.run()[0]["id"] for _ in range(6)]
    shipper.wait_for("store cannot take records")
    wait_until(lambda: queue_row(node).get("unacked") == 6, what="six records held")
    return shipper, ids


def test_status_counts_what_a_shipper_holds_unacked_while_its_store_is_down(
    node_factory, redis_store
):
    node = node_factory(redis_store.section())
    shipper, ids = hold_six(node, redis_store)
    status = node.status()
    queue = f"{node.prefix}.redis"
    assert status["broker"]["queues"][queue] == {
        "messages": 6,
        "ready": 0,
        "unacked": 6,
        "consumers": 1,
    }
    (answer,) = status["broker"]["shippers"]
    assert answer["pid"] == shipper.process.pid
    assert answer["outputs"]["redis"] == {"held": 6, "store_down": True}
    assert status["broker"]["unanswered"] == 0

    text = node.pipeline("status")
    line = next(row for row in text.stdout.splitlines() if row.startswith(f"{queue} "))
    assert line.split()[1:] == ["6", "0", "6", "1"], text.stdout
    assert f"pid {shipper.process.pid} holds: redis 6 (store down)" in text.stdout

    shown = node.pipeline("topology")
    assert shown.returncode == 0, shown.stderr
    assert "messages       6 (ready 0, unacked 6)  consumers   1" in shown.stdout
    assert f"pid {shipper.process.pid} holds: redis 6 (store down)" in shown.stdout

    redis_store.up()
    wait_until(lambda: sorted(redis_store.stored_ids()) == sorted(ids), what="all stored")
    wait_until(lambda: queue_row(node).get("messages") == 0, what="nothing held any more")
    assert shipper.stop() == 0


def test_a_consumer_that_does_not_answer_is_reported_and_status_stays_quick(
    node_factory, redis_store
):
    import pika

    node = node_factory(redis_store.section())
    node.run()  # declares the queues
    connection = pika.BlockingConnection(pika.URLParameters(node.broker.url))
    try:
        channel = connection.channel()
        channel.exchange_declare(f"{node.prefix}.shippers", "fanout", durable=True)
        channel.basic_qos(prefetch_count=10)
        channel.basic_consume(f"{node.prefix}.redis", lambda *args: None)
        connection.process_data_events(time_limit=0.5)  # takes the record, never acks it
        started = time.monotonic()
        status = node.status()
        assert time.monotonic() - started < 10
        text = node.pipeline("status").stdout
    finally:
        connection.close()
    row = status["broker"]["queues"][f"{node.prefix}.redis"]
    assert row["consumers"] == 1 and row["ready"] == 0
    assert status["broker"]["unanswered"] == 1
    assert status["broker"]["shippers"] == []
    assert "1 consumers did not say what they hold" in text


def test_status_json_without_shippers_keeps_its_shape(node_factory, redis_store):
    node = node_factory(redis_store.section())
    node.run()
    status = node.status()
    assert status["broker"]["queues"][f"{node.prefix}.redis"] == {
        "messages": 1,
        "ready": 1,
        "unacked": 0,
        "consumers": 0,
    }
    assert status["broker"]["shippers"] == [] and status["broker"]["unanswered"] == 0
    json.dumps(status)
