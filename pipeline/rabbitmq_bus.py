"""The RabbitMQ bus: a run renders its synchronous outputs itself and publishes the record
once to the broker; shipper daemons deliver it to the stores.

The record is published persistent, with publisher confirms and `mandatory`, to the durable
topic exchange with the routing key `STATUS.check_name`, message id = record id, content type
JSON, the body exactly the record's JSON (any program can publish results the same way). The
run returns once the broker confirmed, or once the record is in the local spool for the
destination `broker` (broker unreachable, slow, refusing it, or finding no queue for it),
always within `[spool] inline_budget`; the exit code is always the check's own. Records
spooled for the broker are forwarded later, oldest first: by the next run in its time left,
by `accre-pipeline replay`, and by `accre-pipeline ship` running on the node.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

from accre_monitor import log
from accre_monitor.outcome import DELIVERED, RETRY, Outcome, StoreUnavailable
from accre_monitor.pipeline.amqp import BrokerUnavailable, connect, explain, load_pika
from accre_monitor.pipeline.bus import Bus, Destination, emit_synchronous, record_bytes
from accre_monitor.pipeline.interruption import interrupt_on_sigterm
from accre_monitor.pipeline.topology import declare, queue_specs, routing_key

BROKER = "broker"  # the spool's name for records owed to the broker


class Timeout(Exception):
    """A publish did not finish within its deadline."""


class deadline_alarm:
    """Raise Timeout in the main thread when `seconds` pass (pika's blocking calls have no
    deadline of their own for a broker that stops answering); a no-op in other threads."""

    def __init__(self, seconds: float) -> None:
        self.seconds = max(seconds, 0.001)
        self.previous: Any = None

    def __enter__(self) -> deadline_alarm:
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return self

        def expire(signum: int, frame: Any) -> None:
            raise Timeout(f"no confirmation from the broker within {self.seconds:.1f} s")

        self.previous = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            import signal

            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)


class Publisher:
    """A confirmed, mandatory publisher on one connection; declares the topology for
    `outputs` the first time a record finds no route (or the exchange is missing)."""

    def __init__(self, config: Any, outputs: list[str]) -> None:
        self.config = config
        self.settings = config.bus
        self.outputs = outputs
        self.connection: Any = None
        self.channel: Any = None
        self.declared = False

    def _open(self, timeout: float) -> None:
        if self.channel is not None and self.channel.is_open:
            return
        if self.connection is None or not self.connection.is_open:
            self.connection = connect(self.settings, timeout)
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()

    def publish(self, record: dict[str, Any], body: bytes, deadline: float) -> None:
        """Publish one record; raises BrokerUnavailable or Timeout when it is not confirmed."""
        load_pika()
        import pika
        import pika.exceptions

        properties = pika.BasicProperties(
            delivery_mode=2,
            content_type="application/json",
            message_id=str(record.get("id", "")),
            app_id="accre-monitor",
        )
        key = routing_key(record)
        for attempt in range(2):
            left = deadline - time.monotonic()
            if left <= 0.01:
                raise Timeout("no time left to publish to the broker")
            try:
                with deadline_alarm(left):
                    self._open(left)
                    self.channel.basic_publish(
                        self.settings["exchange"], key, body, properties, mandatory=True
                    )
                return
            except pika.exceptions.UnroutableError:
                problem = f"no queue is bound for routing key {key!r}"
            except pika.exceptions.ChannelClosedByBroker as exc:
                if exc.reply_code != 404:  # 404: the exchange is not declared yet
                    raise BrokerUnavailable(
                        f"the broker refused the record: {explain(exc)}"
                    ) from None
                problem = "the exchange is not declared"
            except pika.exceptions.NackError:
                raise BrokerUnavailable("the broker refused the record (nack)") from None
            except pika.exceptions.AMQPError as exc:
                self.close()
                raise BrokerUnavailable(f"broker: {explain(exc)}") from None
            except OSError as exc:
                self.close()
                raise BrokerUnavailable(f"broker: {type(exc).__name__}: {exc}") from None
            if attempt or self.declared:
                raise BrokerUnavailable(f"the broker could not route the record: {problem}")
            self._declare(deadline)

    def _declare(self, deadline: float) -> None:
        import pika.exceptions

        specs = queue_specs(self.config, self.outputs)
        try:
            with deadline_alarm(deadline - time.monotonic()):
                self._open(deadline - time.monotonic())
                declare(self.channel, self.settings, specs)
        except pika.exceptions.ChannelClosedByBroker as exc:
            raise BrokerUnavailable(
                f"cannot declare the queues: {explain(exc)} (a queue declared with other "
                "arguments, e.g. another queue_type, must be deleted first)"
            ) from None
        self.declared = True

    def close(self) -> None:
        connection, self.connection, self.channel = self.connection, None, None
        if connection is not None:
            with contextlib.suppress(Exception):  # a broken connection: nothing left to do
                connection.close()


class BrokerForwarder:
    """Delivers records spooled for the broker, as an output would (the drain and replay
    machinery takes it like any store): one Outcome per record, oldest first."""

    name = BROKER
    ordered = True
    single_consumer = False

    def __init__(self, config: Any, outputs: list[str], publisher: Publisher | None = None):
        self.publisher = publisher or Publisher(config, outputs)
        self.timeout = float(config.bus["connect_timeout"]) * 2
        self.batch_size = 500

    def deliver(self, records: list[dict[str, Any]], timeout: float) -> list[Outcome]:
        deadline = time.monotonic() + timeout
        outcomes: list[Outcome] = []
        for index, record in enumerate(records):
            try:
                self.publisher.publish(record, record_bytes(record), deadline)
            except (BrokerUnavailable, Timeout) as exc:
                if index == 0:
                    raise StoreUnavailable(str(exc)) from None
                outcomes += [Outcome(RETRY, str(exc))] * (len(records) - index)
                break
            outcomes.append(Outcome(DELIVERED))
        return outcomes

    def close(self) -> None:
        self.publisher.close()


def remote_outputs(config: Any) -> list[str]:
    """Every remote output the config defines: what the broker's topology is declared for."""
    from accre_monitor.outputs import is_known_output, is_synchronous

    return [n for n in config.defined_outputs() if is_known_output(n) and not is_synchronous(n)]


