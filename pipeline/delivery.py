"""Delivering records to remote outputs: inline from the CLI, and in batches from the spool.

Inline (the in-process bus): the fresh record is offered to every remote output first, each
with a short deadline, all of them within one overall budget, so a run stays bounded even
when a store hangs. Whatever was not delivered goes to the spool; the check's exit code never
changes. Then, in the time left, the run drains a bounded number of older spooled records
for the outputs that just took the fresh one, so a node heals itself after an outage without
any daemon running, and healing one store never starves another of the fresh record.

With `[spool] inline = false` the run only spools (one local write, no client imported) and
a shipper on the node delivers. The codec (orjson) is imported only where a record is encoded
or decoded here: the RabbitMQ bus spools the body it already has without it.
"""

from __future__ import annotations

import os
import time

from accre_monitor import log
from accre_monitor.errors import ConfigError
from accre_monitor.outcome import (
    DELIVERED,
    EXPIRED,
    POISON,
    REJECTED,
    RETRY,
    Outcome,
    count_duplicates,
    describe,
    is_store_failure,
)
from accre_monitor.pipeline.bus import record_bytes
from accre_monitor.pipeline.interruption import interrupt_on_sigterm

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from accre_monitor.pipeline.bus import Destination
    from accre_monitor.pipeline.spool import Spool

# (record id, output, body, error, state, retry_after)
Owed = tuple[str, str, bytes, str | None, str, float | None]


class Settled:
    """What became of the records of one batch: how many were delivered, retried,
    dead-lettered and expired (each record exactly one of these), how many of them the
    store refused (`rejected`: each then retried or dead-lettered), and the `date` of every
    record delivered (how late it arrived, for the shipper's metrics)."""

    __slots__ = ("delivered", "retried", "dead", "expired", "rejected", "dates")

    def __init__(
        self,
        delivered: int = 0,
        retried: int = 0,
        dead: int = 0,
        expired: int = 0,
        rejected: int = 0,
        dates: list[Any] | None = None,
    ) -> None:
        self.delivered = delivered
        self.retried = retried
        self.dead = dead
        self.expired = expired
        self.rejected = rejected
        self.dates = dates if dates is not None else []

    @property
    def counts(self) -> tuple[int, int, int, int]:
        """(delivered, retried, dead, expired), as the batch's log line gives them."""
        return self.delivered, self.retried, self.dead, self.expired

    def __repr__(self) -> str:
        return f"Settled{(*self.counts, self.rejected)}"


def deliver_batch(output: Any, records: list[dict[str, Any]], timeout: float) -> list[Outcome]:
    """The output's outcome for each record. A failure of the whole batch is classified once
    (`is_store_failure`): the store's is RETRY for all; anything else is narrowed down by
    delivering each record alone, so that only the record that raises is REJECTED."""
    try:
        outcomes = output.deliver(records, timeout)
    except Exception as exc:
        if is_store_failure(exc):
            retry_after = getattr(exc, "retry_after", None)
            return [Outcome(RETRY, describe(exc), retry_after) for _ in records]
        if len(records) == 1:
            return [Outcome(REJECTED, f"cannot be delivered: {describe(exc)}")]
        deadline = time.monotonic() + timeout
        outcomes = []
        for position, record in enumerate(records):
            left = max(deadline - time.monotonic(), 0.05)
            outcomes += deliver_batch(output, [record], left)
            if outcomes[-1].state == RETRY:  # the store is the problem after all: stop here
                rest = len(records) - position - 1
                outcomes += [Outcome(RETRY, outcomes[-1].error, outcomes[-1].retry_after)] * rest
                break
        return outcomes
    if len(outcomes) != len(records):
        error = f"output {output.name} answered {len(outcomes)} outcomes for {len(records)}"
        return [Outcome(RETRY, error) for _ in records]
    return outcomes


