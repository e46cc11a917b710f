"""The broker's side of the shipper: consumes each remote output's queue and settles every
message (ack after the store confirmed, retry, dead letter), see `accre_monitor.pipeline.shipper`.
"""

from __future__ import annotations

import contextlib
import random
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pika
import pika.exceptions

from accre_monitor import log
from accre_monitor.outcome import (
    DELIVERED,
    EXPIRED,
    REJECTED,
    Outcome,
    StoreUnavailable,
    count_duplicates,
    describe,
    is_store_failure,
)
from accre_monitor.pipeline.amqp import BrokerUnavailable, connect, describe_urls
from accre_monitor.pipeline.daemon import Stopping, log_batch
from accre_monitor.pipeline.delivery import Settled, deliver_batch
from accre_monitor.pipeline.door import admit
from accre_monitor.pipeline.filters import all_match
from accre_monitor.pipeline.holdings import answer_requests
from accre_monitor.pipeline.retry import RetryPolicy
from accre_monitor.pipeline.ship_metrics import NO_METRICS, ShipMetrics
from accre_monitor.pipeline.spool import Spool
from accre_monitor.pipeline.topology import (
    ATTEMPTS_HEADER,
    OUTPUT_HEADER,
    REASON_HEADER,
    dead_queue,
    declare,
    queue_name,
    queue_specs,
    retry_queue,
)
from accre_monitor.pipeline.wiring import filter_stages
from accre_monitor.redaction import scrub

RECONNECT_BACKOFF_MAX = 30.0
SHUTDOWN_GRACE = 30.0  # seconds the batches in flight get to finish on SIGTERM
FLUSH_EVERY = 1.0  # seconds between two calls of an output's `flush_due` (grouped messages)


class Message:
    __slots__ = ("tag", "body", "headers", "record", "received", "held")

    def __init__(self, tag: int, body: bytes, headers: dict | None) -> None:
        self.tag = tag
        self.body = body
        self.headers = dict(headers or {})
        self.record: dict[str, Any] | None = None
        self.received = time.monotonic()
        self.held = 0  # attempts made while this shipper held it (an ordered output's head)

    @property
    def attempts(self) -> int:
        """Attempts made so far: those its headers tell of, and those made here."""
        value = self.headers.get(ATTEMPTS_HEADER, 0)
        return (value if isinstance(value, int) else 0) + self.held


