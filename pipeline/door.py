"""The door every record passes before an output gets it: from the broker (any program may
publish results) and from the spool (a file on disk). What is not a result record is a
poison record: it goes to the dead letters at once, with the reason, and never reaches an
output nor holds back the records behind it.
"""

from __future__ import annotations

from accre_monitor.codec import decode
from accre_monitor.status import STATUSES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

REQUIRED = ("id", "node", "date", "name", "status")


def admit(body: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(the record, None) when `body` is a result record; (None, why) when it is poison."""
    try:
        record = decode(body)
    except ValueError as exc:
        return None, f"not JSON: {exc}"
    problem = record_problem(record)
    return (None, problem) if problem else (record, None)


def record_problem(record: Any) -> str | None:
    """Why `record` is not a result record, or None: a JSON object with non-empty string
    fields `id`, `node`, `date`, `name` and a `status` that is one of the four."""
    if not isinstance(record, dict):
        return f"not a result record: a JSON {type(record).__name__}, not an object"
    for key in REQUIRED:
        value = record.get(key)
        if value is None:
            return f"not a result record: no {key!r} field"
        if not isinstance(value, str) or not value.strip():
            return f"not a result record: {key!r} is not a non-empty string"
    if record["status"] not in STATUSES:
        allowed = ", ".join(STATUSES)
        return f"not a result record: status {record['status'][:40]!r} is not one of {allowed}"
    return None