class RabbitBus(Bus):
    """Synchronous outputs now; one confirmed publish for the remote ones (or the spool)."""

    def __init__(self, config: Any, destinations: list[Destination]) -> None:
        self.config = config
        self.destinations = destinations
        self.publisher: Publisher | None = None
        self.spool: Any = None

    def publish(self, record: dict[str, Any]) -> None:
        if not emit_synchronous(record, self.destinations):
            return  # no remote output wants it: nothing to ship
        body = record_bytes(record)
        if not self.config.spool["inline"]:
            self._spool(record, body, None, attempts=0)
            return
        deadline = time.monotonic() + float(self.config.spool["inline_budget"])
        names = list(
            dict.fromkeys(
                [
                    *remote_outputs(self.config),
                    *(d.name for d in self.destinations if not d.synchronous),
                ]
            )
        )
        self.publisher = Publisher(self.config, names)
        restore = interrupt_on_sigterm()
        published = False
        try:
            self.publisher.publish(record, body, deadline)
            published = True
            if os.path.exists(self.config.spool["path"]):  # no spool file: no backlog
                self._forward_backlog(names, deadline)
        except (BrokerUnavailable, Timeout) as exc:
            self._spool(record, body, str(exc))
        except BaseException:
            if not published:  # interrupted (SIGTERM, ^C) before the broker confirmed
                self._spool(record, body, "interrupted")
            raise
        finally:
            restore()

    def _spool(self, record: dict[str, Any], body: bytes, error: str | None, attempts: int = 1):
        from accre_monitor.pipeline.delivery import spool_owed
        from accre_monitor.pipeline.spool import Spool

        if self.spool is None:
            self.spool = Spool.from_config(self.config)
        spool_owed(self.spool, [(record["id"], BROKER, body, error, RETRY, None)], attempts)

    def _forward_backlog(self, names: list[str], deadline: float) -> None:
        """The broker just took a record: forward what the spool still owes it, oldest first."""
        from accre_monitor.pipeline.delivery import drain
        from accre_monitor.pipeline.spool import Spool

        try:
            self.spool = self.spool or Spool.from_config(self.config)
            if not self.spool.has_backlog(BROKER):
                return
            forwarder = BrokerForwarder(self.config, names, self.publisher)
            limit = int(self.config.spool["drain_limit"])
            for _ in drain(self.spool, forwarder, limit, deadline, due_only=False):
                pass
        except Exception as exc:  # forwarding is a bonus; it must never fail the run
            log.warning("could not forward spooled records to the broker", error=str(exc))

    def close(self) -> None:
        if self.publisher is not None:
            self.publisher.close()
        if self.spool is not None:
            self.spool.close()
