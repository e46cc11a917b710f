"""The RabbitMQ bus and the shipper, against a real RabbitMQ node, Redis and the
Elasticsearch test server, counting every record id in the stores.

One broker serves the module; every test has an exchange and queues of its own. Tests that
need an outage of the broker start a node of their own.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
import uuid

import pytest
from conftest import console_script
from servers import RabbitServer, missing_reason
from test_outage import SHAPES, ElasticsearchStore, RedisStore

pytestmark = pytest.mark.integration

WARN = ("loadavg", "--warning", "-1,-1,-1")


@pytest.fixture
def redis_store():
    if missing_reason("redis"):
        pytest.skip(missing_reason("redis"))
    store = RedisStore()
    yield store
    store.close()


def wait_until(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Node:
    """A node's config for the RabbitMQ bus, with queues of its own on the shared broker."""

    def __init__(self, cli, broker, store_sections: str, *, bus_extra: str = "", spool=""):
        self.cli = cli
        self.prefix = f"t{uuid.uuid4().hex[:10]}"
        self.broker = broker
        cli.write_config(
            '[monitoring]\noutputs = ["stdout"]\n'
            f'[bus]\nkind = "rabbitmq"\nurl = "{broker.url}"\nexchange = "{self.prefix}"\n'
            f'queue_prefix = "{self.prefix}"\nbatch_wait = 0.2\nconnect_timeout = 1\n{bus_extra}'
            f'[spool]\npath = "{cli.tmp / "spool.db"}"\ninline_budget = 3\n{spool}'
            f"{store_sections}"
        )
        self.shippers: list[Shipper] = []

    def run(self, *args, outputs="stdout,redis", expect=0):
        result = self.cli.run("--outputs", outputs, *(args or ("loadavg",)))
        assert result.returncode == expect, result.stderr
        return json.loads(result.stdout), result.stderr

    def pipeline(self, *args):
        return self.cli.run(*args, script="accre-pipeline")

    def status(self) -> dict:
        result = self.pipeline("status", "--json")
        return json.loads(result.stdout)

    def ship(self, *args) -> Shipper:
        shipper = Shipper(self.cli, len(self.shippers), *args)
        self.shippers.append(shipper)
        return shipper

    @contextlib.contextmanager
    def channel(self):
        """A channel of a connection of its own to the broker, closed after."""
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(self.broker.url))
        try:
            yield connection.channel()
        finally:
            connection.close()

    def queue_depth(self, output: str, suffix: str = "") -> int:
        with self.channel() as channel:
            ok = channel.queue_declare(f"{self.prefix}.{output}{suffix}", passive=True)
            return ok.method.message_count

    def publish(self, routing_key: str, body: bytes, message_id: str | None = None) -> None:
        """Publish as any program may: the body to the node's exchange, persistent."""
        import pika

        properties = pika.BasicProperties(
            delivery_mode=2, content_type="application/json", message_id=message_id
        )
        with self.channel() as channel:
            channel.confirm_delivery()
            channel.basic_publish(self.prefix, routing_key, body, properties, mandatory=True)

    def messages(self, queue: str, *, take: bool = False) -> list[tuple]:
        """(properties, body) of every message in the node's `queue` (`redis`, `redis.dead`),
        head first: taken off the queue if `take`, else left there (never acknowledged)."""
        name, found = f"{self.prefix}.{queue}", []
        with self.channel() as channel:
            while True:
                method, properties, body = channel.basic_get(name, auto_ack=take)
                if method is None:
                    return found
                found.append((properties, body))

    def close(self):
        for shipper in self.shippers:
            shipper.kill()


