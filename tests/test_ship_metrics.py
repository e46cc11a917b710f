"""The shipper's `/metrics`: the accounting of each batch, unit by unit, then a real
`accre-pipeline ship --metrics-listen` scraped over HTTP and parsed with prometheus_client's
own parser while it drains a spool to Redis, and while it consumes RabbitMQ queues through a
store outage and a broker restart.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import test_rabbitmq
from servers import free_port, missing_reason
from test_rabbitmq import Node, Shipper, wait_until

from accre_monitor.errors import UserError
from accre_monitor.outcome import DELIVERED, REJECTED, RETRY, Outcome, StoreUnavailable
from accre_monitor.outputs.remote import RemoteOutput
from accre_monitor.pipeline import ship_metrics
from accre_monitor.pipeline.delivery import Settled, drain
from accre_monitor.pipeline.spool import Spool, spool_settings
from accre_monitor.record import build_record, iso_now

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

P = "accre_monitor_ship_"


def samples(text: str) -> dict[tuple, float]:
    """Every sample of a scrape: (name, sorted label pairs) -> value."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((P + name, tuple(sorted(labels.items()))))


def scrape(url: str) -> dict[tuple, float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return samples(response.read().decode())


def scrape_until(url: str, predicate, what: str) -> dict[tuple, float]:
    """The first scrape of `url` for which `predicate(samples)` holds (within 30 s)."""
    found: dict[tuple, float] = {}

    def holds() -> bool:
        found.clear()
        found.update(scrape(url))
        return predicate(found)

    wait_until(holds, what=what)
    return found


def record_dated(seconds_ago: float, node: str = "n1") -> dict:
    record = build_record("disk", "OK", {"used": 1}, node=node)
    record["date"] = iso_now(time.time() - seconds_ago)
    return record


# -- the accounting, unit by unit ------------------------------------------------------------


@pytest.fixture
def metrics():
    made = ship_metrics.PrometheusShipMetrics(broker=True)
    made.declare("redis", "spool")
    yield made
    made.close()


def sample(metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(P + name, labels)


def test_a_batch_counts_each_outcome_and_the_refusals_for_its_output_and_source(metrics):
    settled = Settled(delivered=5, retried=2, dead=1, expired=3, rejected=2)
    metrics.batch("redis", "spool", settled, 0.2)
    metrics.batch("redis", "spool", Settled(delivered=1), 0.02)
    labels = {"output": "redis", "source": "spool"}
    assert sample(metrics, "records_total", outcome="delivered", **labels) == 6
    assert sample(metrics, "records_total", outcome="retried", **labels) == 2
    assert sample(metrics, "records_total", outcome="dead_lettered", **labels) == 1
    assert sample(metrics, "records_total", outcome="expired", **labels) == 3
    assert sample(metrics, "records_rejected_total", **labels) == 2
    assert sample(metrics, "batch_duration_seconds_count", **labels) == 2
    assert sample(metrics, "batch_duration_seconds_sum", **labels) == pytest.approx(0.22)
    assert sample(metrics, "batch_duration_seconds_bucket", le="0.025", **labels) == 1
    assert (
        sample(metrics, "records_total", outcome="delivered", output="redis", source="broker")
        is None
    )


def test_every_series_of_an_output_exists_at_zero_before_its_first_batch(metrics):
    labels = {"output": "redis", "source": "spool"}
    for outcome in ship_metrics.OUTCOMES:
        assert sample(metrics, "records_total", outcome=outcome, **labels) == 0
    assert sample(metrics, "records_rejected_total", **labels) == 0
    assert sample(metrics, "batch_duration_seconds_count", **labels) == 0
    assert sample(metrics, "delivery_lag_seconds_count", **labels) == 0


def test_the_lag_of_each_delivered_record_is_its_age_and_the_gauge_the_oldest_of_the_batch(
    metrics,
):
    dates = [iso_now(time.time() - age) for age in (400.0, 3.0, 40.0)]
    before = time.time()
    metrics.batch("redis", "spool", Settled(delivered=3, dates=dates), 0.1)
    labels = {"output": "redis", "source": "spool"}
    assert sample(metrics, "delivery_lag_seconds_count", **labels) == 3
    assert sample(metrics, "delivery_lag_seconds_bucket", le="5.0", **labels) == 1
    assert sample(metrics, "delivery_lag_seconds_bucket", le="60.0", **labels) == 2
    assert sample(metrics, "delivery_lag_seconds_bucket", le="600.0", **labels) == 3
    assert 400 <= sample(metrics, "oldest_delivered_age_seconds", **labels) < 410
    assert before <= sample(metrics, "last_delivery_timestamp_seconds", **labels) <= time.time()
    # the next batch's oldest replaces it: the gauge tells how late deliveries are now
    metrics.batch("redis", "spool", Settled(delivered=1, dates=[iso_now()]), 0.1)
    assert sample(metrics, "oldest_delivered_age_seconds", **labels) < 5


def test_a_record_dated_ahead_of_the_shippers_clock_has_no_lag_and_an_odd_date_none(metrics):
    dates = [iso_now(time.time() + 120), "yesterday", None]
    metrics.batch("redis", "spool", Settled(delivered=3, dates=dates), 0.1)
    labels = {"output": "redis", "source": "spool"}
    assert sample(metrics, "delivery_lag_seconds_count", **labels) == 1
    assert sample(metrics, "delivery_lag_seconds_sum", **labels) == 0
    assert sample(metrics, "oldest_delivered_age_seconds", **labels) == 0


def test_a_batch_that_delivered_nothing_leaves_the_age_of_the_last_delivery(metrics):
    labels = {"output": "redis", "source": "spool"}
    metrics.batch("redis", "spool", Settled(delivered=1, dates=[iso_now(time.time() - 50)]), 0.1)
    delivered_at = sample(metrics, "last_delivery_timestamp_seconds", **labels)
    metrics.batch("redis", "spool", Settled(retried=4), 1.0)
    assert sample(metrics, "oldest_delivered_age_seconds", **labels) >= 50
    assert sample(metrics, "last_delivery_timestamp_seconds", **labels) == delivered_at


def test_reconnections_are_those_after_the_first_connection(metrics):
    assert sample(metrics, "broker_reconnects_total") == 0
    metrics.connected()
    assert sample(metrics, "broker_connected") == 1
    assert sample(metrics, "broker_reconnects_total") == 0
    metrics.disconnected()
    assert sample(metrics, "broker_connected") == 0
    metrics.disconnected()  # a failed attempt: no connection, nothing more
    metrics.connected()
    metrics.disconnected()
    metrics.connected()
    assert sample(metrics, "broker_reconnects_total") == 2
    assert sample(metrics, "broker_connected") == 1


def test_what_the_shipper_holds_is_read_at_each_scrape(metrics):
    held = {"redis": {"held": 0, "store_down": False}}
    metrics.watch_holdings(lambda: held)
    assert sample(metrics, "held_messages", output="redis") == 0
    assert sample(metrics, "store_down", output="redis") == 0
    held["redis"] = {"held": 7, "store_down": True}
    assert sample(metrics, "held_messages", output="redis") == 7
    assert sample(metrics, "store_down", output="redis") == 1


def test_without_a_broker_nothing_is_said_of_held_messages(metrics):
    assert sample(metrics, "held_messages", output="redis") is None


def test_without_a_broker_nothing_is_said_of_a_connection_to_it():
    alone = ship_metrics.PrometheusShipMetrics(broker=False)
    alone.connected()  # never called without a broker; harmless all the same
    assert sample(alone, "broker_connected") is None
    assert sample(alone, "broker_reconnects_total") is None


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:9464", ("::1", 9464)),
        (" 0.0.0.0:80 ", ("0.0.0.0", 80)),
    ],
)
def test_a_listen_address_is_host_and_port(address, expected):
    assert ship_metrics.parse_listen(address) == expected


