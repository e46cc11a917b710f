"""`RemoteOutput`: what every store shares.

It owns splitting into `batch_size` chunks, one deadline across the chunks, and an
outcome for every record. A store implements `prepare` (one record into what it sends,
rendered in full: whatever it raises refuses that record alone) and `write_batch` (one
chunk; `StoreUnavailable` when the store cannot take it now).

Failures are classified once, by `accre_monitor.outcome.is_store_failure`: the store's
(unreachable, timing out, overloaded) hold the records for a retry; anything else raised
while a chunk was written is narrowed down to the record that raised it, by writing that
chunk again one record at a time, so one bad record never holds back the others.

With `min_occurrences = N` in its section, any remote output first takes the batch into
the cluster state and sends only the records that pass (see `occurrences.py`); the others
are delivered without being sent.
"""

from __future__ import annotations

import time

from accre_monitor.outcome import (
    DELIVERED,
    REJECTED,
    RETRY,
    Outcome,
    StoreUnavailable,
    describe,
    is_store_failure,
)
from accre_monitor.outputs.base import Output

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from accre_monitor.pipeline.state import StateStore, Taken

MAX_OCCURRENCES = 1000


class RemoteOutput(Output):
    """An output that ships records to a store, in batches, idempotently by record `id`.

    `deliver(records, timeout)` returns one Outcome per record, in order, within about
    `timeout` seconds; it raises `StoreUnavailable` when not one record could be sent
    because the store cannot take them now (every record is then retried).
    """

    synchronous = False
    # (module, extra) pairs: client packages this output imports when it delivers
    requires: tuple[tuple[str, str], ...] = ()
    # True: records must reach the store in the order they were taken (a newer result must
    # never be overtaken by an older one): a fresh record waits behind a spooled backlog
    ordered = False
    # True: the output keeps one current state per node and check (Nagios): it must never
    # get a record that is not newer than the last one it got for them, which would say it
    # twice or put the state back in time; such a record is skipped and counted
    newest_only = False
    # True: one process at a time delivers this output's records (it keeps state across
    # records, e.g. the last status per check); on RabbitMQ its queue has a single active
    # consumer
    single_consumer = False
    # the default deadline of inline delivery from the CLI, overridable per output
    settings_keys: dict[str, Any] = {"timeout": 2.0, "batch_size": 500}

    def __init__(self, name: str, settings: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(name, settings, **kw)
        self.timeout = self.setting_seconds("timeout", maximum=600.0)
        self.batch_size = self.setting_int("batch_size", 1, 100_000)
        self.min_occurrences = 0  # 0: every record is sent
        if self.settings.get("min_occurrences") is not None:
            self.min_occurrences = self.setting_int("min_occurrences", 1, MAX_OCCURRENCES)
        self._state: StateStore | None = None

    def deliver(self, records: list[dict[str, Any]], timeout: float) -> list[Outcome]:
        if not self.min_occurrences:
            return self.send(records, timeout)
        return self._deliver_passing(records, timeout)

    def send(self, records: list[dict[str, Any]], timeout: float) -> list[Outcome]:
        """Send every record: in chunks, within `timeout`, one outcome each."""
        deadline = time.monotonic() + timeout
        outcomes, prepared = self.prepare_each(records)
        for start in range(0, len(prepared), self.batch_size):
            chunk = prepared[start : start + self.batch_size]
            left = deadline - time.monotonic()
            if left <= 0.01:
                if start == 0:
                    raise StoreUnavailable(f"{self.name}: no time left to send")
                _owe(outcomes, prepared[start:], "deadline passed before sending")
                break
            try:
                results = self._write_isolating(chunk, left)
            except StoreUnavailable as exc:
                if start == 0:
                    raise
                _owe(outcomes, prepared[start:], str(exc))  # the earlier chunks are stored
                break
            if len(results) != len(chunk):
                message = f"{self.name} answered {len(results)} outcomes for {len(chunk)} records"
                results = [Outcome(RETRY, message)] * len(chunk)
            for (index, _), outcome in zip(chunk, results, strict=True):
                outcomes[index] = outcome
        return [o if o is not None else Outcome(RETRY, "not sent") for o in outcomes]

    # -- min_occurrences ------------------------------------------------------------------

    def _deliver_passing(self, records: list[dict[str, Any]], timeout: float) -> list[Outcome]:
        """Send the records that pass `min_occurrences`; deliver the others unsent."""
        from accre_monitor.outputs.occurrences import note, passes, worth_remembering

        takens = self.take_into_state(records)
        outcomes: list[Outcome | None] = []
        for taken in takens:
            if taken.problem is not None:
                outcomes.append(Outcome(REJECTED, f"the state cannot take it: {taken.problem}"))
            elif passes(taken, self.min_occurrences, self.name):
                outcomes.append(None)
            else:
                outcomes.append(Outcome(DELIVERED))
        passing = [i for i, outcome in enumerate(outcomes) if outcome is None]
        if passing:
            try:
                sent = self.send([records[i] for i in passing], timeout)
            except StoreUnavailable as exc:
                if len(passing) == len(records):
                    raise
                sent = [Outcome(RETRY, str(exc), exc.retry_after)] * len(passing)
            for index, outcome in zip(passing, sent, strict=True):
                outcomes[index] = outcome
        done = [o for o in outcomes if o is not None]
        if self.ordered:
            _wait_behind_retries(takens, done, set(passing))
        self.remember_notified(
            [
                note(takens[index])
                for index in passing
                if done[index].state == DELIVERED and worth_remembering(takens[index], self.name)
            ]
        )
        return done

    def take_into_state(self, records: list[dict[str, Any]]) -> list[Taken]:
        """Take `records` into the cluster state (idempotent, never rewinding): what the
        state says of each. A state that cannot be reached holds the batch for a retry."""
        try:
            return self.state_store().take(records)
        except Exception as exc:  # whatever the store raises is its failure, not the records'
            error = f"{self.name}: cannot use the cluster state: {describe(exc)}"
            raise StoreUnavailable(error) from None

    def remember_notified(self, notes: list[dict[str, Any]]) -> None:
        """Remember in the state what went out; a failure costs at most a repeat, never
        a record (it is sent already), so it is only logged."""
        if not notes:
            return
        try:
            self.state_store().mark_notified(self.name, notes)
        except Exception as exc:  # noqa: BLE001 - see above
            from accre_monitor import log

            log.warning(
                "could not remember what was sent in the cluster state",
                output=self.name,
                error=describe(exc),
            )

    def state_store(self) -> StateStore:
        """The cluster state (`[state] url`; `state.db` beside the spool by default)."""
        if self._state is None:
            from accre_monitor.pipeline.state_store import open_state

            self._state = open_state(self.state_settings, self.state_dir)
        return self._state

    def close(self) -> None:
        state, self._state = self._state, None
        if state is not None:
            state.close()

    def _write_isolating(self, chunk: list[tuple[int, Any]], timeout: float) -> list[Outcome]:
        """`write_batch` of the chunk; when it raises something that is not the store's
        failure, each record of the chunk alone, so that only the one that raises is refused."""
        deadline = time.monotonic() + timeout
        try:
            return self.write_batch([item for _, item in chunk], timeout)
        except Exception as exc:
            if is_store_failure(exc):
                if isinstance(exc, StoreUnavailable):
                    raise
                raise StoreUnavailable(f"{self.name}: {describe(exc)}") from None
            if len(chunk) == 1:
                return [Outcome(REJECTED, f"cannot be sent: {describe(exc)}")]
        results: list[Outcome] = []
        for position, item in enumerate(chunk):
            left = deadline - time.monotonic()
            if left <= 0.01:
                results += [Outcome(RETRY, "deadline passed before sending")] * (
                    len(chunk) - position
                )
                break
            try:
                results += self._write_isolating([item], left)
            except StoreUnavailable as exc:
                results += [Outcome(RETRY, str(exc), exc.retry_after)] * (len(chunk) - position)
                break
        return results

    def prepare_each(
        self, records: list[dict[str, Any]]
    ) -> tuple[list[Outcome | None], list[tuple[int, Any]]]:
        """(outcomes with the bad records already REJECTED, [(index, prepared)] for the rest)."""
        outcomes: list[Outcome | None] = [None] * len(records)
        prepared: list[tuple[int, Any]] = []
        for index, record in enumerate(records):
            try:
                prepared.append((index, self.prepare(record)))
            except Exception as exc:  # noqa: BLE001 - whatever it is, it is this record's
                if is_store_failure(exc):
                    raise
                outcomes[index] = Outcome(REJECTED, f"bad record: {_reason(exc)}")
        return outcomes, prepared

    def prepare(self, record: dict[str, Any]) -> Any:
        """What `write_batch` sends for `record`, rendered in full (anything that depends on
        the record's fields is computed here); whatever it raises refuses the record."""
        return record

    def write_batch(self, items: list[Any], timeout: float) -> list[Outcome]:
        """Send one chunk; one Outcome per item, or StoreUnavailable for the whole chunk."""
        raise NotImplementedError


def _wait_behind_retries(takens: list[Taken], outcomes: list[Outcome], sent: set[int]) -> None:
    """For an output that asks for order: a record delivered unsent behind one of its
    check that must be retried waits with it, so they go out in order."""
    first: dict[tuple[str, str], Outcome] = {}
    for position, (taken, outcome) in enumerate(zip(takens, outcomes, strict=True)):
        if taken.entry is None:
            continue
        key = taken.entry.key
        if outcome.state == RETRY:
            first.setdefault(key, outcome)
        elif key in first and outcome.state == DELIVERED and position not in sent:
            earlier = first[key]
            outcomes[position] = Outcome(
                RETRY, "waits for an earlier result of its check", earlier.retry_after
            )


def _owe(outcomes: list, items: list[tuple[int, Any]], error: str) -> None:
    for index, _ in items:
        outcomes[index] = Outcome(RETRY, error)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"no {exc} field"
    if isinstance(exc, ValueError | TypeError):
        return str(exc)
    return describe(exc)