class Shipper:
    """`accre-pipeline ship` as a daemon, its log in a file to wait on."""

    def __init__(self, cli, number: int, *args: str) -> None:
        self.log = cli.tmp / f"ship-{number}.log"
        self.handle = open(self.log, "wb")  # noqa: SIM115 - closed in stop/kill
        self.process = subprocess.Popen(
            [console_script("accre-pipeline"), "ship", *args],
            stdout=subprocess.DEVNULL,
            stderr=self.handle,
            stdin=subprocess.DEVNULL,
            env=cli.env,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, count: int = 1, timeout: float = 30.0) -> None:
        wait_until(
            lambda: self.text().count(text) >= count or self.process.poll() is not None,
            timeout,
            f"{text!r} in the shipper's log",
        )
        assert self.text().count(text) >= count, self.text()

    def stop(self, timeout: float = 40.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        self.handle.close()
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.handle.close()


@pytest.fixture
def node_factory(cli, broker):
    made = []

    def make(*args, **kw):
        node = Node(cli, broker, *args, **kw)
        made.append(node)
        return node

    yield make
    for node in made:
        node.close()


def test_the_cli_publishes_once_and_the_shipper_delivers(node_factory, redis_store):
    node = node_factory(redis_store.section())
    first, stderr = node.run()
    second, _ = node.run(*WARN, expect=1)
    assert "spooled" not in stderr
    assert redis_store.stored_ids() == []  # the command line never writes to a store
    assert node.queue_depth("redis") == 2
    shipper = node.ship()
    wait_until(lambda: len(redis_store.stored_ids()) == 2, what="both records stored")
    assert sorted(redis_store.stored_ids()) == sorted([first["id"], second["id"]])
    assert shipper.stop() == 0
    assert "batch" in shipper.text() and "delivered=2" in shipper.text()
    assert node.queue_depth("redis") == 0


def test_the_message_is_the_record_itself(node_factory, redis_store):
    import pika

    node = node_factory(redis_store.section())
    record, _ = node.run(*WARN, expect=1)
    connection = pika.BlockingConnection(pika.URLParameters(node.broker.url))
    try:
        method, properties, body = connection.channel().basic_get(f"{node.prefix}.redis")
    finally:
        connection.close()
    assert json.loads(body) == record
    assert method.routing_key == "WARNING.loadavg"
    assert properties.message_id == record["id"]
    assert properties.delivery_mode == 2
    assert properties.content_type == "application/json"


def test_a_filter_stage_is_a_binding_and_topology_shows_it(node_factory, redis_store):
    node = node_factory(redis_store.section() + 'min_severity = "WARNING"\n')
    node.run()  # OK: no queue wants it
    warned, _ = node.run(*WARN, expect=1)
    assert node.queue_depth("redis") == 1
    shown = node.pipeline("topology")
    assert shown.returncode == 0, shown.stderr
    assert "bindings: WARNING.#, CRITICAL.#, UNKNOWN.#" in shown.stdout
    assert f"{node.prefix}.redis " in shown.stdout and "messages       1" in shown.stdout
    shipper = node.ship()
    wait_until(lambda: redis_store.stored_ids() == [warned["id"]], what="the warning stored")
    assert shipper.stop() == 0


def test_without_a_broker_records_are_spooled_and_forwarded_once(node_factory, redis_store):
    node = node_factory(redis_store.section())
    node.run()  # declares the topology on the live broker
    node.broker.stop()
    try:
        spooled = [node.run(*WARN, expect=1)[0]["id"] for _ in range(2)]
        status = node.status()
        assert status["outputs"]["broker"]["spooled"] == 2
        assert "broker" in status and status["broker"]["error"]
    finally:
        node.broker.start()
    healthy, stderr = node.run()  # publishes, then forwards the backlog in its time left
    assert node.status()["outputs"].get("broker", {}).get("spooled", 0) == 0
    shipper = node.ship()
    everything = sorted([*spooled, healthy["id"]])
    wait_until(lambda: len(redis_store.stored_ids()) >= 4, what="all records stored")
    assert shipper.stop() == 0
    ids = redis_store.stored_ids()
    assert len(ids) == len(set(ids)) == 4
    assert set(everything) <= set(ids)


def test_replay_and_the_node_shipper_forward_what_was_spooled_for_the_broker(
    node_factory, redis_store
):
    node = node_factory(redis_store.section())
    node.run()
    node.broker.stop()
    try:
        first = node.run(*WARN, expect=1)[0]["id"]
    finally:
        node.broker.start()
    replayed = node.pipeline("replay")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "broker: delivered 1" in replayed.stdout
    node.broker.stop()
    try:
        second = node.run(*WARN, expect=1)[0]["id"]
    finally:
        node.broker.start()
    shipper = node.ship()  # forwards the spool to the broker, and consumes the queue
    wait_until(lambda: len(redis_store.stored_ids()) >= 3, what="records stored")
    assert shipper.stop() == 0
    assert set(redis_store.stored_ids()) >= {first, second}
    assert node.status()["outputs"].get("broker", {}).get("spooled", 0) == 0


def test_a_store_down_while_shipping_acks_nothing_and_loses_nothing(node_factory, redis_store):
    node = node_factory(redis_store.section())
    node.cli.env["ACCRE_MONITOR_DEBUG"] = "1"
    redis_store.down()
    first = node.ship()
    first.wait_for("connected to the broker")
    ids = [node.run()[0]["id"] for _ in range(5)]
    first.wait_for("store cannot take records")
    first.kill()  # had it acked anything, the broker would not give it back
    wait_until(lambda: node.queue_depth("redis") == 5, what="all five back in the queue")
    second = node.ship()
    second.wait_for("batch held for a retry", count=3)
    started = time.monotonic()
    second.wait_for("batch held for a retry", count=4, timeout=60)
    # backing off, not spinning: the fourth retry comes seconds after the third
    assert time.monotonic() - started > 1.0
    redis_store.up()
    wait_until(lambda: sorted(redis_store.stored_ids()) == sorted(ids), what="all stored")
    second.wait_for("store is taking records again")
    assert second.stop() == 0


def test_a_poison_message_is_dead_lettered_with_its_reason_and_the_rest_flows(
    node_factory, redis_store
):
    import pika

    node = node_factory(redis_store.section())
    before, _ = node.run()
    connection = pika.BlockingConnection(pika.URLParameters(node.broker.url))
    try:
        channel = connection.channel()
        channel.basic_publish(node.prefix, "OK.loadavg", b"{this is not json")
    finally:
        connection.close()
    after, _ = node.run()
    shipper = node.ship()
    wait_until(lambda: len(redis_store.stored_ids()) == 2, what="the good records stored")
    assert sorted(redis_store.stored_ids()) == sorted([before["id"], after["id"]])
    wait_until(lambda: node.queue_depth("redis", ".dead") == 1, what="the dead letter")
    assert shipper.stop() == 0
    connection = pika.BlockingConnection(pika.URLParameters(node.broker.url))
    try:
        method, properties, body = connection.channel().basic_get(f"{node.prefix}.redis.dead")
    finally:
        connection.close()
    assert body == b"{this is not json"
    assert "poison record" in properties.headers["x-accre-reason"]
    assert properties.headers["x-accre-output"] == "redis"


def test_a_record_refused_for_good_goes_to_the_dead_letter_queue(node_factory):
    store = ElasticsearchStore(install_template=False)
    try:
        node = node_factory(store.section(), spool="max_attempts = 2\nbackoff_base = 0.2\n")
        node.cli.write_module("shapes", SHAPES)
        text = node.cli.config_path.read_text()
        node.cli.config_path.write_text(
            text.replace("[monitoring]\n", '[monitoring]\ncheck_modules = ["shapes"]\n')
        )
        run = lambda payload: node.run(  # noqa: E731
            "--options", payload, "shaped", outputs="stdout,elasticsearch"
        )[0]["id"]
        first = run('{"v": {"deep": 1}}')
        refused = run('{"v": "flat"}')
        later = run('{"v": {"deep": 2}}')
        shipper = node.ship()
        wait_until(lambda: node.queue_depth("elasticsearch", ".dead") == 1, what="a dead letter")
        assert shipper.stop() == 0
        assert sorted(store.stored_ids()) == sorted([first, later])
        assert refused not in store.stored_ids()
        assert "dead-lettered" in shipper.text() and "retried=1" in shipper.text()
    finally:
        store.close()


def test_the_shipper_killed_mid_batch_redelivers_and_nothing_is_stored_twice(node_factory):
    store = ElasticsearchStore()
    try:
        node = node_factory(store.section().replace("timeout = 1\n", "timeout = 10\n"))
        ids = [node.run(outputs="stdout,elasticsearch")[0]["id"] for _ in range(20)]
        store.server.delay(2)
        first = node.ship()
        wait_until(lambda: store.server.request_count("/_bulk") >= 1, what="a bulk request")
        first.kill()  # SIGKILL while the store holds the batch
        store.server.delay(0)
        second = node.ship()
        wait_until(lambda: len(store.stored_ids()) >= 20, what="every record stored")
        assert second.stop() == 0
        stored = store.stored_ids()
        assert sorted(stored) == sorted(ids)  # each once
    finally:
        store.close()


def test_a_store_slower_than_the_heartbeat_keeps_the_connection(node_factory):
    store = ElasticsearchStore()
    try:
        node = node_factory(
            store.section().replace("timeout = 1\n", "timeout = 10\n"), bus_extra="heartbeat = 1\n"
        )
        ids = [node.run(outputs="stdout,elasticsearch")[0]["id"] for _ in range(3)]
        store.server.delay(4)  # four heartbeat intervals for one batch
        shipper = node.ship()
        wait_until(lambda: len(store.stored_ids()) == 3, timeout=40, what="the slow batch")
        store.server.delay(0)
        later = node.run(outputs="stdout,elasticsearch")[0]["id"]
        wait_until(lambda: len(store.stored_ids()) == 4, what="a record after the slow batch")
        assert shipper.stop() == 0
        assert sorted(store.stored_ids()) == sorted([*ids, later])
        assert "connection to the broker lost" not in shipper.text()
        assert shipper.text().count("connected to the broker") == 1
    finally:
        store.close()


def test_acking_one_outputs_batch_never_acks_what_another_output_holds(node_factory, redis_store):
    # one channel carries both queues, so their delivery tags interleave: the Redis batches
    # are acked (several at once where that is safe) while the Elasticsearch records, whose
    # store is down, are held unacked below them
    store = ElasticsearchStore()
    try:
        store.down()
        node = node_factory(redis_store.section() + store.section())
        first = node.ship()
        first.wait_for("connected to the broker")
        ids = [node.run(outputs="stdout,redis,elasticsearch")[0]["id"] for _ in range(6)]
        wait_until(lambda: sorted(redis_store.stored_ids()) == sorted(ids), what="Redis has all")
        first.wait_for("store cannot take records")
        first.kill()  # whatever it acked is gone from the queue for good
        wait_until(
            lambda: node.queue_depth("elasticsearch") == 6, what="every record back in the queue"
        )
        store.up()
        second = node.ship()
        wait_until(lambda: sorted(store.stored_ids()) == sorted(ids), what="Elasticsearch has all")
        assert second.stop() == 0
        assert sorted(redis_store.stored_ids()) == sorted(ids)
    finally:
        store.close()


def test_several_shippers_share_the_queue(node_factory, redis_store):
    node = node_factory(redis_store.section())
    ids = [node.run()[0]["id"] for _ in range(30)]
    shippers = [node.ship(), node.ship()]
    wait_until(lambda: len(redis_store.stored_ids()) == 30, what="every record stored")
    assert [s.stop() for s in shippers] == [0, 0]
    assert sorted(redis_store.stored_ids()) == sorted(ids)


def test_no_broker_and_no_inline_delivery_the_cli_only_spools(cli, redis_store):
    cli.write_config(
        f'[spool]\npath = "{cli.tmp / "spool.db"}"\ninline = false\n{redis_store.section()}'
    )
    ids = [
        json.loads(cli.run("--outputs", "stdout,redis", "loadavg").stdout)["id"] for _ in range(5)
    ]
    assert redis_store.stored_ids() == []
    spooled = json.loads(cli.run("status", "--json", script="accre-pipeline").stdout)
    assert spooled["outputs"]["redis"]["spooled"] == 5
    node = Node.__new__(Node)
    node.cli, node.shippers = cli, []
    shipper = Shipper(cli, 0)
    try:
        wait_until(lambda: sorted(redis_store.stored_ids()) == sorted(ids), what="all shipped")
        later = json.loads(cli.run("--outputs", "stdout,redis", "loadavg").stdout)["id"]
        wait_until(lambda: later in redis_store.stored_ids(), what="a later record shipped")
        assert shipper.stop() == 0
    finally:
        shipper.kill()
    stored = redis_store.stored_ids()
    assert len(stored) == len(set(stored)) == 6


SPOOL_ONLY_PROBE = """
import sys
from accre_monitor.cli import main
sys.argv = ["accre-monitor", "--outputs", "stdout,redis", "loadavg"]
try:
    main()
except SystemExit:
    pass
print(sorted(name for name in ("orjson", "pika", "redis") if name in sys.modules), file=sys.stderr)
"""


def test_spooling_for_the_broker_imports_no_codec_and_no_client(cli):
    from servers import free_port

    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    cli.write_config(
        f'[bus]\nkind = "rabbitmq"\nurl = "{dead}"\n'
        f'[spool]\npath = "{cli.tmp / "spool.db"}"\ninline = false\n'
    )
    done = subprocess.run(
        [sys.executable, "-P", "-c", SPOOL_ONLY_PROBE],
        capture_output=True,
        text=True,
        env=cli.env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["name"] == "loadavg"
    assert done.stderr.strip().splitlines()[-1] == "[]"
    status = json.loads(cli.run("status", "--json", script="accre-pipeline").stdout)
    assert status["outputs"]["broker"]["spooled"] == 1


def test_the_broker_restarting_under_load_loses_nothing(cli, redis_store):
    if missing_reason("rabbit"):
        pytest.skip(missing_reason("rabbit"))
    with RabbitServer() as private:
        node = Node(cli, private, redis_store.section())
        try:
            shipper = node.ship()
            shipper.wait_for("connected to the broker")
            ids = [node.run()[0]["id"] for _ in range(10)]
            private.restart()
            ids += [node.run()[0]["id"] for _ in range(10)]
            shipper.wait_for("connected to the broker", count=2, timeout=60)
            wait_until(
                lambda: sorted(redis_store.stored_ids()) == sorted(ids),
                timeout=60,
                what="every record stored",
            )
            assert shipper.process.poll() is None  # it kept running
            assert "reconnecting" in shipper.text()
            assert shipper.stop() == 0
        finally:
            node.close()


def test_replay_tries_what_is_backing_off_and_due_only_what_is_due(cli, redis_store):
    cli.write_config(
        f'[spool]\npath = "{cli.tmp / "spool.db"}"\nbackoff_base = 600\n{redis_store.section()}'
    )
    redis_store.down()
    record = json.loads(cli.run("--outputs", "stdout,redis", "loadavg").stdout)
    redis_store.up()
    due = cli.run("replay", "--due", script="accre-pipeline")
    assert due.returncode == 1
    assert "delivered 0" in due.stdout and "1 backing off, the first due in" in due.stdout
    assert redis_store.stored_ids() == []
    now = cli.run("replay", script="accre-pipeline")
    assert now.returncode == 0, now.stdout
    assert "delivered 1" in now.stdout
    assert redis_store.stored_ids() == [record["id"]]


def test_the_urls_of_a_cluster_are_tried_in_turn(cli, broker, redis_store):
    from servers import free_port

    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    node = Node(cli, broker, redis_store.section())
    text = cli.config_path.read_text().replace(
        f'url = "{broker.url}"', f'url = ["{dead}", "{broker.url}"]'
    )
    cli.config_path.write_text(text)
    try:
        record, stderr = node.run()
        assert "spooled" not in stderr
        assert node.queue_depth("redis") == 1
        shipper = node.ship()
        wait_until(lambda: redis_store.stored_ids() == [record["id"]], what="stored")
        assert shipper.stop() == 0
    finally:
        node.close()


def test_quorum_queues_on_request(node_factory, redis_store):
    import pika

    node = node_factory(redis_store.section(), bus_extra='queue_type = "quorum"\n')
    shown = node.pipeline("topology")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "queue type: quorum" in shown.stdout
    connection = pika.BlockingConnection(pika.URLParameters(node.broker.url))
    try:
        channel = connection.channel()
        # redeclaring as classic is refused by the broker: the queue really is a quorum queue
        with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="x-queue-type"):
            channel.queue_declare(
                f"{node.prefix}.redis",
                durable=True,
                arguments={"x-dead-letter-exchange": f"{node.prefix}.redis.dead"},
            )
    finally:
        if connection.is_open:
            connection.close()
    record, _ = node.run()
    shipper = node.ship()
    wait_until(lambda: redis_store.stored_ids() == [record["id"]], what="stored")
    assert shipper.stop() == 0


def test_a_broker_that_stops_answering_keeps_the_run_bounded(node_factory, redis_store):
    node = node_factory(redis_store.section())
    node.run()  # topology declared while it answers
    node.broker.pause()
    try:
        started = time.monotonic()
        record, stderr = node.run(*WARN, expect=1)
        elapsed = time.monotonic() - started
    finally:
        node.broker.resume()
    assert elapsed < 3 + 5  # inline_budget, plus the interpreter on a busy machine
    assert record["status"] == "WARNING"
    assert node.status()["outputs"]["broker"]["spooled"] == 1
    assert "spooled for later" in stderr


def test_a_publish_to_a_broker_that_hangs_mid_way_ends_at_its_deadline(cli, broker):
    from accre_monitor.config import load_config
    from accre_monitor.pipeline.bus import record_bytes
    from accre_monitor.pipeline.publisher import Publisher, Timeout
    from accre_monitor.record import build_record

    node = Node(cli, broker, '[outputs.redis]\nurl = "redis://127.0.0.1:1/0"\n')
    config = load_config(str(cli.config_path))
    publisher = Publisher(config, ["redis"])
    record = build_record("loadavg", "OK", [1, 2, 3])
    publisher.publish(record, record_bytes(record), time.monotonic() + 5)  # connected
    broker.pause()
    try:
        started = time.monotonic()
        with pytest.raises(Timeout):
            publisher.publish(record, record_bytes(record), time.monotonic() + 1.0)
        assert time.monotonic() - started < 2.0
    finally:
        broker.resume()
        publisher.close()
        node.close()


def test_the_shipper_logs_one_json_line_per_batch_when_asked(node_factory, redis_store):
    node = node_factory(redis_store.section())
    node.cli.env["ACCRE_MONITOR_LOG_FORMAT"] = "json"
    ids = [node.run()[0]["id"] for _ in range(3)]
    shipper = node.ship()
    wait_until(lambda: sorted(redis_store.stored_ids()) == sorted(ids), what="stored")
    shipper.wait_for('"event": "batch"')
    assert shipper.stop() == 0
    lines = [json.loads(line) for line in shipper.text().splitlines()]
    batches = [line for line in lines if line["event"] == "batch"]
    assert sum(b["delivered"] for b in batches) == 3
    assert all(b["output"] == "redis" and b["seconds"] >= 0 for b in batches)
    assert any(line["event"] == "connected to the broker" for line in lines)
    assert all("guest:guest" not in json.dumps(line) for line in lines)
