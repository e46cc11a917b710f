"""What lives on the broker: the exchange results are published to, and per remote output a
queue bound with the keys of its filter stages, a retry queue and a dead-letter queue.

Every record is published once to a durable topic exchange (`[bus] exchange`, default
`accre-monitor`) with the routing key `STATUS.check_name`. For each remote output NAME:

    PREFIX.NAME        durable queue the shippers consume, bound with the binding keys of the
                       output's filter stages (`min_severity = "WARNING"` binds `WARNING.#`,
                       `CRITICAL.#`, `UNKNOWN.#`; `checks = ["mounts"]` binds `*.mounts`;
                       no stage binds `#`). What a pattern cannot express is filtered by the
                       shipper.
    PREFIX.NAME.retry.DELAY
                       where a record waits before its next attempt: one queue per step of
                       the retry policy's backoff (`10s`, `20s`, ... up to `backoff_max`),
                       each with a fixed time to live, after which its messages dead-letter
                       back into PREFIX.NAME. Every message of a delay queue waits as long,
                       so they expire in order and none waits for another one's longer
                       backoff. Nothing spins: a waiting record costs the broker nothing.
                       An output that asks for order has none: its shipper holds the head
                       of its queue unacked instead, and what follows waits behind it.
    PREFIX.NAME.dead   poison records and records refused for good, with the reason in the
                       `x-accre-reason` header, reached through the exchange PREFIX.NAME.dead.

`[bus] queue_type = "quorum"` declares quorum queues (replicated on a cluster); classic durable
queues otherwise. An output that asks for order (NSCA, Slack) or keeps state across records gets
a single active consumer, so one shipper at a time delivers its records, oldest first.

Declaring is idempotent: the CLI declares when its first publish finds no route, the shipper
when it starts or reconnects.
"""

from __future__ import annotations

from accre_monitor.outputs import is_known_output, is_synchronous, output_class
from accre_monitor.pipeline.amqp import require_pika
from accre_monitor.pipeline.wiring import filter_stages

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

REASON_HEADER = "x-accre-reason"
ATTEMPTS_HEADER = "x-accre-attempts"
OUTPUT_HEADER = "x-accre-output"


class QueueSpec:
    """The queues of one remote output, and the keys that route records to it."""

    __slots__ = ("output", "keys", "single_consumer", "retry_delays")

    def __init__(
        self,
        output: str,
        keys: list[str],
        single_consumer: bool = False,
        retry_delays: tuple[float, ...] = (),
    ) -> None:
        self.output = output
        self.keys = keys
        self.single_consumer = single_consumer
        self.retry_delays = retry_delays


def queue_name(settings: dict[str, Any], output: str) -> str:
    return f"{settings['queue_prefix']}.{output}"


def retry_queue(settings: dict[str, Any], output: str, delay: float) -> str:
    """The delay queue where a record waits `delay` seconds before its next attempt."""
    return f"{queue_name(settings, output)}.retry.{delay_label(delay)}"


def delay_label(delay: float) -> str:
    """`10s`, `1500ms`: the delay as a queue name shows it (whole milliseconds)."""
    millis = max(round(delay * 1000), 1)
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def retry_queues(settings: dict[str, Any], spec: QueueSpec) -> list[tuple[str, int]]:
    """(name, time to live in milliseconds) of each delay queue of `spec`'s output."""
    return [
        (retry_queue(settings, spec.output, delay), max(round(delay * 1000), 1))
        for delay in spec.retry_delays
    ]


def dead_queue(settings: dict[str, Any], output: str) -> str:
    return f"{queue_name(settings, output)}.dead"


def routing_key(record: dict[str, Any]) -> str:
    """`STATUS.check_name`, the key the topic exchange routes on."""
    return f"{record.get('status', 'UNKNOWN')}.{record.get('name', '')}"


def queue_arguments(settings: dict[str, Any], single_consumer: bool = False) -> dict[str, Any]:
    arguments: dict[str, Any] = {"x-queue-type": settings["queue_type"]}
    if single_consumer:
        arguments["x-single-active-consumer"] = True
    return arguments


def declare(channel: Any, settings: dict[str, Any], specs: list[QueueSpec]) -> None:
    """Declare the exchange and every output's queues and bindings (idempotent)."""
    exchange = settings["exchange"]
    channel.exchange_declare(exchange=exchange, exchange_type="topic", durable=True)
    for spec in specs:
        main = queue_name(settings, spec.output)
        dead = dead_queue(settings, spec.output)
        channel.exchange_declare(exchange=dead, exchange_type="fanout", durable=True)
        channel.queue_declare(
            queue=main,
            durable=True,
            arguments={
                **queue_arguments(settings, spec.single_consumer),
                "x-dead-letter-exchange": dead,
            },
        )
        for name, ttl in retry_queues(settings, spec):
            channel.queue_declare(
                queue=name,
                durable=True,
                arguments={
                    **queue_arguments(settings),
                    "x-message-ttl": ttl,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": main,
                },
            )
        channel.queue_declare(queue=dead, durable=True, arguments=queue_arguments(settings))
        channel.queue_bind(queue=dead, exchange=dead)
        for key in spec.keys:
            channel.queue_bind(queue=main, exchange=exchange, routing_key=key)


def queue_specs(config: Any, names: list[str]) -> list[QueueSpec]:
    """The QueueSpec of each remote output among `names` (synchronous ones have no queue)."""
    # filters imports typing, retry imports random: a run that publishes without declaring
    # never needs them
    from accre_monitor.pipeline.filters import binding_keys
    from accre_monitor.pipeline.retry import RetryPolicy

    delays = tuple(RetryPolicy.from_settings(config.spool).delays())
    specs = []
    for name in dict.fromkeys(names):
        if not is_known_output(name) or is_synchronous(name):
            continue
        cls = output_class(name)
        ordered = bool(getattr(cls, "ordered", False))
        single = ordered or bool(getattr(cls, "single_consumer", False))
        keys = binding_keys(filter_stages(name, config))
        specs.append(QueueSpec(name, keys, single, () if ordered else delays))
    return specs


def depths(channel: Any, settings: dict[str, Any], specs: list[QueueSpec]) -> dict[str, dict]:
    """Ready messages and consumers of each existing queue of the outputs of `specs` (passive
    declares; what the shippers hold unacked is not in them: see `holdings`)."""
    pika = require_pika()

    result: dict[str, dict] = {}
    for spec in specs:
        output = spec.output
        for name in (
            queue_name(settings, output),
            *(name for name, _ in retry_queues(settings, spec)),
            dead_queue(settings, output),
        ):
            try:
                ok = channel.queue_declare(queue=name, passive=True)
            except pika.exceptions.ChannelClosedByBroker:  # 404: not declared (yet)
                channel = channel.connection.channel()
                continue
            result[name] = {
                "messages": ok.method.message_count,
                "consumers": ok.method.consumer_count,
            }
    return result