@pytest.mark.parametrize("address", ["9464", ":9464", "127.0.0.1", "127.0.0.1:http", "h:70000", ""])
def test_an_address_without_host_or_port_is_refused_in_one_line(address):
    with pytest.raises(UserError) as caught:
        ship_metrics.parse_listen(address)
    assert "\n" not in str(caught.value)
    assert "HOST:PORT" in str(caught.value)


def test_the_endpoint_serves_the_registry_and_stops_when_closed():
    served = ship_metrics.start("127.0.0.1:0", {"spool": ["redis"]})
    port = served.server.server_address[1]
    try:
        served.batch("redis", "spool", Settled(delivered=2, dates=[iso_now()] * 2), 0.01)
        found = scrape(f"http://127.0.0.1:{port}/metrics")
        assert (
            value(found, "records_total", output="redis", source="spool", outcome="delivered") == 2
        )
        assert value(found, "delivery_lag_seconds_count", output="redis", source="spool") == 2
        assert any(name == "process_resident_memory_bytes" for name, _ in found)
    finally:
        served.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_a_busy_address_is_refused_in_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError) as caught:
            ship_metrics.start(f"127.0.0.1:{port}", {"spool": ["redis"]})
    assert str(caught.value) == (
        f"--metrics-listen cannot listen on 127.0.0.1:{port}: Address already in use"
    )


