"""Notification by change: what a new result means next to the last one seen for its check.

A chat channel that gets every WARNING of every node every minute is a channel nobody reads.
With notification by change an output remembers, per node and check, the last status seen
and when it last said something, and speaks only when that means something:

- a new problem (a status at or above the output's level, different from the last one:
  OK -> WARNING, WARNING -> CRITICAL, CRITICAL -> UNKNOWN);
- a recovery (the last status was a problem at the output's level, this one is not);
- an unchanged problem again once `renotify` seconds have passed since it was last said
  (measured on the results' own dates, so a replayed backlog counts time as it happened).

Anything else is quiet: nothing to send, yet the record is delivered. A result older than
the last one seen for its check (an old record replayed late) is stale: it is neither sent
as a change nor remembered, so it can never put the state back in time.

`NotifyState` keeps that memory in SQLite (WAL, 0600, writes in short `BEGIN IMMEDIATE`
transactions retried while locked, as the spool does); with no path it lives in memory for
the process. It also remembers which record ids were sent, for a few days, so a record
delivered again (a shipper that died before acknowledging it) is not posted twice.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time

from accre_monitor import log
from accre_monitor.sqlite_files import create_private, retry_busy, set_aside, transaction
from accre_monitor.status import OK, SEVERITY

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

EVERY = "every"  # notify = "every": every record that reaches the output is sent
NEW = "new"  # a new problem, or a change of status
REPEAT = "repeat"  # an unchanged problem, due again
RECOVERY = "recovery"  # no longer a problem at the output's level
QUIET = "quiet"  # nothing worth saying: delivered without sending
STALE = "stale"  # older than the last result seen for its check: delivered without sending
SENT = "sent"  # this record id was sent already (a redelivery): delivered without sending

SPEAKS = frozenset({EVERY, NEW, REPEAT, RECOVERY})

# how long a sent record id is remembered against redelivery, in seconds
SENT_MEMORY = 3 * 86400

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS last_status (
        output TEXT NOT NULL,
        node TEXT NOT NULL,
        check_name TEXT NOT NULL,
        status TEXT NOT NULL,
        taken REAL NOT NULL,
        since REAL NOT NULL,
        said REAL,
        PRIMARY KEY (output, node, check_name)
    )""",
    """CREATE TABLE IF NOT EXISTS sent (
        output TEXT NOT NULL,
        record_id TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (output, record_id)
    )""",
    "CREATE INDEX IF NOT EXISTS sent_by_age ON sent (at)",
)


class Seen:
    """What is known of one check on one node: its last `status`, the date of that result
    (`taken`, epoch seconds), since when the status has held (`since`), and the date of the
    last result that was sent for it (`said`, None when nothing was)."""

    __slots__ = ("status", "taken", "since", "said")

    def __init__(self, status: str, taken: float, since: float, said: float | None) -> None:
        self.status = status
        self.taken = taken
        self.since = since
        self.said = said

    def __repr__(self) -> str:
        return f"Seen({self.status!r}, {self.taken!r}, {self.since!r}, {self.said!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Seen) and (self.status, self.taken, self.since, self.said) == (
            other.status,
            other.taken,
            other.since,
            other.said,
        )

    __hash__ = None  # type: ignore[assignment]


def is_problem(status: str, level: str) -> bool:
    """Whether `status` is a problem worth a message at `level` (OK never is)."""
    return status != OK and SEVERITY[status] >= SEVERITY[level]


def judge(
    seen: Seen | None, status: str, taken: float, level: str, renotify: float
) -> tuple[str, Seen | None]:
    """(verdict, what is known after this result) for a result of `status` taken at `taken`.

    The state returned assumes the message, if any, goes out; `renotify` 0 never repeats.
    """
    if seen is not None and taken < seen.taken:
        return STALE, seen
    same = seen is not None and seen.status == status
    since = seen.since if same and seen is not None else taken
    said = seen.said if seen is not None else None
    if is_problem(status, level):
        if not same:
            verdict = NEW
        elif renotify and (said is None or taken - said >= renotify):
            verdict = REPEAT
        else:
            verdict = QUIET
    elif seen is not None and is_problem(seen.status, level):
        verdict = RECOVERY
    else:
        verdict = QUIET
    return verdict, Seen(status, taken, since, taken if verdict in SPEAKS else said)


