"""Alert after N: `min_occurrences = N` in any remote output's section, decided from the
cluster state with Sensu Go's semantics.

- A non-OK record passes only once its check has given that status N times in a row
  (`occurrences`, as the state took it): CRITICAL, CRITICAL, CRITICAL passes the third.
- A resolution (non-OK -> OK) passes only if the problem had passed: its run's
  `occurrences_watermark` reached N (a notifier asks instead whether it had said the
  problem).
- Any other OK passes: there is nothing to hold back.
- A record the state already has a newer one for (superseded: a replayed backlog, an old
  record late) never passes.
- A record the watchdog made (a stale or keepalive record) passes whatever its count: it
  is published once per gap in the results, and its ttl was its wait. The output remembers
  in the state that it passed (`Entry.notified`, as a notifier does), so that the
  resolution that ends it passes too.

Records that do not pass are delivered without being sent: they are the output's to hold
back, never a failure.
"""

from __future__ import annotations

from typing import Any

from accre_monitor.pipeline.state import Entry, Taken, is_real, record_date
from accre_monitor.status import OK


def is_made(record: dict[str, Any]) -> bool:
    """A record the watchdog made (stale, keepalive): exempt from the count."""
    return not is_real(record)


def short_of(taken: Taken, minimum: int) -> bool:
    """Whether a current non-OK record is held back: fewer than `minimum` occurrences."""
    entry = taken.entry
    assert entry is not None
    return entry.status != OK and entry.occurrences < minimum and not is_made(taken.record)


def passes(taken: Taken, minimum: int, output: str) -> bool:
    """Whether a record the state took passes `min_occurrences = minimum` for `output`."""
    entry = taken.entry
    if entry is None or not taken.current:
        return False
    if entry.status != OK:
        return not short_of(taken, minimum)
    if not entry.is_resolution:
        return True
    return entry.watermark >= minimum or had_problem(entry, output)


def had_problem(entry: Entry, output: str) -> bool:
    """Whether the last record `output` remembers having passed was a problem."""
    said = entry.notified.get(output)
    return said is not None and said.get("status") != OK


def note(taken: Taken) -> dict[str, Any]:
    """What `StateStore.mark_notified` remembers of a record that went out."""
    record, entry = taken.record, taken.entry
    assert entry is not None
    return {
        "node": entry.node,
        "check": entry.check,
        "status": record["status"],
        "date": record_date(record),
        "id": str(record["id"]),
    }


def worth_remembering(taken: Taken, output: str) -> bool:
    """Whether a store remembers that this record passed: a watchdog's problem (its
    resolution must pass), or a resolution ending a problem it remembers."""
    entry = taken.entry
    assert entry is not None
    if entry.status != OK:
        return is_made(taken.record)
    return had_problem(entry, output)