def test_without_prometheus_client_the_one_line_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails
    with pytest.raises(UserError) as caught:
        ship_metrics.start("127.0.0.1:0", {"spool": ["redis"]})
    assert "pip install 'accre-monitor[metrics]'" in str(caught.value)


class Store(RemoteOutput):
    """A store that answers each record as `answers` says (by its `data["answer"]`)."""

    def __init__(self):
        super().__init__("redis", {})
        self.down = False

    def deliver(self, records, timeout):
        if self.down:
            raise StoreUnavailable("down")
        return [
            Outcome(r["data"]["answer"], "refused" if r["data"]["answer"] == REJECTED else None)
            for r in records
        ]


def test_drain_tells_the_refusals_and_the_dates_of_the_records_it_delivered(tmp_path):
    spool = Spool(spool_settings({"path": str(tmp_path / "spool.db"), "max_attempts": 3}))
    records = []
    for answer in (DELIVERED, REJECTED, DELIVERED, RETRY):
        record = build_record("disk", "OK", {"answer": answer}, node="n1")
        records.append(record)
    spool.add([(r["id"], "redis", json.dumps(r).encode()) for r in records])
    spool.add([("poison", "redis", b"{not json")])
    store = Store()
    first = next(drain(spool, store, 100, time.monotonic() + 5, due_only=False))
    assert first.counts == (2, 2, 1, 0)  # the refused record is retried once, poison is dead
    assert first.rejected == 1
    assert first.dates == [records[0]["date"], records[2]["date"]]
    store.down = True
    second = next(drain(spool, store, 100, time.monotonic() + 5, due_only=False))
    assert (second.counts, second.rejected, second.dates) == ((0, 2, 0, 0), 0, [])
    spool.close()


NO_IMPORT_PROBE = """
import os, signal, sys, threading
from accre_monitor.config import load_config
from accre_monitor.pipeline.shipper import ship

threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
code = ship(load_config(None))
print("prometheus_client" in sys.modules, code, file=sys.stderr)
"""


def test_a_shipper_without_metrics_never_imports_prometheus_client(cli, tmp_path):
    cli.write_config(
        f'[spool]\npath = "{tmp_path / "spool.db"}"\n'
        '[outputs.redis]\nurl = "redis://127.0.0.1:1/0"\n'
    )
    done = subprocess.run(
        [sys.executable, "-P", "-c", NO_IMPORT_PROBE],
        capture_output=True,
        text=True,
        env=cli.env,
        timeout=60,
    )
    assert done.stderr.strip().splitlines()[-1] == "False 0", done.stderr


# -- a real shipper, scraped over HTTP -------------------------------------------------------


redis_store = test_rabbitmq.redis_store  # the fixture, shared


def spool_records(cli, records: list[dict], poison: int = 0) -> None:
    spool = Spool(spool_settings({"path": str(cli.tmp / "spool.db")}))
    try:
        spool.add([(r["id"], "redis", json.dumps(r).encode()) for r in records])
        spool.add([(f"poison-{n}", "redis", b"{not json") for n in range(poison)])
    finally:
        spool.close()


def start_shipper(cli, port: int, *args: str) -> Shipper:
    shipper = Shipper(cli, 0, "--metrics-listen", f"127.0.0.1:{port}", *args)
    shipper.wait_for("metrics served")
    return shipper


@pytest.mark.integration
def test_a_shipper_draining_a_spool_to_redis_counts_what_it_delivered(cli, redis_store):
    cli.write_config(
        f'[spool]\npath = "{cli.tmp / "spool.db"}"\n[bus]\nbatch_wait = 0.2\n'
        f"{redis_store.section()}"
    )
    late = [record_dated(300, node=f"n{i}") for i in range(3)]
    fresh = [record_dated(0, node=f"m{i}") for i in range(7)]
    spool_records(cli, [*late, *fresh], poison=1)
    port = free_port()
    shipper = start_shipper(cli, port)
    try:
        assert f"url='http://127.0.0.1:{port}/metrics'" in shipper.text()
        url = f"http://127.0.0.1:{port}/metrics"
        wait_until(lambda: len(redis_store.stored_ids()) == 10, what="every record stored")
        labels = {"output": "redis", "source": "spool"}
        found = scrape_until(
            url,
            lambda f: value(f, "records_total", outcome="delivered", **labels) == 10,
            what="the delivered records counted",
        )
        assert value(found, "records_total", outcome="dead_lettered", **labels) == 1
        assert value(found, "records_total", outcome="retried", **labels) == 0
        assert value(found, "records_rejected_total", **labels) == 0
        assert value(found, "delivery_lag_seconds_count", **labels) == 10
        assert value(found, "delivery_lag_seconds_bucket", le="120.0", **labels) == 7
        assert value(found, "delivery_lag_seconds_bucket", le="600.0", **labels) == 10
        assert 300 <= value(found, "oldest_delivered_age_seconds", **labels) < 360
        assert value(found, "batch_duration_seconds_count", **labels) >= 1
        assert value(found, "held_messages", output="redis") is None  # no broker, none held
        assert value(found, "broker_connected") is None
        assert shipper.stop() == 0
    finally:
        shipper.kill()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=2)
    with socket.socket() as again:  # nothing listens there any more
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))


