"""A record's `date` as a moment in time, the one way every output reads it.

Records carry ISO 8601 with a UTC offset; a date without one (a record from another
program) is taken as UTC, as Elasticsearch reads it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def record_moment(date: object) -> datetime:
    """The aware datetime of a record's `date`; ValueError when it is not ISO 8601."""
    try:
        moment = datetime.fromisoformat(date)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"record date {date!r} is not ISO 8601") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def epoch_seconds(date: object) -> float:
    return record_moment(date).timestamp()


def epoch_micros(date: object) -> int:
    """Whole microseconds since the epoch, exact (no float rounding)."""
    return (record_moment(date) - _EPOCH) // _MICROSECOND
