"""The shipper's `/metrics` (`accre-pipeline ship --metrics-listen HOST:PORT`), in Prometheus'
text format through prometheus_client (the `metrics` extra), on its own HTTP server's thread.

The shipper's batch accounting calls one `ShipMetrics` object: `NO_METRICS`, which does
nothing, unless `--metrics-listen` was given (only then is prometheus_client imported).
Every series is labelled with the `output` and the `source` of its records: `spool` (the
node's spool, drained by this shipper) or `broker` (the output's queue). What the metrics
mean, and the alerts they serve, is in docs/metrics.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from accre_monitor import log
from accre_monitor.dates import epoch_seconds
from accre_monitor.errors import UserError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from accre_monitor.pipeline.delivery import Settled

PREFIX = "accre_monitor_ship_"
INSTALL_HINT = "pip install 'accre-monitor[metrics]'"
OUTCOMES = ("delivered", "retried", "dead_lettered", "expired")
SOURCES = ("spool", "broker")
# a store's answer: from a few ms (Redis, a small batch) to its timeout (30 s and more)
BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# a record's lag: a second on a healthy pipeline, hours after an outage
LAG_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)


class ShipMetrics:
    """What the shipper tells its metrics; this base does nothing (no `--metrics-listen`)."""

    def batch(self, output: str, source: str, settled: Settled, seconds: float) -> None:
        """One batch is settled: its records' fates, how long the store took, how late
        the records it delivered arrived."""

    def connected(self) -> None:
        """The shipper is connected to the broker (again)."""

    def disconnected(self) -> None:
        """The shipper lost its connection to the broker (or could not make one)."""

    def watch_holdings(self, holdings: Callable[[], dict[str, dict[str, Any]]]) -> None:
        """Read what the broker's shipper holds (`RabbitShipper.holdings`) at each scrape."""

    def close(self) -> None:
        """Stop the endpoint."""


NO_METRICS = ShipMetrics()


def parse_listen(address: str) -> tuple[str, int]:
    """(host, port) of `HOST:PORT` (`[::1]:9464` for IPv6); UserError, in one line, when
    it is not one."""
    host, colon, port = address.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise UserError(
            f"--metrics-listen {address!r} is not HOST:PORT (e.g. 127.0.0.1:9464, [::1]:9464)"
        )
    return host, int(port)


def start(
    address: str, outputs: dict[str, Iterable[str]], broker: bool = False
) -> PrometheusShipMetrics:
    """The metrics, served at `address` (HOST:PORT) until `close()`; every series of
    `outputs` (source: output names) exists from the start, at zero, and those of the
    connection to the broker with `broker`. UserError, in one line, when prometheus_client
    is missing or the address is not one to listen on."""
    host, port = parse_listen(address)
    try:
        import prometheus_client  # noqa: F401 - the one guarded import
    except ImportError:
        raise UserError(f"--metrics-listen needs prometheus_client: {INSTALL_HINT}") from None
    metrics = PrometheusShipMetrics(broker)
    for source, names in outputs.items():
        for name in names:
            metrics.declare(name, source)
    metrics.listen(host, port)
    return metrics


