"""The durable spool: records still owed to a remote output, kept on local disk.

SQLite in WAL mode, one row per (record, output) still owed, with its attempt count,
last error and next-attempt time. Many check processes write at once: every write is a
short `BEGIN IMMEDIATE` transaction with a busy timeout, retried on `database is
locked`, so none of them fails and none of them waits long. A process killed at any
point leaves either the whole transaction or none of it.

Policy at the size cap (`max_entries`): the oldest entries are dropped first (the
newest results describe the node as it is now), counted in the spool and logged on
stderr. Records a store rejects for good move to the dead letters after `max_attempts`
rejections, with the reason; records that could not be delivered (store down) are never
dead-lettered, they wait with exponential backoff (with jitter, capped).
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from accre_monitor import log
from accre_monitor.errors import ConfigError

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL,
    output TEXT NOT NULL,
    body BLOB NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    leased_until REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    UNIQUE (record_id, output)
);
CREATE INDEX IF NOT EXISTS queue_by_output ON queue (output, seq);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    record_id TEXT NOT NULL,
    output TEXT NOT NULL,
    body BLOB NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL,
    reason TEXT,
    died REAL NOT NULL,
    UNIQUE (record_id, output)
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

SPOOL_KEYS: dict[str, Any] = {
    "path": None,
    "max_entries": 100_000,
    "max_attempts": 5,
    "backoff_base": 10.0,
    "backoff_max": 900.0,
    "busy_timeout": 30.0,
    "synchronous": "full",
    "inline_budget": 5.0,
    "drain_limit": 200,
}


def default_path() -> str:
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(state, "accre-monitor", "spool.db")


def spool_settings(section: dict[str, Any]) -> dict[str, Any]:
    """The `[spool]` section with defaults; unknown keys reported, bad values refused."""
    for key in section:
        if key not in SPOOL_KEYS:
            log.warning("unknown config key", key=f"spool.{key}")
    settings = {**SPOOL_KEYS, **section}
    settings["path"] = settings["path"] or default_path()
    for key in ("max_entries", "max_attempts"):
        if not isinstance(settings[key], int) or settings[key] < 1:
            raise ConfigError(f"spool.{key} must be a positive integer")
    if settings["synchronous"] not in ("full", "normal"):
        raise ConfigError('spool.synchronous must be "full" or "normal"')
    return settings


class Entry:
    """One record owed to one output."""

    __slots__ = ("seq", "record_id", "output", "body", "created", "attempts", "last_error")

    def __init__(self, row: tuple) -> None:
        (
            self.seq,
            self.record_id,
            self.output,
            self.body,
            self.created,
            self.attempts,
            self.last_error,
        ) = row


class Spool:
    """The spool file at `settings["path"]`, created (0600, in a 0700 directory) if missing."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.path = settings["path"]
        self._db: sqlite3.Connection | None = None

    @classmethod
    def from_config(cls, config: Any) -> Spool:
        return cls(spool_settings(config.section("spool")))

    def exists(self) -> bool:
        return os.path.exists(self.path)

    # -- connection ---------------------------------------------------------------------

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = self._retry(self._open)
        return self._db

    def _open(self) -> sqlite3.Connection:
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        if not os.path.exists(self.path):
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        db = sqlite3.connect(self.path, timeout=self.settings["busy_timeout"], isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.settings['synchronous'].upper()}")
            if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                with _transaction(db):
                    _run_script(db, SCHEMA)
                    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            db.close()
            raise
        return db

    def _retry(self, operation: Any, *args: Any) -> Any:
        """Run `operation`, retrying `database is locked` until the busy timeout has passed.

        SQLite's own busy handler covers most waits; a few cases (a WAL reset, a lock
        upgrade) return SQLITE_BUSY at once, and those are retried here with jitter.
        """
        deadline = time.monotonic() + self.settings["busy_timeout"]
        delay = 0.005
        while True:
            try:
                return operation(*args)
            except sqlite3.OperationalError as exc:
                message = str(exc)
                if "locked" not in message and "busy" not in message:
                    raise
                if time.monotonic() > deadline:
                    raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.25)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    # -- writing ------------------------------------------------------------------------

    def add(
        self, entries: list[tuple[str, str, bytes]], error: str | None = None, attempts: int = 1
    ) -> int:
        """Owe each (record id, output, body); returns the number of entries dropped at the cap."""
        now = time.time()

        def write() -> int:
            db = self.db
            with _transaction(db):
                db.executemany(
                    "INSERT OR IGNORE INTO queue (record_id, output, body, created, attempts,"
                    " next_attempt, last_error) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (rid, out, body, now, attempts, now + self.backoff(attempts), error)
                        for rid, out, body in entries
                    ],
                )
                return self._enforce_cap(db)

        dropped = self._retry(write)
        if dropped:
            log.warning(
                "spool full: dropped the oldest entries",
                dropped=dropped,
                max_entries=self.settings["max_entries"],
                spool=self.path,
            )
        return dropped

    def _enforce_cap(self, db: sqlite3.Connection) -> int:
        cap = self.settings["max_entries"]
        # Two subqueries: SQLite answers a lone min() or max() from the index's ends,
        # but `SELECT min(seq), max(seq)` scans every row, under the write lock.
        low, high = db.execute(
            "SELECT (SELECT min(seq) FROM queue), (SELECT max(seq) FROM queue)"
        ).fetchone()
        if low is None or high - low + 1 <= cap:
            return 0
        count = db.execute("SELECT count(*) FROM queue").fetchone()[0]
        excess = count - cap
        if excess <= 0:
            return 0
        db.execute(
            "DELETE FROM queue WHERE seq IN (SELECT seq FROM queue ORDER BY seq LIMIT ?)",
            (excess,),
        )
        db.execute(
            "INSERT INTO counters (name, value) VALUES ('dropped', ?) "
            "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            (excess,),
        )
        return excess

    def backoff(self, attempts: int) -> float:
        """Seconds until the next attempt: exponential in `attempts`, capped, with jitter."""
        base = self.settings["backoff_base"] * 2 ** max(attempts - 1, 0)
        return min(base, self.settings["backoff_max"]) * (0.5 + random.random())

    def claim(
        self, output: str, limit: int, due_only: bool = True, lease: float = 60.0
    ) -> list[Entry]:
        """Take up to `limit` of the oldest entries for `output`, leased so that other
        processes draining at the same time skip them; a lease that is not settled
        (the process died) simply expires."""
        now = time.time()

        def take() -> list[Entry]:
            db = self.db
            with _transaction(db):
                rows = db.execute(
                    "SELECT seq, record_id, output, body, created, attempts, last_error "
                    "FROM queue WHERE output = ? AND leased_until < ?"
                    + (" AND next_attempt <= ?" if due_only else "")
                    + " ORDER BY seq LIMIT ?",
                    (output, now, now, limit) if due_only else (output, now, limit),
                ).fetchall()
                db.executemany(
                    "UPDATE queue SET leased_until = ? WHERE seq = ?",
                    [(now + lease, row[0]) for row in rows],
                )
            return [Entry(row) for row in rows]

        return self._retry(take)

    def settle(self, results: list[tuple[Entry, str, str | None]]) -> tuple[int, int, int]:
        """Record what happened to claimed entries: (delivered, retried, dead) counts."""
        from accre_monitor.outputs.base import DELIVERED, REJECTED

        now = time.time()
        delivered, retried, dead = [], [], []
        for entry, state, error in results:
            if state == DELIVERED:
                delivered.append((entry.seq,))
            elif state == REJECTED and entry.attempts + 1 >= self.settings["max_attempts"]:
                dead.append((entry, error))
            else:
                attempts = entry.attempts + 1
                retried.append((attempts, now + self.backoff(attempts), error, entry.seq))

        def write() -> None:
            db = self.db
            with _transaction(db):
                db.executemany("DELETE FROM queue WHERE seq = ?", delivered)
                db.executemany(
                    "UPDATE queue SET attempts = ?, next_attempt = ?, last_error = ?,"
                    " leased_until = 0 WHERE seq = ?",
                    retried,
                )
                for entry, reason in dead:
                    db.execute(
                        "INSERT OR REPLACE INTO dead_letters (record_id, output, body, created,"
                        " attempts, reason, died) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (
                            entry.record_id,
                            entry.output,
                            entry.body,
                            entry.created,
                            entry.attempts + 1,
                            reason,
                            now,
                        ),
                    )
                    db.execute("DELETE FROM queue WHERE seq = ?", (entry.seq,))

        if results:
            self._retry(write)
        return len(delivered), len(retried), len(dead)

    # -- reading ------------------------------------------------------------------------

    def outputs(self) -> list[str]:
        rows = self.db.execute(
            "SELECT output FROM queue UNION SELECT output FROM dead_letters ORDER BY 1"
        ).fetchall()
        return [row[0] for row in rows]

    def has_backlog(self, output: str) -> bool:
        row = self.db.execute("SELECT 1 FROM queue WHERE output = ? LIMIT 1", (output,))
        return row.fetchone() is not None

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per output: spooled entries, the oldest one's age in seconds, due now, dead letters."""
        now = time.time()
        result: dict[str, dict[str, Any]] = {}
        for output, count, oldest, due in self.db.execute(
            "SELECT output, count(*), min(created), sum(next_attempt <= ?) FROM queue "
            "GROUP BY output",
            (now,),
        ):
            result[output] = {
                "spooled": count,
                "oldest_age": round(now - oldest, 3),
                "due": due,
                "dead_letters": 0,
            }
        for output, count in self.db.execute(
            "SELECT output, count(*) FROM dead_letters GROUP BY output"
        ):
            result.setdefault(
                output, {"spooled": 0, "oldest_age": None, "due": 0, "dead_letters": 0}
            )["dead_letters"] = count
        return result

    def dropped(self) -> int:
        row = self.db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        return row[0] if row else 0

    def pending(self, output: str | None = None) -> int:
        query, args = "SELECT count(*) FROM queue", ()
        if output:
            query, args = query + " WHERE output = ?", (output,)
        return self.db.execute(query, args).fetchone()[0]

    def dead_letters(self, output: str | None = None) -> Iterator[dict[str, Any]]:
        query = "SELECT seq, record_id, output, attempts, reason, died, body FROM dead_letters"
        args: tuple = ()
        if output:
            query, args = query + " WHERE output = ?", (output,)
        for seq, record_id, out, attempts, reason, died, body in self.db.execute(
            query + " ORDER BY seq", args
        ):
            yield {
                "seq": seq,
                "record_id": record_id,
                "output": out,
                "attempts": attempts,
                "reason": reason,
                "died": died,
                "body": body,
            }

    def retry_dead_letters(self, output: str | None = None) -> int:
        """Move dead letters back to the queue, due now, with their attempts reset."""
        where, args = ("WHERE output = ?", (output,)) if output else ("", ())

        def write() -> int:
            db = self.db
            with _transaction(db):
                db.execute(
                    "INSERT OR IGNORE INTO queue (record_id, output, body, created, attempts,"
                    " next_attempt, last_error) SELECT record_id, output, body, created, 0, 0,"
                    f" reason FROM dead_letters {where} ORDER BY seq",
                    args,
                )
                return db.execute(f"DELETE FROM dead_letters {where}", args).rowcount

        return self._retry(write)

    def purge_dead_letters(self, output: str | None = None) -> int:
        where, args = ("WHERE output = ?", (output,)) if output else ("", ())

        def write() -> int:
            with _transaction(self.db):
                return self.db.execute(f"DELETE FROM dead_letters {where}", args).rowcount

        return self._retry(write)


class _transaction:
    """`BEGIN IMMEDIATE` ... `COMMIT`: take the write lock up front, so a transaction never
    has to upgrade a read lock (an upgrade that fails is not retried by SQLite)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: Any, *_: Any) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


def _run_script(db: sqlite3.Connection, script: str) -> None:
    """executescript() would COMMIT our transaction first; run the statements one by one."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)