def drain(
    spool: Spool,
    output: Any,
    limit: int,
    deadline: float,
    due_only: bool = True,
    batch_size: int | None = None,
) -> Iterator[Settled]:
    """Deliver up to `limit` spooled entries for `output`, oldest first, in batches, until
    `deadline` (time.monotonic()); yields what became of each batch (`Settled`) and stops
    at the first batch that delivered nothing (the store is down again).

    An output that asks for order gets the head of its backlog first, and nothing while
    the head waits (see `Spool.claim`). Once a batch was delivered the store has shown it
    is back: the rest of the backlog follows at once, without waiting out its backoff
    (a store's Retry-After still holds).
    """
    from accre_monitor.pipeline.door import admit

    batch_size = batch_size or output.batch_size
    ordered = bool(getattr(output, "ordered", False))
    newest_only = bool(getattr(output, "newest_only", False))
    left = limit
    while left > 0:
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            return
        entries = spool.claim(
            output.name, min(batch_size, left), due_only=due_only, ordered=ordered
        )
        if not entries:
            return
        left -= len(entries)
        settled: list[tuple] = []
        records, admitted = [], []
        dates: list[Any] = []  # of the records delivered
        rejected = 0
        for entry in entries:
            record, problem = admit(entry.body)
            if record is None:
                settled.append((entry, POISON, f"poison record: {problem}"))
            else:
                records.append(record)
                admitted.append(entry)
        if records and newest_only:  # never the same record twice, never an older one late
            newer = spool.only_newer(output.name, records)
            settled += [(e, DELIVERED, None) for e, n in zip(admitted, newer, strict=True) if not n]
            dates += [r.get("date") for r, n in zip(records, newer, strict=True) if not n]
            admitted = [e for e, n in zip(admitted, newer, strict=True) if n]
            records = [r for r, n in zip(records, newer, strict=True) if n]
        if records:
            timeout = min(output.timeout, remaining)
            outcomes = deliver_batch(output, records, timeout)
            settled += [
                (entry, o.state, o.error, o.retry_after)
                for entry, o in zip(admitted, outcomes, strict=True)
            ]
            for record, o in zip(records, outcomes, strict=True):
                if o.state == DELIVERED:
                    dates.append(record.get("date"))
                elif o.state == REJECTED:
                    rejected += 1
            duplicates = count_duplicates(outcomes)
            if duplicates:
                spool.count_duplicates(output.name, duplicates)
            if newest_only:
                spool.delivered(
                    output.name,
                    [r for r, o in zip(records, outcomes, strict=True) if o.state == DELIVERED],
                )
        counts = spool.settle(settled)
        yield Settled(*counts, rejected=rejected, dates=dates)
        if counts[0] == 0 and counts[3] == 0 and counts[2] < len(entries):
            return
        if counts[0]:
            due_only = False


class SpoolingDeliverer:
    """Only spools (`[spool] inline = false`): one local write, due at once for the shipper."""

    def __init__(self, config: Any) -> None:
        from accre_monitor.pipeline.spool import Spool

        self.config = config
        self.spool = Spool.from_config(config)

    def deliver(self, record: dict[str, Any], destinations: list[Destination]) -> None:
        body = record_bytes(record)
        spool_owed(
            self.spool,
            [(record["id"], d.name, body, None, RETRY, None) for d in destinations],
            attempts=0,
        )

    def close(self) -> None:
        self.spool.close()