class PrometheusShipMetrics(ShipMetrics):
    """The metrics in a registry of their own, with the process's (memory, CPU, files)."""

    def __init__(self, broker: bool = False) -> None:
        """`broker`: with the series of the connection to the broker (none without one)."""
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            PlatformCollector,
            ProcessCollector,
        )

        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        labels = ("output", "source")
        self.records = Counter(
            PREFIX + "records",
            "Records settled by the shipper, by outcome: delivered (stored), retried (kept, "
            "tried again later), dead_lettered (given up), expired (too old to send)",
            (*labels, "outcome"),
            registry=registry,
        )
        self.rejected = Counter(
            PREFIX + "records_rejected",
            "Records the store refused (each then retried or dead-lettered)",
            labels,
            registry=registry,
        )
        self.duration = Histogram(
            PREFIX + "batch_duration_seconds",
            "Time one batch took, from handing it to the output to settling its records",
            labels,
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.lag = Histogram(
            PREFIX + "delivery_lag_seconds",
            "Age of each record delivered: from its date to the store's confirmation",
            labels,
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.oldest = Gauge(
            PREFIX + "oldest_delivered_age_seconds",
            "Age of the oldest record of the last batch that delivered any",
            labels,
            registry=registry,
        )
        self.last_delivery = Gauge(
            PREFIX + "last_delivery_timestamp_seconds",
            "When a batch last delivered a record (seconds since the epoch)",
            labels,
            registry=registry,
        )
        broker_registry = registry if broker else None
        self.reconnects = Counter(
            PREFIX + "broker_reconnects",
            "Connections to the broker made again after the first one",
            registry=broker_registry,
        )
        self.broker_connected = Gauge(
            PREFIX + "broker_connected",
            "1 while the shipper is connected to the broker, 0 otherwise",
            registry=broker_registry,
        )
        self.connections = 0
        self.holdings: Callable[[], dict[str, dict[str, Any]]] | None = None
        registry.register(_Holdings(self))
        self.server: Any = None
        self.thread: Any = None

    def declare(self, output: str, source: str) -> None:
        """Every series of `output` from `source`, at zero until something happens."""
        for outcome in OUTCOMES:
            self.records.labels(output, source, outcome)
        self.rejected.labels(output, source)
        self.duration.labels(output, source)
        self.lag.labels(output, source)

    def listen(self, host: str, port: int) -> None:
        """Serve the registry on its own thread; UserError when `host:port` cannot be bound
        (a name that does not resolve, an address that is not this host's, a port taken)."""
        from prometheus_client import start_http_server

        try:
            self.server, self.thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            raise UserError(
                f"--metrics-listen cannot listen on {where}: {exc.strerror or exc}"
            ) from None
        bound_host, bound_port = self.server.server_address[:2]
        log.info("metrics served", url=f"http://{_url_host(bound_host)}:{bound_port}/metrics")

    def batch(self, output: str, source: str, settled: Settled, seconds: float) -> None:
        records = self.records
        for outcome, count in zip(OUTCOMES, settled.counts, strict=True):
            if count:
                records.labels(output, source, outcome).inc(count)
        if settled.rejected:
            self.rejected.labels(output, source).inc(settled.rejected)
        self.duration.labels(output, source).observe(seconds)
        if not settled.dates:
            return
        now = time.time()
        lag = self.lag.labels(output, source)
        oldest = None
        for date in settled.dates:
            try:
                age = max(now - epoch_seconds(date), 0.0)  # a node's clock ahead: no lag
            except ValueError:  # a date no output could read either: no age to tell
                continue
            lag.observe(age)
            oldest = age if oldest is None else max(oldest, age)
        if oldest is not None:
            self.oldest.labels(output, source).set(oldest)
        self.last_delivery.labels(output, source).set(now)

    def connected(self) -> None:
        self.connections += 1
        if self.connections > 1:
            self.reconnects.inc()
        self.broker_connected.set(1)

    def disconnected(self) -> None:
        self.broker_connected.set(0)

    def watch_holdings(self, holdings: Callable[[], dict[str, dict[str, Any]]]) -> None:
        self.holdings = holdings

    def close(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            self.thread.join(timeout=5)


class _Holdings:
    """What the broker's shipper holds, read when Prometheus scrapes (not at every message):
    per output, the messages held unacked and whether its store is down."""

    def __init__(self, metrics: PrometheusShipMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Any]:
        return []  # the output names are known at the first scrape only

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import GaugeMetricFamily

        holdings = self.metrics.holdings
        if holdings is None:
            return
        held = GaugeMetricFamily(
            PREFIX + "held_messages",
            "Messages the shipper holds unacked (its store down, or a batch being delivered)",
            labels=("output",),
        )
        down = GaugeMetricFamily(
            PREFIX + "store_down",
            "1 while the output's store cannot take records (they are held), 0 otherwise",
            labels=("output",),
        )
        for output, row in sorted(holdings().items()):
            held.add_metric((output,), row["held"])
            down.add_metric((output,), 1 if row["store_down"] else 0)
        yield held
        yield down


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
