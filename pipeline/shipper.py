"""`accre-pipeline ship`: the long-running delivery daemon, one command for both buses.

With `[bus] kind = "rabbitmq"` it consumes each remote output's queue (competing with any
other shippers), delivers in batches (size or time, whichever comes first) through the same
output code as the command line, and acks each message only after its store confirmed it:

- DELIVERED (or EXPIRED) acks; RETRY waits in the output's retry queue for its backoff (or
  the store's Retry-After) and comes back; REJECTED does the same until `[spool]
  max_attempts`, then goes to the dead-letter queue with the reason in its headers; a body
  that is not a JSON record goes there at once. One poison message never blocks its queue.
- A store that cannot take a batch at all (down, timing out) gets no ack: the batch waits in
  the shipper and is tried again with exponential backoff, and the broker sends no more
  than the prefetch window meanwhile. No hot loop, nothing acked, nothing lost.
- The broker restarting or failing over: the shipper reconnects with backoff (trying every
  `[bus] url` in turn), declares the topology again and resumes; messages it held unacked are
  redelivered, and since stores write by record id nothing is stored twice.
- Deliveries run in worker threads while the main thread keeps the AMQP connection alive
  (heartbeats), however slow a store is.
- SIGTERM or SIGINT: consuming stops, the batches in flight finish and are acked, the rest is
  returned to the broker, and the shipper exits 0.

Alongside, and alone when no broker is configured, it drains the local spool continuously,
respecting each entry's backoff: records spooled for the broker are forwarded to it, records
spooled for a store are delivered to it. With `[spool] inline = false` the command line only
spools, and this daemon does all the delivering on the node.
"""

from __future__ import annotations

import contextlib
import random
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from accre_monitor import log
from accre_monitor.codec import decode
from accre_monitor.errors import ConfigError, UserError
from accre_monitor.outcome import DELIVERED, EXPIRED, REJECTED, Outcome
from accre_monitor.redaction import scrub

STORE_BACKOFF_START = 0.5  # seconds before a batch a store could not take is tried again
STORE_BACKOFF_MAX = 30.0
RECONNECT_BACKOFF_MAX = 30.0
SHUTDOWN_GRACE = 30.0  # seconds the batches in flight get to finish on SIGTERM


def remote_names(config: Any, names: list[str] | None) -> list[str]:
    """The remote outputs to ship: those named (checked), else every one the config defines."""
    from accre_monitor.outputs import is_known_output, is_synchronous, unknown_output_error

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
    from accre_monitor.outputs import build_output

    outputs = {}
    for name in names:
        try:
            outputs[name] = build_output(name, config)
        except ConfigError as exc:
            config.problem(f"{exc}; its records wait until this is fixed")
    return outputs


