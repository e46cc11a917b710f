"""Delivering records to remote outputs: inline from the CLI, and in batches from the spool.

Inline (the in-process bus): each remote output is tried once with a short deadline,
all of them within one overall budget, so a run stays bounded even when a store hangs.
Whatever was not delivered goes to the spool; the check's exit code never changes.
After a successful delivery the run also drains a bounded number of older spooled
records for that output in the time left, so a node heals itself after an outage
without any daemon running.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from accre_monitor import log
from accre_monitor.outputs.base import DELIVERED, REJECTED, RETRY, Outcome
from accre_monitor.pipeline.codec import decode, encode
from accre_monitor.pipeline.spool import Spool


def deliver_batch(output: Any, records: list[dict[str, Any]], timeout: float) -> list[Outcome]:
    """The output's outcome for each record; a failure of the whole batch is RETRY for all."""
    try:
        outcomes = output.deliver(records, timeout)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        return [Outcome(RETRY, error) for _ in records]
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
) -> Iterator[tuple[int, int, int]]:
    """Deliver up to `limit` spooled entries for `output`, oldest first, in batches, until
    `deadline` (time.monotonic()); yields (delivered, retried, dead) after each batch and
    stops at the first batch that delivered nothing (the store is down again)."""
    batch_size = batch_size or int(output.settings.get("batch_size", 500))
    left = limit
    while left > 0:
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            return
        entries = spool.claim(output.name, min(batch_size, left), due_only=due_only)
        if not entries:
            return
        left -= len(entries)
        records = [decode(entry.body) for entry in entries]
        timeout = min(float(output.settings.get("timeout", 2.0)), remaining)
        outcomes = deliver_batch(output, records, timeout)
        counts = spool.settle(
            [(entry, o.state, o.error) for entry, o in zip(entries, outcomes, strict=True)]
        )
        yield counts
        if counts[0] == 0:
            return


class Interrupted(KeyboardInterrupt):
    """SIGTERM arrived while records were in flight (handled like ^C by the CLI)."""


def _raise_interrupted(signum: int, frame: Any) -> None:
    raise Interrupted(f"signal {signum}")


def _interrupt_on_sigterm() -> Any:
    """Make SIGTERM (Nagios or NRPE giving up on us) raise, so the record is spooled first.

    Returns the function that puts the previous handler back."""
    import signal

    try:
        previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    except ValueError:  # not the main thread: leave signals alone
        return lambda: None
    return lambda: signal.signal(signal.SIGTERM, previous)


class InlineDeliverer:
    """Tries each remote output once, now; spools what was not delivered."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.spool = Spool.from_config(config)
        self.budget = float(self.spool.settings["inline_budget"])
        self.outputs: list[Any] = []

    def deliver(self, record: dict[str, Any], outputs: list[Any]) -> None:
        deadline = time.monotonic() + self.budget
        body = encode(record)
        owed: list[tuple[str, str, bytes, str | None, str]] = []
        pending = list(outputs)
        restore = _interrupt_on_sigterm()
        try:
            while pending:
                output = pending[0]
                self.outputs.append(output)
                outcome = self._try(output, record, deadline)
                pending.pop(0)
                if outcome.state == DELIVERED:
                    self._heal(output, deadline)
                    continue
                owed.append((record["id"], output.name, body, outcome.error, outcome.state))
        except BaseException:
            # interrupted (SIGTERM, ^C): whatever was not tried yet is owed too
            owed += [(record["id"], o.name, body, "interrupted", RETRY) for o in pending]
            raise
        finally:
            if owed:
                self._spool(owed)
            restore()

    def _try(self, output: Any, record: dict[str, Any], deadline: float) -> Outcome:
        remaining = deadline - time.monotonic()
        if remaining <= 0.05:
            return Outcome(RETRY, "no time left in the inline delivery budget")
        timeout = min(float(output.settings.get("timeout", 2.0)), remaining)
        return deliver_batch(output, [record], timeout)[0]

    def _heal(self, output: Any, deadline: float) -> None:
        """The store just took a record: deliver what the spool still owes it, if anything."""
        try:
            if not self.spool.exists() or not self.spool.has_backlog(output.name):
                return
            limit = int(self.spool.settings["drain_limit"])
            for _ in drain(self.spool, output, limit, deadline, due_only=False):
                pass
        except Exception as exc:  # healing is a bonus; it must never fail the run
            log.warning("could not drain the spool", output=output.name, error=str(exc))

    def _spool(self, owed: list[tuple[str, str, bytes, str | None, str]]) -> None:
        for record_id, output, _body, error, state in owed:
            log.warning(
                "delivery failed; record spooled for later",
                output=output,
                record=record_id,
                error=error,
                rejected=state == REJECTED,
            )
        try:
            by_error: dict[str | None, list[tuple[str, str, bytes]]] = {}
            for record_id, output, body, error, _state in owed:
                by_error.setdefault(error, []).append((record_id, output, body))
            for error, entries in by_error.items():
                self.spool.add(entries, error=error)
        except Exception as exc:
            log.error(
                "cannot write to the spool: record lost for these outputs",
                spool=self.spool.path,
                error=f"{type(exc).__name__}: {exc}",
                outputs=[o[1] for o in owed],
            )

    def close(self) -> None:
        for output in self.outputs:
            try:
                output.close()
            except Exception as exc:
                log.warning("closing output failed", output=output.name, error=str(exc))
        self.spool.close()