class NotifyState:
    """The last status per output, node and check, and the record ids sent, in SQLite.

    `path` None keeps them in memory, for this process only.
    """

    def __init__(self, path: str | None, busy_timeout: float = 30.0) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._db: sqlite3.Connection | None = None
        # the shipper delivers from worker threads: one connection, used by one at a time
        self._lock = threading.RLock()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = self._retry(self._open)
        return self._db

    def _open(self) -> sqlite3.Connection:
        if self.path is None:
            db = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        else:
            create_private(self.path)
            db = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        try:
            if self.path is not None:
                db.execute("PRAGMA journal_mode=WAL")
                # losing the last update in a power cut costs at most one repeated message
                db.execute("PRAGMA synchronous=NORMAL")
            with transaction(db):
                for statement in SCHEMA:
                    db.execute(statement)
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- reading --------------------------------------------------------------------------

    def load(self, output: str, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Seen]:
        """What is known of each (node, check) in `keys` for `output`."""

        def read() -> dict[tuple[str, str], Seen]:
            found = {}
            for node, check in dict.fromkeys(keys):
                row = self.db.execute(
                    "SELECT status, taken, since, said FROM last_status"
                    " WHERE output = ? AND node = ? AND check_name = ?",
                    (output, node, check),
                ).fetchone()
                if row is not None:
                    found[(node, check)] = Seen(*row)
            return found

        return self._retry(read)

    def sent(self, output: str, record_ids: Iterable[str]) -> set[str]:
        """Those of `record_ids` already sent by `output`."""

        def read() -> set[str]:
            return {
                record_id
                for record_id in dict.fromkeys(record_ids)
                if self.db.execute(
                    "SELECT 1 FROM sent WHERE output = ? AND record_id = ?", (output, record_id)
                ).fetchone()
            }

        return self._retry(read)

    # -- writing --------------------------------------------------------------------------

    def save(
        self,
        output: str,
        seen: dict[tuple[str, str], Seen],
        sent_ids: list[str],
    ) -> None:
        """Remember `seen` (a newer result known to another process is never overwritten by
        an older one) and the record ids sent, in one transaction."""
        now = time.time()

        def write() -> None:
            db = self.db
            with transaction(db):
                db.executemany(
                    "INSERT INTO last_status (output, node, check_name, status, taken, since,"
                    " said) VALUES (?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (output, node, check_name) DO UPDATE SET"
                    " status = excluded.status, taken = excluded.taken,"
                    " since = excluded.since, said = excluded.said"
                    " WHERE excluded.taken >= last_status.taken",
                    [
                        (output, node, check, s.status, s.taken, s.since, s.said)
                        for (node, check), s in seen.items()
                    ],
                )
                db.executemany(
                    "INSERT OR IGNORE INTO sent (output, record_id, at) VALUES (?, ?, ?)",
                    [(output, record_id, now) for record_id in sent_ids],
                )
                db.execute("DELETE FROM sent WHERE at < ?", (now - SENT_MEMORY,))

        self._retry(write)

    # -- robustness -----------------------------------------------------------------------

    def _retry(self, operation: Callable[[], Any]) -> Any:
        """Run `operation`, retrying `database is locked` until the busy timeout has passed;
        a corrupt state file is set aside once and a fresh one started (forgetting the last
        statuses costs at most a repeated message, never a lost one)."""
        with self._lock:
            return retry_busy(
                operation, self.busy_timeout, self._set_aside if self.path is not None else None
            )

    def _set_aside(self, error: BaseException) -> None:
        assert self.path is not None
        self.close()
        with contextlib.suppress(FileNotFoundError):
            target = set_aside(self.path)
            log.error(
                "notification state is corrupt: set aside, starting afresh",
                state=self.path,
                set_aside=target,
                error=str(error),
            )