class QueueWorker:
    """One output's queue: a buffer of unacked messages, at most one batch in flight."""

    def __init__(self, name: str, output: Any, stages: list[Any]) -> None:
        self.name = name
        self.output = output
        self.stages = stages
        self.buffer: list[Message] = []
        self.inflight: list[Message] = []
        self.future: Future | None = None
        self.flushing: Future | None = None  # the output posting what fell due (flush_due)
        self.flushed = 0.0
        self.started = 0.0
        self.not_before = 0.0
        self.down_since: float | None = None
        self.failures = 0
        self.poisoned = 0  # dead-lettered at the door, counted with the batch they came in

    def take(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self.buffer.append(Message(method.delivery_tag, body, properties.headers))

    def ready(self, now: float, batch_size: int, batch_wait: float, flush: bool) -> bool:
        if self.future is not None or self.flushing is not None:
            return False
        if not self.buffer or now < self.not_before:
            return False
        return (
            flush or len(self.buffer) >= batch_size or now - self.buffer[0].received >= batch_wait
        )

    def flush_due(self, now: float) -> bool:
        """Whether to let the output post what fell due with time (grouped messages): about
        once a second, never while one of its batches or flushes is under way."""
        if self.future is not None or self.flushing is not None:
            return False
        return hasattr(self.output, "flush_due") and now - self.flushed >= FLUSH_EVERY

    def reset(self) -> None:
        """The connection is gone: its delivery tags mean nothing any more."""
        self.buffer.clear()
        self.inflight = []
        self.future = None


class RabbitShipper:
    """Consumes the output queues on one connection and settles every message."""

    def __init__(
        self,
        config: Any,
        outputs: dict[str, Any],
        stopping: Stopping,
        metrics: ShipMetrics = NO_METRICS,
    ) -> None:
        self.config = config
        self.settings = config.bus
        self.stopping = stopping
        self.metrics = metrics
        metrics.watch_holdings(self.holdings)
        self.workers = {
            name: QueueWorker(name, output, filter_stages(name, config))
            for name, output in outputs.items()
        }
        self.policy = RetryPolicy.from_settings(config.spool)  # the spool's, one policy
        self.spool = Spool(config.spool)  # what ordered outputs delivered last, duplicates
        self.pool = ThreadPoolExecutor(max_workers=max(len(self.workers), 1))
        self.connection: Any = None
        self.channel: Any = None
        self.publisher: Any = None

    # -- connection ---------------------------------------------------------------------

    def run(self) -> None:
        delay = 0.5
        while not self.stopping:
            try:
                self._connect()
                self.metrics.connected()
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
                self.metrics.disconnected()
                self._drop_connection()
            if self.stopping.wait(delay * (0.5 + random.random())):
                break
            delay = min(delay * 2, RECONNECT_BACKOFF_MAX)
        self.pool.shutdown(wait=True)

    def _connect(self) -> None:
        self.connection = connect(self.settings)
        self.channel = self.connection.channel()
        self.channel.basic_qos(prefetch_count=int(self.settings["prefetch"]))
        self.publisher = self.connection.channel()
        self.publisher.confirm_delivery()
        declare(self.channel, self.settings, queue_specs(self.config, list(self.workers)))
        for name, worker in self.workers.items():
            worker.reset()
            self.channel.basic_consume(queue_name(self.settings, name), worker.take)
        answer_requests(self.connection, self.settings, self.holdings)
        log.info(
            "connected to the broker",
            broker=describe_urls(self.settings),
            outputs=list(self.workers),
        )

    def holdings(self) -> dict[str, dict[str, Any]]:
        """Per output, the records this shipper holds unacked (for `accre-pipeline status`)."""
        return {
            name: {
                "held": len(worker.buffer) + len(worker.inflight),
                "store_down": worker.down_since is not None,
            }
            for name, worker in self.workers.items()
        }

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
            if worker.flushing is not None and worker.flushing.done():
                worker.flushing = None
            if worker.ready(now, batch_size, batch_wait, flush):
                self._start(worker, batch_size)
            elif worker.flush_due(now):
                # in the pool, as its batches are: one thing at a time per output
                worker.flushed = now
                worker.flushing = self.pool.submit(flush_output, worker.output)

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
        batch, worker.buffer = worker.buffer[:batch_size], worker.buffer[batch_size:]
        deliverable = []
        for message in batch:
            record, problem = admit(message.body)  # the door: only result records go on
            if record is None:
                self._dead_letter(worker, message, f"poison record: {problem}")
                worker.poisoned += 1
                continue
            if not all_match(worker.stages, record):
                self.channel.basic_ack(message.tag)  # the binding was broader than the filter
                continue
            message.record = record
            deliverable.append(message)
        if deliverable and getattr(worker.output, "newest_only", False):
            deliverable = self._skip_duplicates(worker, deliverable)
        if not deliverable:
            if worker.poisoned:  # a batch of nothing but poison: settled at the door
                dead, worker.poisoned = worker.poisoned, 0
                log_batch(worker.name, "broker", Settled(dead=dead), 0.0, self.metrics)
            return
        worker.inflight = deliverable
        worker.started = time.monotonic()
        records = [m.record for m in deliverable]
        timeout = max(worker.output.timeout, 1.0) * (1 + len(records) // worker.output.batch_size)
        worker.future = self.pool.submit(attempt, worker.output, records, timeout)
        worker.future.add_done_callback(self._waker())

    def _skip_duplicates(self, worker: QueueWorker, messages: list[Message]) -> list[Message]:
        """A newest-only output (NSCA) never gets a record twice, nor one older than the last
        it got for the same node and check: those are acked here and counted (`status`)."""
        try:
            newer = self.spool.only_newer(worker.name, [m.record for m in messages])
        except Exception as exc:  # the memory is a safeguard: without it, deliver
            log.warning("cannot check for duplicates", output=worker.name, error=str(exc))
            return messages
        for message, fresh in zip(messages, newer, strict=True):
            if not fresh:
                self.channel.basic_ack(message.tag)
                log.info(
                    "duplicate or superseded record skipped",
                    output=worker.name,
                    record=message.record.get("id"),
                )
        return [m for m, fresh in zip(messages, newer, strict=True) if fresh]

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
        poisoned, worker.poisoned = worker.poisoned, 0
        try:
            outcomes, failure = future.result()
        except Exception as exc:  # noqa: BLE001 - a fault outside the output: hold, never crash
            outcomes, failure = [], exc
        if failure is not None:  # the store cannot take the batch now: keep it, unacked
            held = Settled(retried=len(messages), dead=poisoned)
            self.metrics.batch(worker.name, "broker", held, seconds)  # logged once, below
            worker.failures += 1
            self._hold(worker, messages, worker.failures, getattr(failure, "retry_after", None))
            if worker.down_since is None:
                worker.down_since = time.monotonic()
                log.warning(
                    "store cannot take records; holding them unacked",
                    output=worker.name,
                    error=describe(failure),
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
        counts = [0, 0, poisoned, 0]
        rejected = 0
        stored: list[int] = []
        delivered: list[dict[str, Any]] = []
        held: list[Message] = []
        held_outcome: Outcome | None = None
        for message, outcome in zip(messages, outcomes, strict=True):
            attempts = message.attempts + 1
            rejected += outcome.state == REJECTED
            if outcome.state in (DELIVERED, EXPIRED):
                stored.append(message.tag)
                counts[0 if outcome.state == DELIVERED else 3] += 1
                if outcome.state == DELIVERED:
                    delivered.append(message.record or {})
            elif self.policy.gives_up(outcome.state, attempts):
                self._dead_letter(worker, message, outcome.error or "rejected", attempts)
                counts[2] += 1
            elif worker.output.ordered or held:
                # an ordered output: this record and what follows it wait, in order
                held.append(message)
                held_outcome = held_outcome or outcome
                counts[1] += 1
            else:
                self._retry_later(worker, message, attempts, outcome)
                counts[1] += 1
        self._ack(stored)
        if delivered and getattr(worker.output, "newest_only", False):
            self._remember(worker, delivered)
        duplicates = count_duplicates(outcomes)
        if duplicates:
            self._count_duplicates(worker, duplicates)
        if held and held_outcome is not None:
            for message in held:
                message.held += 1
            worker.failures += 1
            self._hold(worker, held, worker.failures, held_outcome.retry_after)
        else:
            worker.failures = 0
        dates = [record.get("date") for record in delivered]
        settled = Settled(*counts, rejected=rejected, dates=dates)
        log_batch(worker.name, "broker", settled, seconds, self.metrics)

    def _hold(
        self, worker: QueueWorker, messages: list[Message], failures: int, retry_after: Any
    ) -> None:
        """Keep `messages` unacked at the head of the worker's buffer, and send it nothing
        before the policy's probe delay (or the store's Retry-After) has passed."""
        wait = self.policy.probe(failures, retry_after)
        worker.not_before = time.monotonic() + wait
        worker.buffer = messages + worker.buffer
        log.debug("batch held for a retry", output=worker.name, retry_in=round(wait, 2))

    def _count_duplicates(self, worker: QueueWorker, count: int) -> None:
        try:
            self.spool.count_duplicates(worker.name, count)
        except Exception as exc:  # counting is for status; it must never stop a queue
            log.warning("cannot count duplicates", output=worker.name, error=str(exc))

    def _remember(self, worker: QueueWorker, records: list[dict[str, Any]]) -> None:
        try:
            self.spool.delivered(worker.name, records)
        except Exception as exc:  # a safeguard against duplicates, never a reason to stop
            log.warning("cannot remember what was delivered", output=worker.name, error=str(exc))

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

    def _retry_later(
        self, worker: QueueWorker, message: Message, attempts: int, outcome: Outcome
    ) -> None:
        """Park one message in the delay queue of its backoff step (acking it): it comes
        back to the output's queue when that delay has passed, never later because of
        another record's longer backoff (every message of a delay queue waits as long)."""
        delay = self.policy.delay_for(attempts, outcome.retry_after)
        headers = {
            **message.headers,
            ATTEMPTS_HEADER: attempts,
            REASON_HEADER: scrub(str(outcome.error))[:1000],
        }
        properties = pika.BasicProperties(
            delivery_mode=2,
            content_type="application/json",
            message_id=str((message.record or {}).get("id", "")),
            headers=headers,
        )
        self.publisher.basic_publish(
            "", retry_queue(self.settings, worker.name, delay), message.body, properties
        )
        self.channel.basic_ack(message.tag)

    def _dead_letter(
        self, worker: QueueWorker, message: Message, reason: str, attempts: int | None = None
    ) -> None:
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


def attempt(
    output: Any, records: list[dict[str, Any]], timeout: float
) -> tuple[list[Outcome], BaseException | None]:
    """One batch for `output`, in a worker thread: (an outcome per record, None), or
    ([], the failure) when the store cannot take the batch at all (classified once, by
    `is_store_failure`; anything else is narrowed down to the record that raised it)."""
    try:
        outcomes = output.deliver(records, timeout)
    except Exception as exc:
        if is_store_failure(exc):
            return [], exc
        return deliver_batch(output, records, timeout), None
    if len(outcomes) != len(records):
        problem = f"{len(outcomes)} outcomes for {len(records)} records"
        return [], StoreUnavailable(f"output {output.name} answered {problem}")
    return outcomes, None


def flush_output(output: Any) -> None:
    """Let `output` post what fell due with time, in a worker thread; a failure is logged
    (the output keeps what it owes and tries again at the next flush)."""
    try:
        output.flush_due()
    except Exception as exc:  # noqa: BLE001 - the shipper goes on
        log.error("cannot post what fell due", output=output.name, error=describe(exc))


def _nothing() -> None:
    """Run in the main thread by pika; its arrival alone is what matters."""


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(
        exc,
        pika.exceptions.AMQPConnectionError
        | pika.exceptions.AMQPChannelError
        | pika.exceptions.StreamLostError
        | ConnectionError
        | OSError,
    )
