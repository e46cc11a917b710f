"""Publishing one record to the broker: confirmed, mandatory and persistent, under a hard
deadline (pika's blocking calls have none of their own for a broker that stops answering).

Used by a run on the RabbitMQ bus and by whatever forwards the records spooled for the broker.
"""

from __future__ import annotations

import time

from accre_monitor.pipeline.amqp import BrokerUnavailable, connect, explain, require_pika
from accre_monitor.pipeline.topology import declare, queue_specs, routing_key

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


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
        """Publish one record; raises BrokerUnavailable or Timeout when it is not confirmed
        (PikaMissing without pika)."""
        pika = require_pika()

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
        pika = require_pika()
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
            try:  # noqa: SIM105 - contextlib costs a run that only spools more than this
                connection.close()
            except Exception:  # a broken connection: nothing left to do
                pass
