"""What the shippers hold: records a shipper took from a queue and has not acked yet (its
store is down, or the batch is being delivered).

AMQP 0-9-1 tells a client only how many messages of a queue are ready and how many consumers
it has (a passive `queue.declare`); the messages delivered to a consumer and not yet acked
are known to the broker's management API alone, which is not always enabled. So
`accre-pipeline status` asks the shippers themselves: every shipper binds an exclusive queue
to the fanout exchange `PREFIX.shippers` and answers each request there, on its own
connection's thread, with its host, pid and, per output, the records it holds. The request
carries a reply queue and a short expiry; `status` waits until as many shippers have answered
for each queue as the broker counts consumers on it, or `ANSWER_WAIT` seconds. A consumer that
does not answer (another program, a shipper of an older version) is reported as such: what it
holds is not counted.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from accre_monitor import log
from accre_monitor.pipeline.amqp import require_pika
from accre_monitor.pipeline.topology import depths, queue_name

ANSWER_WAIT = 2.0  # seconds `status` waits for every consumer's shipper to answer


def shippers_exchange(settings: dict[str, Any]) -> str:
    return f"{settings['queue_prefix']}.shippers"


def answer_requests(
    connection: Any, settings: dict[str, Any], holdings: Callable[[], dict[str, Any]]
) -> None:
    """Answer `status`'s requests on `connection` (a shipper's) with `holdings()`, per
    output `{"held": N, "store_down": bool}`. A channel the broker closes (an exchange of
    that name declared otherwise) costs only the answers, never the shipper."""
    pika = require_pika()
    exchange = shippers_exchange(settings)
    identity = {"host": socket.gethostname(), "pid": os.getpid()}
    try:
        channel = connection.channel()
        channel.exchange_declare(exchange=exchange, exchange_type="fanout", durable=True)
        queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
        channel.queue_bind(queue=queue, exchange=exchange)
    except pika.exceptions.ChannelClosedByBroker as exc:
        log.warning("status cannot ask this shipper what it holds", error=str(exc))
        return

    def answer(ch: Any, method: Any, properties: Any, body: bytes) -> None:
        if not properties.reply_to:
            return
        try:
            payload = orjson.dumps({**identity, "outputs": holdings()})
            reply = pika.BasicProperties(
                correlation_id=properties.correlation_id,
                content_type="application/json",
                expiration=str(int(ANSWER_WAIT * 1000)),
            )
            ch.basic_publish("", properties.reply_to, payload, reply)
        except Exception as exc:  # an answer is a courtesy: it never stops the shipper
            log.debug("cannot answer a status request", error=f"{type(exc).__name__}: {exc}")

    channel.basic_consume(queue, answer, auto_ack=True)


def ask_shippers(
    connection: Any, settings: dict[str, Any], consumers: dict[str, int], wait: float = ANSWER_WAIT
) -> list[dict[str, Any]]:
    """The shippers' answers: at most `wait` seconds, until each output's queue has as many
    answers naming it as `consumers` counts (no consumer anywhere: nobody is asked)."""
    if not any(consumers.values()):
        return []
    pika = require_pika()
    channel = connection.channel()
    try:
        channel.exchange_declare(exchange=shippers_exchange(settings), passive=True)
    except pika.exceptions.ChannelClosedByBroker:  # 404: no shipper has ever listened
        return []
    reply = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
    token = uuid.uuid4().hex
    answers: list[dict[str, Any]] = []

    def take(ch: Any, method: Any, properties: Any, body: bytes) -> None:
        if properties.correlation_id != token:
            return
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        if isinstance(answer, dict) and isinstance(answer.get("outputs"), dict):
            answers.append(answer)

    channel.basic_consume(reply, take, auto_ack=True)
    request = pika.BasicProperties(
        reply_to=reply, correlation_id=token, expiration=str(int(wait * 1000))
    )
    channel.basic_publish(shippers_exchange(settings), "", b"{}", request)
    deadline = time.monotonic() + wait
    while not _all_answered(answers, consumers):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        connection.process_data_events(time_limit=min(left, 0.05))
    channel.close()
    return answers


def _all_answered(answers: list[dict[str, Any]], consumers: dict[str, int]) -> bool:
    return all(
        sum(output in answer["outputs"] for answer in answers) >= count
        for output, count in consumers.items()
    )


def queue_report(connection: Any, settings: dict[str, Any], specs: list[Any]) -> dict[str, Any]:
    """Each existing queue of the outputs of `specs` (topology.QueueSpec) with its messages
    (ready + held unacked by the shippers), ready, unacked and consumers; the shippers'
    answers; and how many consumers did not answer.

    {"queues": {NAME: {"messages", "ready", "unacked", "consumers"}},
     "shippers": [{"host", "pid", "outputs": {OUTPUT: {"held", "store_down"}}}],
     "unanswered": N}
    """
    outputs = [spec.output for spec in specs]
    counts = depths(connection.channel(), settings, specs)
    mains = {output: queue_name(settings, output) for output in outputs}
    consumers = {o: counts[name]["consumers"] for o, name in mains.items() if name in counts}
    answers = ask_shippers(connection, settings, consumers)
    held: dict[str, int] = {}
    answered: dict[str, int] = {}
    for answer in answers:
        for output, row in answer["outputs"].items():
            number = row.get("held", 0) if isinstance(row, dict) else 0
            held[output] = held.get(output, 0) + (number if isinstance(number, int) else 0)
            answered[output] = answered.get(output, 0) + 1
    queues: dict[str, dict[str, int]] = {}
    for name, row in counts.items():
        output = next((o for o, main in mains.items() if main == name), None)
        unacked = held.get(output, 0) if output else 0
        queues[name] = {
            "messages": row["messages"] + unacked,
            "ready": row["messages"],
            "unacked": unacked,
            "consumers": row["consumers"],
        }
    unanswered = sum(max(c - answered.get(o, 0), 0) for o, c in consumers.items())
    shippers = sorted(answers, key=lambda a: (str(a.get("host")), str(a.get("pid"))))
    return {"queues": queues, "shippers": shippers, "unanswered": unanswered}