@pytest.mark.integration
@pytest.mark.parametrize("address", ["127.0.0.1", "256.1.1.1:9464", "no-such-host.invalid:9464"])
def test_a_bad_address_stops_the_shipper_at_start_in_one_line(cli, address):
    cli.write_config(
        f'[spool]\npath = "{cli.tmp / "spool.db"}"\n[outputs.redis]\nurl = "redis://127.0.0.1:1/0"\n'
    )
    done = cli.run("ship", "--metrics-listen", address, script="accre-pipeline", timeout=30)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "--metrics-listen" in lines[0] and "Traceback" not in done.stderr


@pytest.mark.integration
def test_a_busy_address_stops_the_shipper_at_start_in_one_line(cli):
    cli.write_config(
        f'[spool]\npath = "{cli.tmp / "spool.db"}"\n[outputs.redis]\nurl = "redis://127.0.0.1:1/0"\n'
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = cli.run(
            "ship", "--metrics-listen", f"127.0.0.1:{port}", script="accre-pipeline", timeout=30
        )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].endswith(
        f"accre-pipeline: error: --metrics-listen cannot listen on 127.0.0.1:{port}: "
        "Address already in use"
    )


@pytest.mark.integration
def test_through_the_broker_metrics_follow_a_store_outage_a_poison_record_and_a_restart(
    cli, redis_store
):
    from servers import RabbitServer

    if missing_reason("rabbit"):
        pytest.skip(missing_reason("rabbit"))
    with RabbitServer() as private:
        node = Node(cli, private, redis_store.section())
        port = free_port()
        url = f"http://127.0.0.1:{port}/metrics"
        shipper = start_shipper(cli, port)
        node.shippers.append(shipper)
        try:
            shipper.wait_for("connected to the broker")
            broker = {"output": "redis", "source": "broker"}
            for _ in range(4):
                node.run()
            wait_until(lambda: len(redis_store.stored_ids()) == 4, what="four records stored")
            found = scrape_until(
                url,
                lambda f: value(f, "records_total", outcome="delivered", **broker) == 4,
                what="four records counted",
            )
            assert value(found, "broker_connected") == 1
            assert value(found, "broker_reconnects_total") == 0
            assert value(found, "held_messages", output="redis") == 0
            assert value(found, "store_down", output="redis") == 0
            assert value(found, "delivery_lag_seconds_count", **broker) == 4
            assert 0 <= value(found, "oldest_delivered_age_seconds", **broker) < 60

            node.publish("OK.loadavg", b"{this is not json")
            found = scrape_until(
                url,
                lambda f: value(f, "records_total", outcome="dead_lettered", **broker) == 1,
                what="the poison record counted",
            )

            redis_store.down()
            held = [node.run()[0]["id"] for _ in range(3)]
            found = scrape_until(
                url,
                lambda f: (
                    value(f, "held_messages", output="redis") == 3
                    and value(f, "records_total", outcome="retried", **broker) >= 3
                ),
                what="three messages held and tried again",
            )
            assert value(found, "store_down", output="redis") == 1
            assert value(found, "records_total", outcome="delivered", **broker) == 4

            redis_store.up()
            wait_until(lambda: set(held) <= set(redis_store.stored_ids()), what="the held stored")
            found = scrape_until(
                url,
                lambda f: (
                    value(f, "records_total", outcome="delivered", **broker) == 7
                    and value(f, "held_messages", output="redis") == 0
                ),
                what="the held records counted as delivered",
            )
            assert value(found, "store_down", output="redis") == 0

            private.restart()
            shipper.wait_for("connected to the broker", count=2, timeout=60)
            found = scrape_until(
                url,
                lambda f: value(f, "broker_connected") == 1,
                what="connected again",
            )
            assert value(found, "broker_reconnects_total") == 1
            assert shipper.stop() == 0
        finally:
            node.close()