class Stopping:
    """Set by SIGTERM/SIGINT; everything waits on it instead of sleeping."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        def handler(signum: int, frame: Any) -> None:
            log.info("stopping", signal=signal.Signals(signum).name)
            self.event.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def __bool__(self) -> bool:
        return self.event.is_set()

    def wait(self, seconds: float) -> bool:
        return self.event.wait(max(seconds, 0))


# -- the local spool, drained continuously --------------------------------------------------


class SpoolDrainer:
    """Delivers what the local spool owes each output, as entries come due."""

    def __init__(self, config: Any, outputs: dict[str, Any], stopping: Stopping) -> None:
        from accre_monitor.pipeline.spool import Spool

        self.config = config
        self.outputs = outputs
        self.stopping = stopping
        self.spool = Spool.from_config(config)
        self.poll = float(config.bus["batch_wait"])

    def run(self) -> None:
        from accre_monitor.pipeline.delivery import drain

        while not self.stopping:
            busy = False
            for name, output in self.outputs.items():
                if self.stopping:
                    break
                try:
                    if not self.spool.exists():
                        continue
                    started = time.monotonic()
                    for counts in drain(
                        self.spool, output, 100_000, time.monotonic() + 60, due_only=True
                    ):
                        busy = True
                        _log_batch(name, "spool", counts, time.monotonic() - started)
                        started = time.monotonic()
                        if self.stopping:
                            break
                except Exception as exc:  # a broken spool or output must not end the daemon
                    log.error("cannot drain the spool", output=name, error=str(exc))
            if not busy:
                self.stopping.wait(self.poll)
        self.spool.close()


def _log_batch(output: str, source: str, counts: tuple, seconds: float, **extra: Any) -> None:
    delivered, retried, dead, expired = counts
    log.info(
        "batch",
        output=output,
        source=source,
        delivered=delivered,
        retried=retried,
        dead=dead,
        expired=expired,
        seconds=round(seconds, 3),
        **extra,
    )


# -- the RabbitMQ queues --------------------------------------------------------------------


class Message:
    __slots__ = ("tag", "body", "headers", "record", "received")

    def __init__(self, tag: int, body: bytes, headers: dict | None) -> None:
        self.tag = tag
        self.body = body
        self.headers = dict(headers or {})
        self.record: dict[str, Any] | None = None
        self.received = time.monotonic()

    @property
    def attempts(self) -> int:
        value = self.headers.get("x-accre-attempts", 0)
        return value if isinstance(value, int) else 0


class QueueWorker:
    """One output's queue: a buffer of unacked messages, at most one batch in flight."""

    def __init__(self, name: str, output: Any, stages: list[Any]) -> None:
        self.name = name
        self.output = output
        self.stages = stages
        self.buffer: list[Message] = []
        self.inflight: list[Message] = []
        self.future: Future | None = None
        self.started = 0.0
        self.not_before = 0.0
        self.down_since: float | None = None
        self.failures = 0

    def take(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self.buffer.append(Message(method.delivery_tag, body, properties.headers))

    def ready(self, now: float, batch_size: int, batch_wait: float, flush: bool) -> bool:
        if self.future is not None or not self.buffer or now < self.not_before:
            return False
        return (
            flush or len(self.buffer) >= batch_size or now - self.buffer[0].received >= batch_wait
        )

    def reset(self) -> None:
        """The connection is gone: its delivery tags mean nothing any more."""
        self.buffer.clear()
        self.inflight = []
        self.future = None


class RabbitShipper:
    """Consumes the output queues on one connection and settles every message."""

    def __init__(self, config: Any, outputs: dict[str, Any], stopping: Stopping) -> None:
        from accre_monitor.pipeline.spool import Spool
        from accre_monitor.pipeline.wiring import filter_stages

        self.config = config
        self.settings = config.bus
        self.stopping = stopping
        self.workers = {
            name: QueueWorker(name, output, filter_stages(name, config))
            for name, output in outputs.items()
        }
        self.backoff = Spool(config.spool).backoff  # the spool's backoff, for retries
        self.max_attempts = int(config.spool["max_attempts"])
        self.pool = ThreadPoolExecutor(max_workers=max(len(self.workers), 1))
        self.connection: Any = None
        self.channel: Any = None
        self.publisher: Any = None

    # -- connection ---------------------------------------------------------------------

    def run(self) -> None:
        from accre_monitor.pipeline.amqp import BrokerUnavailable

        delay = 0.5
        while not self.stopping:
            try:
                self._connect()
                delay = 0.5
                self._consume()
            except BrokerUnavailable as exc:
                log.warning(
                    "broker unavailable; retrying", error=str(exc), retry_in=round(delay, 1)
                )
            except Exception as exc:
                if not _is_connection_error(exc):
                    raise
                log.warning(
                    "connection to the broker lost; reconnecting",
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in=round(delay, 1),
                )
            finally:
                self._drop_connection()
            if self.stopping.wait(delay * (0.5 + random.random())):
                break
            delay = min(delay * 2, RECONNECT_BACKOFF_MAX)
        self.pool.shutdown(wait=True)

    def _connect(self) -> None:
        from accre_monitor.pipeline.amqp import connect, describe_urls
        from accre_monitor.pipeline.topology import declare, queue_name, queue_specs

        self.connection = connect(self.settings)
        self.channel = self.connection.channel()
        self.channel.basic_qos(prefetch_count=int(self.settings["prefetch"]))
        self.publisher = self.connection.channel()
        self.publisher.confirm_delivery()
        declare(self.channel, self.settings, queue_specs(self.config, list(self.workers)))
        for name, worker in self.workers.items():
            worker.reset()
            self.channel.basic_consume(queue_name(self.settings, name), worker.take)
        log.info(
            "connected to the broker",
            broker=describe_urls(self.settings),
            outputs=list(self.workers),
        )

    def _drop_connection(self) -> None:
        for worker in self.workers.values():
            if worker.future is not None:  # its result cannot be acked any more
                with contextlib.suppress(Exception):
                    worker.future.result(timeout=SHUTDOWN_GRACE)
            worker.reset()
        connection, self.connection = self.connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.close()

    # -- the loop -----------------------------------------------------------------------

    def _consume(self) -> None:
        batch_size = int(self.settings["batch_size"])
        batch_wait = float(self.settings["batch_wait"])
        while not self.stopping:
            self.connection.process_data_events(time_limit=0.05)
            self._step(batch_size, batch_wait, flush=False)
        self._shut_down(batch_size, batch_wait)

    def _step(self, batch_size: int, batch_wait: float, flush: bool) -> None:
        now = time.monotonic()
        for worker in self.workers.values():
            if worker.future is not None and worker.future.done():
                self._settle(worker)
            if worker.ready(now, batch_size, batch_wait, flush):
                self._start(worker, batch_size)

    def _shut_down(self, batch_size: int, batch_wait: float) -> None:
        """Stop taking messages; let the batches in flight finish and ack them; return the rest."""
        for tag in list(self.channel.consumer_tags):
            with contextlib.suppress(Exception):
                self.channel.basic_cancel(tag)
        deadline = time.monotonic() + SHUTDOWN_GRACE
        while time.monotonic() < deadline and any(w.future for w in self.workers.values()):
            self.connection.process_data_events(time_limit=0.05)
            for worker in self.workers.values():
                if worker.future is not None and worker.future.done():
                    self._settle(worker)
        for worker in self.workers.values():
            for message in worker.buffer:
                self.channel.basic_nack(message.tag, requeue=True)
            worker.buffer.clear()

    # -- one batch ----------------------------------------------------------------------

    def _start(self, worker: QueueWorker, batch_size: int) -> None:
        from accre_monitor.pipeline.filters import all_match

        batch, worker.buffer = worker.buffer[:batch_size], worker.buffer[batch_size:]
        deliverable = []
        for message in batch:
            try:
                record = decode(message.body)
                if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                    raise ValueError("not a result record (a JSON object with an id)")
            except ValueError as exc:
                self._dead_letter(worker, message, f"poison message: {exc}")
                continue
            if not all_match(worker.stages, record):
                self.channel.basic_ack(message.tag)  # the binding was broader than the filter
                continue
            message.record = record
            deliverable.append(message)
        if not deliverable:
            return
        worker.inflight = deliverable
        worker.started = time.monotonic()
        records = [m.record for m in deliverable]
        timeout = max(worker.output.timeout, 1.0) * (1 + len(records) // worker.output.batch_size)
        worker.future = self.pool.submit(worker.output.deliver, records, timeout)
        worker.future.add_done_callback(self._waker())

    def _waker(self) -> Any:
        """A callback for a finished batch that ends the main thread's wait for broker
        events at once, so that the batch is acked (and the prefetch window reopened) now
        rather than at the end of the wait."""
        connection = self.connection

        def wake(future: Future) -> None:
            with contextlib.suppress(Exception):  # the connection is closing: nothing to wake
                connection.add_callback_threadsafe(_nothing)

        return wake

    def _settle(self, worker: QueueWorker) -> None:
        future, worker.future = worker.future, None
        messages, worker.inflight = worker.inflight, []
        seconds = time.monotonic() - worker.started
        try:
            outcomes = future.result()
            if len(outcomes) != len(messages):
                raise RuntimeError(f"{len(outcomes)} outcomes for {len(messages)} records")
        except Exception as exc:  # the store cannot take the batch now: keep it, unacked
            worker.failures += 1
            wait = min(STORE_BACKOFF_START * 2 ** (worker.failures - 1), STORE_BACKOFF_MAX)
            retry_after = getattr(exc, "retry_after", None)
            wait = max(wait, float(retry_after or 0))
            worker.not_before = time.monotonic() + wait * (0.5 + random.random() / 2)
            worker.buffer = messages + worker.buffer
            log.debug("batch held for a retry", output=worker.name, retry_in=round(wait, 2))
            if worker.down_since is None:
                worker.down_since = time.monotonic()
                log.warning(
                    "store cannot take records; holding them unacked",
                    output=worker.name,
                    error=f"{type(exc).__name__}: {exc}",
                    records=len(messages),
                )
            return
        if worker.down_since is not None:
            log.info(
                "store is taking records again",
                output=worker.name,
                after=round(time.monotonic() - worker.down_since, 1),
            )
        worker.down_since = None
        worker.failures = 0
        counts = [0, 0, 0, 0]
        stored = []
        for message, outcome in zip(messages, outcomes, strict=True):
            if outcome.state in (DELIVERED, EXPIRED):
                stored.append(message.tag)
                counts[0 if outcome.state == DELIVERED else 3] += 1
            else:
                counts[self._settle_one(worker, message, outcome)] += 1
        self._ack(stored)
        _log_batch(worker.name, "broker", tuple(counts), seconds)

    def _ack(self, tags: list[int]) -> None:
        """Ack the messages `tags`: those below every other unacked message of the channel
        with one `multiple` ack, the others one by one.

        Each ack is a write to the socket (500 of them took 40 ms, twice what the batch took
        in Redis). A `multiple` ack takes every unacked delivery up to its tag, so it may only
        reach below the lowest message still held (buffered, or in another output's batch);
        deliveries not yet handed to us all have higher tags than any we hold.
        """
        if not tags:
            return
        held = [m.tag for w in self.workers.values() for m in (*w.buffer, *w.inflight)]
        lowest_held = min(held, default=None)
        tags = sorted(tags)
        below = tags if lowest_held is None else [t for t in tags if t < lowest_held]
        if below:
            self.channel.basic_ack(below[-1], multiple=len(below) > 1)
        for tag in tags[len(below) :]:
            self.channel.basic_ack(tag)

    def _settle_one(self, worker: QueueWorker, message: Message, outcome: Outcome) -> int:
        """Retry later or dead-letter one message (acking it); the index of its count."""
        attempts = message.attempts + 1
        if outcome.state == REJECTED and attempts >= self.max_attempts:
            self._dead_letter(worker, message, outcome.error or "rejected", attempts)
            return 2
        wait = self.backoff(attempts)
        if outcome.retry_after:
            wait = max(wait, float(outcome.retry_after))
        self._republish_for_retry(worker, message, attempts, wait, outcome.error)
        return 1

    def _republish_for_retry(
        self, worker: QueueWorker, message: Message, attempts: int, wait: float, error: Any
    ) -> None:
        import pika

        from accre_monitor.pipeline.topology import ATTEMPTS_HEADER, REASON_HEADER, retry_queue

        reason = scrub(str(error))[:1000]
        headers = {**message.headers, ATTEMPTS_HEADER: attempts, REASON_HEADER: reason}
        properties = pika.BasicProperties(
            delivery_mode=2,
            content_type="application/json",
            message_id=str((message.record or {}).get("id", "")),
            headers=headers,
            expiration=str(max(int(wait * 1000), 1)),
        )
        self.publisher.basic_publish(
            "", retry_queue(self.settings, worker.name), message.body, properties
        )
        self.channel.basic_ack(message.tag)

    def _dead_letter(
        self, worker: QueueWorker, message: Message, reason: str, attempts: int | None = None
    ) -> None:
        import pika

        from accre_monitor.pipeline.topology import (
            ATTEMPTS_HEADER,
            OUTPUT_HEADER,
            REASON_HEADER,
            dead_queue,
        )

        reason = scrub(reason)  # the header is read by anyone with access to the queue
        headers = {
            **message.headers,
            REASON_HEADER: reason[:1000],
            OUTPUT_HEADER: worker.name,
            ATTEMPTS_HEADER: attempts if attempts is not None else message.attempts,
        }
        properties = pika.BasicProperties(
            delivery_mode=2, content_type="application/json", headers=headers
        )
        self.publisher.basic_publish(
            dead_queue(self.settings, worker.name), "", message.body, properties
        )
        self.channel.basic_ack(message.tag)
        log.warning("record dead-lettered", output=worker.name, reason=reason[:200])


def _nothing() -> None:
    """Run in the main thread by pika; its arrival alone is what matters."""


def _is_connection_error(exc: BaseException) -> bool:
    import pika.exceptions

    return isinstance(
        exc,
        pika.exceptions.AMQPConnectionError
        | pika.exceptions.AMQPChannelError
        | pika.exceptions.StreamLostError
        | ConnectionError
        | OSError,
    )


# -- the command ----------------------------------------------------------------------------


def ship(config: Any, names: list[str] | None = None) -> int:
    """Run until SIGTERM or SIGINT; returns the exit code (0: a clean stop)."""
    stopping = Stopping()
    stopping.install()
    wanted = remote_names(config, names)
    outputs = build_outputs(config, wanted)
    rabbit = config.bus["kind"] == "rabbitmq"
    # the spool drainer runs beside the queue consumers: it gets output instances of its own
    spool_outputs = build_outputs(config, list(outputs)) if rabbit else dict(outputs)
    if rabbit:
        from accre_monitor.pipeline.rabbitmq_bus import BROKER, BrokerForwarder, remote_outputs

        spool_outputs[BROKER] = BrokerForwarder(config, remote_outputs(config))
    if not outputs and not rabbit:
        log.error("nothing to ship: no remote output is configured (or none can be built)")
        return 1
    log.info(
        "shipper started",
        bus=config.bus["kind"],
        outputs=list(outputs),
        spool=config.spool["path"],
    )
    drainer = SpoolDrainer(config, spool_outputs, stopping)
    if rabbit:
        thread = threading.Thread(target=drainer.run, name="spool", daemon=True)
        thread.start()
        RabbitShipper(config, outputs, stopping).run()
        thread.join(timeout=SHUTDOWN_GRACE)
    else:
        drainer.run()
    for output in [*outputs.values(), *spool_outputs.values()]:
        with contextlib.suppress(Exception):
            output.close()
    log.info("shipper stopped")
    return 0