class InlineDeliverer:
    """Tries each remote output once, now; spools what was not delivered."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self._spool: Spool | None = None
        self.budget = float(config.spool["inline_budget"])
        self.outputs: list[Any] = []

    def deliver(self, record: dict[str, Any], destinations: list[Destination]) -> None:
        deadline = time.monotonic() + self.budget
        body = record_bytes(record)
        owed: list[Owed] = []
        pending = list(destinations)
        healthy: list[Any] = []
        queued: list[Any] = []  # ordered outputs the fresh record waits in line for
        broken: set[str] = set()  # reported once already, as a configuration problem
        restore = interrupt_on_sigterm()
        try:
            while pending:
                destination = pending[0]
                output, problem = self._build(destination)
                if output is None:
                    broken.add(destination.name)
                    owed.append((record["id"], destination.name, body, problem, RETRY, None))
                elif output.ordered and self._queue_behind_backlog(output, record, body):
                    healthy.append(output)  # delivered in order by the drain below
                    queued.append(output)
                else:
                    outcome = self._try(output, record, deadline)
                    if outcome.state == DELIVERED:
                        healthy.append(output)
                    elif outcome.state == EXPIRED:  # too old to be worth keeping
                        self._count_expired(output.name, outcome.error)
                    else:
                        owed.append(
                            (
                                record["id"],
                                output.name,
                                body,
                                outcome.error,
                                outcome.state,
                                outcome.retry_after,
                            )
                        )
                pending.pop(0)
            for output in healthy:  # the fresh record went everywhere it could: now backlogs
                self._heal(output, deadline)
            for output in queued:
                say_if_still_queued(self.spool, output.name, record["id"])
        except BaseException:
            # interrupted (SIGTERM, ^C): whatever was not tried yet is owed too
            owed += [(record["id"], d.name, body, "interrupted", RETRY, None) for d in pending]
            raise
        finally:
            if owed:
                spool_owed(self.spool, owed, quiet=broken)
            restore()

    @property
    def spool(self) -> Spool:
        """The spool, opened when first needed: a run whose stores all took the record, with
        no backlog on disk, never imports sqlite3."""
        if self._spool is None:
            from accre_monitor.pipeline.spool import Spool

            self._spool = Spool.from_config(self.config)
        return self._spool

    def _backlog(self, output: str) -> bool:
        """Whether the spool holds entries for `output` (no spool file: none)."""
        return os.path.exists(self.config.spool["path"]) and self.spool.has_backlog(output)

    def _build(self, destination: Destination) -> tuple[Any, str | None]:
        """(output, None), or (None, why) when its settings are wrong or its package missing."""
        try:
            output = destination.build()
        except ConfigError as exc:
            self.config.problem(f"{exc}; records for it are kept in the spool")
            return None, str(exc)
        if output not in self.outputs:
            self.outputs.append(output)
        return output, None

    def _queue_behind_backlog(self, output: Any, record: dict[str, Any], body: bytes) -> bool:
        """For an output that must get records in order: when older records still wait for
        it, put the fresh one behind them (due now) instead of letting it overtake them."""
        try:
            if not self._backlog(output.name):
                return False
            self.spool.add([(record["id"], output.name, body)], attempts=0)
        except Exception:  # the spool is unusable: deliver the fresh record directly
            return False
        return True

    def _count_expired(self, output: str, why: str | None) -> None:
        log.warning("result expired before delivery", output=output, error=why)
        try:
            self.spool.count_expired(output, 1)
        except Exception as exc:  # counting is for status; it must never fail the run
            log.warning("cannot count the expired result", error=str(exc))

    def _try(self, output: Any, record: dict[str, Any], deadline: float) -> Outcome:
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            return Outcome(RETRY, "no time left in the inline delivery budget")
        timeout = min(output.timeout, remaining)
        return deliver_batch(output, [record], timeout)[0]

    def _heal(self, output: Any, deadline: float) -> None:
        """The store just took a record: deliver what the spool still owes it, if anything."""
        try:
            if not self._backlog(output.name):
                return
            limit = int(self.config.spool["drain_limit"])
            for _ in drain(self.spool, output, limit, deadline, due_only=False):
                pass
        except Exception as exc:  # healing is a bonus; it must never fail the run
            log.warning("could not drain the spool", output=output.name, error=str(exc))

    def close(self) -> None:
        for output in self.outputs:
            try:
                output.close()
            except Exception as exc:
                log.warning("closing output failed", output=output.name, error=str(exc))
        if self._spool is not None:
            self._spool.close()


def spool_owed(
    spool: Spool, owed: list[Owed], attempts: int = 1, quiet: set[str] | None = None
) -> bool:
    """Write what is owed to the spool, then say once what happened: spooled, or lost.

    Outputs in `quiet` had their problem reported already; a successful spooling of their
    record adds nothing to say."""
    try:
        groups: dict[tuple[str | None, float | None], list[tuple[str, str, bytes]]] = {}
        for record_id, output, body, error, _state, retry_after in owed:
            groups.setdefault((error, retry_after), []).append((record_id, output, body))
        for (error, retry_after), entries in groups.items():
            spool.add(entries, error=error, attempts=attempts, not_before=retry_after)
    except Exception as exc:
        log.error(
            "cannot write to the spool: record lost for these outputs",
            spool=spool.path,
            error=f"{type(exc).__name__}: {exc}",
            outputs=[o[1] for o in owed],
            record=owed[0][0],
        )
        return False
    if attempts:  # a delivery failed (spooling by design, with inline = false, is silent)
        for record_id, output, _body, error, state, _retry_after in owed:
            if quiet and output in quiet:
                continue
            log.warning(
                "delivery failed; record spooled for later",
                output=output,
                record=record_id,
                error=error,
                rejected=state == REJECTED,
            )
    return True


def say_if_still_queued(spool: Spool, output: str, record_id: str) -> None:
    """One line for a fresh record that waits behind older ones and was not delivered with
    them in this run: it is in the spool, and stderr says so."""
    try:
        if not spool.holds(record_id, output):
            return
        waiting = spool.pending(output)
    except Exception:  # the line is for the operator; it must never fail the run
        waiting = None
    log.warning(
        "delivery waits for older records; record spooled behind them",
        output=output,
        record=record_id,
        waiting=waiting,
    )
