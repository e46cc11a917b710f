"""What happened to one record handed to a remote output: the contract between outputs and
whatever delivers for them (the inline deliverer, replay, the shipper).

An output answers one `Outcome` per record of a batch, or raises `StoreUnavailable` when the
store cannot take the batch at all right now (unreachable, timing out, refusing our
credentials, overloaded): every record of it is then retried later.
"""

from __future__ import annotations

DELIVERED = "delivered"  # stored now, or already there (a redelivery of the same id)
RETRY = "retry"  # not stored, worth trying again later (unreachable, timeout, 429, 5xx)
REJECTED = "rejected"  # the store refuses this record for good (e.g. a malformed document)
EXPIRED = "expired"  # too old to be worth sending any more (e.g. an NSCA result past max_age)
POISON = "poison"  # not a result record at all: a dead letter at once, never offered to an output

STATES = (DELIVERED, RETRY, REJECTED, EXPIRED)


class Outcome:
    """What happened to one record of a batch.

    `retry_after` (seconds) is the least a RETRY must wait, when the store said so
    (an HTTP 429 with `Retry-After`); otherwise the usual backoff applies. `duplicate`: a
    DELIVERED record the output had already (stored by its id, or sent): nothing was said
    twice, and `accre-pipeline status` counts it.
    """

    __slots__ = ("state", "error", "retry_after", "duplicate")

    def __init__(
        self,
        state: str,
        error: str | None = None,
        retry_after: float | None = None,
        duplicate: bool = False,
    ):
        self.state = state
        self.error = error
        self.retry_after = retry_after
        self.duplicate = duplicate

    def __repr__(self) -> str:
        extra = f", retry_after={self.retry_after!r}" if self.retry_after is not None else ""
        return f"Outcome({self.state!r}, {self.error!r}{extra})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Outcome) and (self.state, self.error, self.retry_after) == (
            other.state,
            other.error,
            other.retry_after,
        )

    __hash__ = None  # type: ignore[assignment]


class StoreUnavailable(ConnectionError):
    """The store cannot take this batch now: every record of it is retried later.

    `retry_after` (seconds), when the store said how long to wait.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def is_store_failure(exc: BaseException) -> bool:
    """The one rule that classifies a failure, for every output and every path.

    The store's failure (it cannot be reached, times out, or said it cannot take records
    now: `StoreUnavailable`, and any `OSError`, which covers connection errors and timeouts)
    is retried: the record waits; so is a failure of our own set-up (a bad setting, a missing
    client package), which fixing the set-up cures. Anything else raised while one record
    was prepared, rendered or written is that record's failure: it is refused, never
    retried forever.
    """
    from accre_monitor.errors import ConfigError

    # StoreUnavailable is a ConnectionError, an OSError; a setting or a client package that
    # is missing is ours to fix, never the record's
    return isinstance(exc, OSError | ConfigError | ImportError)


def describe(exc: BaseException) -> str:
    """`Type: message`, for reasons kept with a record and for logs, without any secret the
    process knows."""
    from accre_monitor.redaction import scrub

    text = str(exc).strip() or "no details"
    return scrub(f"{type(exc).__name__}: {text}")


def count_duplicates(outcomes: list[Outcome]) -> int:
    """How many records of a batch the output had already (see `Outcome.duplicate`)."""
    return sum(1 for o in outcomes if o.state == DELIVERED and o.duplicate)
