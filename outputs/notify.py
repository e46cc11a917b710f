"""Notification by change: what a new result means next to what the output last said.

A chat channel that gets every WARNING of every node every minute is a channel nobody reads.
With notification by change an output speaks, per node and check, only when that means
something next to the last thing it said (kept in the cluster state, `Entry.notified`):

- a new problem (a status at or above the output's level, different from the last one
  said: OK -> WARNING, WARNING -> CRITICAL, CRITICAL -> UNKNOWN);
- a recovery (the last status said was a problem at the output's level, this one is not):
  a problem the output never said has no recovery;
- an unchanged problem again once `renotify` seconds have passed since it was last said
  (measured on the results' own dates, so a replayed backlog counts time as it happened).

Anything else is quiet: nothing to send, yet the record is delivered. Which records are
judged at all is the cluster state's to say: a record superseded by a newer one (`STALE`),
a silenced one, or one short of `min_occurrences` is quiet whatever it says.
"""

from __future__ import annotations

from accre_monitor.status import OK, SEVERITY

EVERY = "every"  # notify = "every": every record that reaches the output is sent
NEW = "new"  # a new problem, or a change of status
REPEAT = "repeat"  # an unchanged problem, due again
RECOVERY = "recovery"  # no longer a problem at the output's level
QUIET = "quiet"  # nothing worth saying: delivered without sending
STALE = "stale"  # the state has a newer result for its check: delivered without sending
SILENCED = "silenced"  # an active silence covers it: delivered without sending
SENT = "sent"  # this record was said already (a redelivery): delivered without sending

SPEAKS = frozenset({EVERY, NEW, REPEAT, RECOVERY})


class Said:
    """What an output last said of one check on one node: the `status` of that record and
    its `date` (epoch seconds)."""

    __slots__ = ("status", "date")

    def __init__(self, status: str, date: float) -> None:
        self.status = status
        self.date = date

    def __repr__(self) -> str:
        return f"Said({self.status!r}, {self.date!r})"


def is_problem(status: str, level: str) -> bool:
    """Whether `status` is a problem worth a message at `level` (OK never is)."""
    return status != OK and SEVERITY[status] >= SEVERITY[level]


def judge(said: Said | None, status: str, date: float, level: str, renotify: float) -> str:
    """The verdict for a current result of `status` dated `date`, next to what the output
    last `said` (None: nothing yet); `renotify` 0 never repeats."""
    if is_problem(status, level):
        if said is None or said.status != status:
            return NEW
        if renotify and date - said.date >= renotify:
            return REPEAT
        return QUIET
    if said is not None and is_problem(said.status, level):
        return RECOVERY
    return QUIET
