"""`accre-pipeline ship`: the long-running delivery daemon, one command for both buses.

With `[bus] kind = "rabbitmq"` it consumes each remote output's queue (competing with any
other shippers), delivers in batches (size or time, whichever comes first) through the same
output code as the command line, and acks each message only after its store confirmed it:

- DELIVERED (or EXPIRED) acks; RETRY waits in the delay queue of its backoff step (or the
  store's Retry-After) and comes back, except for an output that asks for order, whose
  head is held here unacked with what follows it; REJECTED goes to the dead-letter queue
  with the reason in its headers once the retry policy gives up (`pipeline/retry.py`); a
  body that is not a result record goes there at once (`pipeline/door.py`). One poison
  record never blocks its queue. Ordered outputs never get a record twice (`consumer.py`).
- A store that cannot take a batch at all (down, timing out) gets no ack: the batch waits in
  the shipper and is tried again with the policy's probe delays, and the broker sends no more
  than the prefetch window meanwhile. No hot loop, nothing acked, nothing lost.
- The broker restarting or failing over: the shipper reconnects with backoff (trying every
  `[bus] url` in turn), declares the topology again and resumes; messages it held unacked are
  redelivered, and since stores write by record id nothing is stored twice.
- Deliveries run in worker threads while the main thread keeps the AMQP connection alive
  (heartbeats), however slow a store is.
- SIGTERM or SIGINT: consuming stops, the batches in flight finish and are acked, the rest is
  returned to the broker, and the shipper exits 0.

Alongside, and alone when no broker is configured, it drains the local spool continuously,
respecting each entry's backoff (the oldest record's, for an output that asks for order):
records spooled for the broker are forwarded to it, records spooled for a store are
delivered to it. With `[spool] inline = false` the command line only spools, and this
daemon does all the delivering on the node.

With `--metrics-listen HOST:PORT` it serves `/metrics` for Prometheus there
(`pipeline/ship_metrics.py`, docs/metrics.md): what each batch settled, how long it took and
how late its records arrived, what is held, the broker's reconnections.

When the config keeps the cluster state, a watchdog runs beside them in a thread of its
own (`pipeline/watchdog.py`): one shipper at a time, holding a lease in the state store,
publishes stale and keepalive records for results that stopped coming.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from accre_monitor import log
from accre_monitor.errors import ConfigError, UserError
from accre_monitor.outputs import (
    build_output,
    is_known_output,
    is_synchronous,
    unknown_output_error,
)
from accre_monitor.pipeline import ship_metrics
from accre_monitor.pipeline.amqp import require_pika
from accre_monitor.pipeline.broker_backlog import BROKER, BrokerForwarder, remote_outputs
from accre_monitor.pipeline.daemon import Stopping
from accre_monitor.pipeline.spool_drainer import SpoolDrainer
from accre_monitor.pipeline.watchdog import Watchdog

SHUTDOWN_GRACE = 30.0  # seconds the spool drainer gets to finish on SIGTERM


def remote_names(config: Any, names: list[str] | None) -> list[str]:
    """The remote outputs to ship: those named (checked), else every one the config defines."""
    if names:
        for name in names:
            if not is_known_output(name):
                raise UserError(unknown_output_error(name))
            if is_synchronous(name):
                raise UserError(f"output {name} renders in the check's process; nothing to ship")
        return list(dict.fromkeys(names))
    return [n for n in config.defined_outputs() if is_known_output(n) and not is_synchronous(n)]


def build_outputs(config: Any, names: list[str]) -> dict[str, Any]:
    """The outputs that can be built; the others are reported once and left out."""
    outputs = {}
    for name in names:
        try:
            outputs[name] = build_output(name, config)
        except ConfigError as exc:
            config.problem(f"{exc}; its records wait until this is fixed")
    return outputs


def rabbit_shipper() -> type:
    """The broker's half of the shipper, whose module needs pika (an optional extra):
    PikaMissing, in one line saying what to install, when pika is not installed."""
    require_pika()
    from accre_monitor.pipeline.consumer import RabbitShipper

    return RabbitShipper


def start_watchdog(config: Any, stopping: Stopping) -> threading.Thread | None:
    """The watchdog's thread, when the config keeps the cluster state (None otherwise, or
    when the state cannot be used: said in one line, and the shipper ships all the same)."""
    if not config.keeps_state:
        return None
    try:
        watchdog = Watchdog.from_config(config, stopping)
    except ConfigError as exc:
        config.problem(f"{exc}; no watchdog runs: results that stop coming go unnoticed")
        return None
    thread = threading.Thread(target=watchdog.run, name="watchdog", daemon=True)
    thread.start()
    return thread


def start_metrics(
    listen: str | None, rabbit: bool, outputs: dict[str, Any], spool_outputs: dict[str, Any]
) -> ship_metrics.ShipMetrics:
    """The metrics, served at `listen` (HOST:PORT); NO_METRICS without it. UserError, in
    one line, when they cannot be served there."""
    if listen is None:
        return ship_metrics.NO_METRICS
    served = {"spool": list(spool_outputs), "broker": list(outputs) if rabbit else []}
    return ship_metrics.start(listen, served, broker=rabbit)


def ship(config: Any, names: list[str] | None = None, metrics_listen: str | None = None) -> int:
    """Run until SIGTERM or SIGINT; returns the exit code (0: a clean stop). With
    `metrics_listen` (HOST:PORT), `/metrics` is served there while it runs."""
    rabbit = config.bus["kind"] == "rabbitmq"
    shipper_class = rabbit_shipper() if rabbit else None  # refuses to start without pika
    if metrics_listen is not None:
        ship_metrics.parse_listen(metrics_listen)  # a bad address: one line, nothing built
    stopping = Stopping()
    stopping.install()
    wanted = remote_names(config, names)
    outputs = build_outputs(config, wanted)
    # the spool drainer runs beside the queue consumers: it gets output instances of its own
    spool_outputs = build_outputs(config, list(outputs)) if rabbit else dict(outputs)
    if rabbit:
        spool_outputs[BROKER] = BrokerForwarder(config, remote_outputs(config))
    metrics = start_metrics(metrics_listen, rabbit, outputs, spool_outputs)
    try:
        watchdog = start_watchdog(config, stopping)
        if not outputs and not rabbit and watchdog is None:
            log.error("nothing to ship: no remote output is configured (or none can be built)")
            return 1
        log.info(
            "shipper started",
            bus=config.bus["kind"],
            outputs=list(outputs),
            spool=config.spool["path"],
        )
        drainer = SpoolDrainer(config, spool_outputs, stopping, metrics)
        if rabbit:
            thread = threading.Thread(target=drainer.run, name="spool", daemon=True)
            thread.start()
            shipper_class(config, outputs, stopping, metrics).run()
            thread.join(timeout=SHUTDOWN_GRACE)
        else:
            drainer.run()
        if watchdog is not None:
            watchdog.join(timeout=SHUTDOWN_GRACE)
    finally:
        metrics.close()
    for output in [*outputs.values(), *spool_outputs.values()]:
        with contextlib.suppress(Exception):
            output.close()
    log.info("shipper stopped")
    return 0
