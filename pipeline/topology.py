"""What lives on the broker: the exchange results are published to, and per remote output a
queue bound with the keys of its filter stages, a retry queue and a dead-letter queue.

Every record is published once to a durable topic exchange (`[bus] exchange`, default
`accre-monitor`) with the routing key `STATUS.check_name`. For each remote output NAME:

    PREFIX.NAME        durable queue the shippers consume, bound with the binding keys of the
                       output's filter stages (`min_severity = "WARNING"` binds `WARNING.#`,
                       `CRITICAL.#`, `UNKNOWN.#`; `checks = ["mounts"]` binds `*.mounts`;
                       no stage binds `#`). What a pattern cannot express is filtered by the
                       shipper.
    PREFIX.NAME.retry  where a record waits before its next attempt: each message carries its
                       own expiry (the backoff), then dead-letters back into PREFIX.NAME.
                       Nothing spins: a waiting record costs the broker nothing.
    PREFIX.NAME.dead   poison records and records refused for good, with the reason in the
                       `x-accre-reason` header, reached through the exchange PREFIX.NAME.dead.

`[bus] queue_type = "quorum"` declares quorum queues (replicated on a cluster); classic durable
queues otherwise. An output that keeps state across records (Slack's change-only notification)
gets a single active consumer, so one shipper at a time holds that state.

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

    __slots__ = ("output", "keys", "single_consumer")

    def __init__(self, output: str, keys: list[str], single_consumer: bool = False) -> None:
        self.output = output
        self.keys = keys
        self.single_consumer = single_consumer


def queue_name(settings: dict[str, Any], output: str) -> str:
    return f"{settings['queue_prefix']}.{output}"


def retry_queue(settings: dict[str, Any], output: str) -> str:
    return f"{queue_name(settings, output)}.retry"


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
        channel.queue_declare(
            queue=retry_queue(settings, spec.output),
            durable=True,
            arguments={
                **queue_arguments(settings),
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
    # filters imports typing: a run that publishes without filter stages never needs it
    from accre_monitor.pipeline.filters import binding_keys

    specs = []
    for name in dict.fromkeys(names):
        if not is_known_output(name) or is_synchronous(name):
            continue
        single = bool(getattr(output_class(name), "single_consumer", False))
        specs.append(QueueSpec(name, binding_keys(filter_stages(name, config)), single))
    return specs


def depths(channel: Any, settings: dict[str, Any], outputs: list[str]) -> dict[str, dict]:
    """Ready messages and consumers of each existing queue of `outputs` (passive declares;
    what the shippers hold unacked is not in them: see `holdings`)."""
    pika = require_pika()

    result: dict[str, dict] = {}
    for output in outputs:
        for name in (
            queue_name(settings, output),
            retry_queue(settings, output),
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
