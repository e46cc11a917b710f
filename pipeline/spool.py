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

A spool file that SQLite finds corrupt (a header overwritten, a truncated file, pages of
garbage) is never left in the way of new results: it is renamed aside with its -wal and -shm
(`spool.db.corrupt-20261125T091500-4242`), kept for inspection, and a fresh spool takes the
record. `spool_health` stays CRITICAL while such a file exists; deleting it (once inspected)
clears the alert. Reading commands (`accre-pipeline status`, `spool_health`) open the spool
read-only: they never create, repair or write it.
"""

from __future__ import annotations

import os
import sqlite3
import time

from accre_monitor import log
from accre_monitor.errors import ConfigError
from accre_monitor.outcome import DELIVERED, EXPIRED
from accre_monitor.redaction import scrub
from accre_monitor.sqlite_files import (
    create_private,
    is_corruption,
    open_new_or_existing,
    retry_busy,
    run_script,
    set_aside,
    transaction,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from accre_monitor.pipeline.retry import RetryPolicy

SCHEMA_VERSION = 3  # 2: queue.not_before; 3: last_delivered
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
    not_before REAL NOT NULL DEFAULT 0,
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
CREATE TABLE IF NOT EXISTS last_delivered (
    output TEXT NOT NULL,
    node TEXT NOT NULL,
    check_name TEXT NOT NULL,
    taken INTEGER NOT NULL,
    record_id TEXT NOT NULL,
    PRIMARY KEY (output, node, check_name)
);
"""


def spool_settings(section: dict[str, Any]) -> dict[str, Any]:
    """The `[spool]` settings with defaults, for code that builds a spool by hand (tests,
    benchmarks): unknown keys are reported, a bad value is a ConfigError."""
    from accre_monitor.sections import spool_section

    settings, unknown, problems = spool_section(section)
    for key in unknown:
        log.warning("unknown config key", key=f"spool.{key}")
    if problems:
        raise ConfigError(problems[0])
    return settings


class SpoolCorrupt(Exception):
    """The spool file is not a usable database (read-only access cannot set it aside)."""


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
    """The spool file at `settings["path"]`, created (0600, in a 0700 directory) if missing;
    0660 in a directory shared by a group (setgid, group-writable), for every user of it.

    `readonly` opens an existing file for reading only: nothing is created or written, and
    a corrupt file raises SpoolCorrupt instead of being set aside.
    """

    def __init__(self, settings: dict[str, Any], readonly: bool = False) -> None:
        self.settings = settings
        self.path = settings["path"]
        self.readonly = readonly
        self._db: sqlite3.Connection | None = None
        self._inode: tuple[int, int] | None = None
        # files this process set aside as corrupt, for its callers to report
        self.set_aside: list[str] = []

    @classmethod
    def from_config(cls, config: Any, readonly: bool = False) -> Spool:
        return cls(config.spool, readonly=readonly)

    def exists(self) -> bool:
        return os.path.exists(self.path)

    # -- connection ---------------------------------------------------------------------

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = self._retry(self._open_readonly if self.readonly else self._open)
        return self._db

    def _open(self) -> sqlite3.Connection:
        create_private(self.path)
        db = sqlite3.connect(self.path, timeout=self.settings["busy_timeout"], isolation_level=None)
        try:
            stat = os.stat(self.path)
            self._inode = (stat.st_dev, stat.st_ino)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self.settings['synchronous'].upper()}")
            if db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                with transaction(db):
                    version = db.execute("PRAGMA user_version").fetchone()[0]
                    # a spool of an earlier release: keep its entries. A process of that
                    # release may also have stamped version 1 back on a migrated spool.
                    if version == 1 and not _has_column(db, "queue", "not_before"):
                        db.execute(
                            "ALTER TABLE queue ADD COLUMN not_before REAL NOT NULL DEFAULT 0"
                        )
                    run_script(db, SCHEMA)
                    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            db.close()
            raise
        return db

    def _open_readonly(self) -> sqlite3.Connection:
        from urllib.parse import quote

        # With no -wal file everything is in the main file, and `immutable` reads it without
        # creating the -wal and -shm files that a plain read-only open would create.
        at_rest = not os.path.exists(self.path + "-wal")
        uri = f"file:{quote(os.path.abspath(self.path))}?mode=ro" + (
            "&immutable=1" if at_rest else ""
        )
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"no spool at {self.path}")
        db = sqlite3.connect(uri, uri=True, timeout=self.settings["busy_timeout"])
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (1, 2, SCHEMA_VERSION):
                raise SpoolCorrupt(f"spool {self.path} has no spool tables (version {version})")
        except sqlite3.DatabaseError as exc:
            db.close()
            if is_corruption(exc):
                raise SpoolCorrupt(f"spool {self.path} is corrupt: {exc}") from None
            raise
        except BaseException:
            db.close()
            raise
        return db

    def _retry(self, operation: Any, *args: Any) -> Any:
        """Run `operation`, retrying `database is locked` until the busy timeout has passed,
        and once more on a fresh spool when this one turns out to be corrupt."""

        def corrupt(exc: BaseException) -> None:
            if self.readonly:
                raise SpoolCorrupt(f"spool {self.path} is corrupt: {exc}") from None
            self._set_aside_corrupt(exc)

        return retry_busy(lambda: operation(*args), self.settings["busy_timeout"], corrupt)

    def _set_aside_corrupt(self, error: BaseException) -> None:
        """Rename the corrupt spool file (and its -wal, -shm) aside; the next open starts a
        fresh one. Under a lock, and only if the file is still the one found corrupt, so
        that concurrent processes never set aside a fresh spool another one just made."""
        import fcntl

        seen = self._inode
        self.close()
        directory = os.path.dirname(self.path) or "."
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = open_new_or_existing(self.path + ".recover", os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                stat = os.stat(self.path)
            except FileNotFoundError:
                return
            current = (stat.st_dev, stat.st_ino)
            if seen is not None and current != seen:
                return  # another process already set it aside and started a fresh one
            if not _still_corrupt(self.path):
                return
            target = set_aside(self.path)
            self.set_aside.append(target)
            log.error(
                "spool file is corrupt: set aside, a fresh spool takes the records",
                spool=self.path,
                set_aside=target,
                error=str(error),
            )
        finally:
            os.close(fd)

    def moved_away(self) -> bool:
        """Whether the file this connection writes to is no longer the spool's path (another
        process set it aside as corrupt meanwhile)."""
        if self._inode is None:
            return False
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return True
        return (stat.st_dev, stat.st_ino) != self._inode

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._inode = None

    # -- writing ------------------------------------------------------------------------

    def add(
        self,
        entries: list[tuple[str, str, bytes]],
        error: str | None = None,
        attempts: int = 1,
        not_before: float | None = None,
    ) -> int:
        """Owe each (record id, output, body); returns the number of entries dropped at the cap.

        `attempts`: how many tries the entries already had (their first retry backs off
        accordingly); 0 makes them due at once. `not_before`: seconds the store asked us to
        wait at least (a 429's Retry-After).
        """
        now = time.time()
        error = scrub(error) if error else error  # written to a file: never a secret
        # one wait for the whole write: the entries keep the order they were given in
        wait = self.backoff(attempts) if attempts else 0.0
        due_at = now + max(wait, not_before or 0.0)

        hold = now + not_before if not_before else 0.0

        def write() -> int:
            db = self.db
            with transaction(db):
                db.executemany(
                    "INSERT OR IGNORE INTO queue (record_id, output, body, created, attempts,"
                    " next_attempt, last_error, not_before) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            rid,
                            out,
                            body,
                            now,
                            attempts,
                            due_at,
                            error,
                            hold,
                        )
                        for rid, out, body in entries
                    ],
                )
                return self._enforce_cap(db)

        dropped = self._retry(write)
        if self.moved_away():
            # set aside as corrupt by another process while we wrote: write again, to the
            # fresh spool (UNIQUE (record_id, output) keeps it once)
            self.close()
            dropped = self._retry(write)
        if dropped:
            log.warning(
                "spool full: dropped the oldest entries",
                dropped=dropped,
                max_entries=self.settings["max_entries"],
                spool=self.path,
            )
        return dropped

    def count_duplicates(self, output: str, count: int) -> None:
        """Count records an output had already (stored by id, or sent): said once, not twice."""
        self._add(f"duplicates:{output}", count)

    def count_expired(self, output: str, count: int) -> None:
        """Count results that expired before they could be delivered (never spooled)."""
        self._add(f"expired:{output}", count)

    def _add(self, counter: str, amount: int) -> None:
        def write() -> None:
            with transaction(self.db) as db:
                _count(db, counter, amount)

        self._retry(write)

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
        _count(db, "dropped", excess)
        return excess

    @property
    def policy(self) -> RetryPolicy:
        """The retry policy of `[spool]`, the one the broker's shipper follows too."""
        from accre_monitor.pipeline.retry import RetryPolicy

        return RetryPolicy.from_settings(self.settings)

    def backoff(self, attempts: int) -> float:
        """Seconds until the next attempt: exponential in `attempts`, capped, with jitter."""
        return self.policy.backoff(attempts)

    def claim(
        self,
        output: str,
        limit: int,
        due_only: bool = True,
        lease: float = 60.0,
        ordered: bool = False,
    ) -> list[Entry]:
        """Take up to `limit` of the oldest entries for `output`, leased so that other
        processes draining at the same time skip them; a lease that is not settled
        (the process died) simply expires.

        `due_only`: only entries whose backoff has passed; otherwise every entry except
        those the store itself asked to hold back (a 429's Retry-After).

        `ordered` (an output that must get records oldest first): the head of the backlog
        and what follows it, stopping at the first entry that is leased (in flight
        elsewhere), held or not yet due; nothing at all while the head waits. An older
        record is never overtaken by a newer one.
        """
        now = time.time()
        ready = "next_attempt <= ?" if due_only else "not_before <= ?"

        def take() -> list[Entry]:
            db = self.db
            with transaction(db):
                if ordered:
                    rows = []
                    for row in db.execute(
                        "SELECT seq, record_id, output, body, created, attempts, last_error, "
                        f"leased_until < ? AND {ready} FROM queue WHERE output = ? "
                        "ORDER BY seq LIMIT ?",
                        (now, now, output, limit),
                    ):
                        if not row[-1]:
                            break
                        rows.append(row[:-1])
                else:
                    rows = db.execute(
                        "SELECT seq, record_id, output, body, created, attempts, last_error "
                        f"FROM queue WHERE output = ? AND leased_until < ? AND {ready}"
                        " ORDER BY seq LIMIT ?",
                        (output, now, now, limit),
                    ).fetchall()
                db.executemany(
                    "UPDATE queue SET leased_until = ? WHERE seq = ?",
                    [(now + lease, row[0]) for row in rows],
                )
            return [Entry(row) for row in rows]

        return self._retry(take)

    def settle(self, results: list[tuple]) -> tuple[int, int, int, int]:
        """Record what happened to claimed entries, given as (entry, state, error) or
        (entry, state, error, retry_after); returns (delivered, retried, dead, expired).

        A RETRY waits its backoff, or `retry_after` seconds when the store asked for longer;
        a REJECTED entry becomes a dead letter once the retry policy gives up on it.
        """
        import random

        now = time.time()
        policy = self.policy
        jitter = random.random()  # one draw per batch: its records keep their order
        delivered, retried, dead, expired = [], [], [], []
        for entry, state, error, *more in results:
            error = scrub(error) if error else error  # written to a file: never a secret
            if state == DELIVERED:
                delivered.append((entry.seq,))
            elif state == EXPIRED:
                expired.append(entry)
            elif policy.gives_up(state, entry.attempts + 1):
                dead.append((entry, error))
            else:
                attempts = entry.attempts + 1
                wait = policy.backoff(attempts, jitter=jitter)
                hold = 0.0
                if more and more[0] is not None:  # the store said how long to wait at least
                    wait = max(wait, float(more[0]))
                    hold = now + float(more[0])
                retried.append((attempts, now + wait, error, hold, entry.seq))

        def write() -> None:
            db = self.db
            with transaction(db):
                db.executemany("DELETE FROM queue WHERE seq = ?", delivered)
                db.executemany(
                    "UPDATE queue SET attempts = ?, next_attempt = ?, last_error = ?,"
                    " not_before = ?, leased_until = 0 WHERE seq = ?",
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
                for entry in expired:
                    db.execute("DELETE FROM queue WHERE seq = ?", (entry.seq,))
                    _count(db, f"expired:{entry.output}", 1)

        if results:
            self._retry(write)
        return len(delivered), len(retried), len(dead), len(expired)

    # -- at most once, in order ------------------------------------------------------------

    def only_newer(self, output: str, records: list[dict[str, Any]]) -> list[bool]:
        """For an output that asks for order: whether each record is newer than the last one
        delivered to `output` for its node and check (and newer than those before it in
        `records`). A record that is not (the same record again, e.g. a publish given up on
        that the broker took after all, then forwarded from the spool; or an older result
        that arrived late by another path) is counted as a duplicate and must be skipped: it
        would say something twice, or put Nagios back in time.

        The window is one record per output, node and check: kept in this spool file, so
        it holds across restarts on this host (a shipper on another host has its own).
        """
        keys = {}
        for record in records:
            key = _key(record)
            if key is not None:
                keys[key[:2]] = None
        if not keys:
            return [True] * len(records)

        def read() -> dict[tuple[str, str], tuple[int, str]]:
            found = {}
            for node, check in keys:
                row = self.db.execute(
                    "SELECT taken, record_id FROM last_delivered"
                    " WHERE output = ? AND node = ? AND check_name = ?",
                    (output, node, check),
                ).fetchone()
                if row is not None:
                    found[(node, check)] = (row[0], row[1])
            return found

        last = self._retry(read)
        verdicts = []
        for record in records:
            key = _key(record)
            if key is None:  # no usable date: the output judges it
                verdicts.append(True)
                continue
            node, check, taken = key
            seen = last.get((node, check))
            newer = seen is None or (taken, record["id"]) != seen[:2] and taken >= seen[0]
            verdicts.append(newer)
            if newer:
                last[(node, check)] = (taken, record["id"])
        skipped = verdicts.count(False)
        if skipped:
            self.count_duplicates(output, skipped)
        return verdicts

    def delivered(self, output: str, records: list[dict[str, Any]]) -> None:
        """Remember the newest record delivered to `output` per node and check."""
        rows = []
        for record in records:
            key = _key(record)
            if key is not None:
                rows.append((output, *key, record["id"]))
        if not rows:
            return

        def write() -> None:
            with transaction(self.db) as db:
                db.executemany(
                    "INSERT INTO last_delivered (output, node, check_name, taken, record_id)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (output, node, check_name) DO UPDATE"
                    " SET taken = excluded.taken, record_id = excluded.record_id"
                    " WHERE excluded.taken >= last_delivered.taken",
                    rows,
                )

        self._retry(write)

    # -- reading ------------------------------------------------------------------------

    def _rows(self, query: str, args: tuple = ()) -> list[tuple]:
        return self._retry(lambda: self.db.execute(query, args).fetchall())

    def outputs(self) -> list[str]:
        rows = self._rows(
            "SELECT output FROM queue UNION SELECT output FROM dead_letters ORDER BY 1"
        )
        return [row[0] for row in rows]

    def holds(self, record_id: str, output: str) -> bool:
        """Whether the record is still owed to `output`."""
        query = "SELECT 1 FROM queue WHERE record_id = ? AND output = ?"
        return bool(self._rows(query, (record_id, output)))

    def has_backlog(self, output: str) -> bool:
        return bool(self._rows("SELECT 1 FROM queue WHERE output = ? LIMIT 1", (output,)))

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per output: spooled entries, the oldest one's age in seconds, due now, when the next
        entry that is backing off is due (epoch seconds), dead letters, expired so far, and
        duplicates skipped so far (see `only_newer`)."""
        now = time.time()
        result: dict[str, dict[str, Any]] = {}

        def row(output: str) -> dict[str, Any]:
            return result.setdefault(
                output,
                {
                    "spooled": 0,
                    "oldest_age": None,
                    "due": 0,
                    "next_due": None,
                    "dead_letters": 0,
                    "expired": 0,
                    "duplicates": 0,
                },
            )

        for output, count, oldest, due, next_due in self._rows(
            "SELECT output, count(*), min(created), sum(next_attempt <= ?),"
            " min(CASE WHEN next_attempt > ? THEN next_attempt END) FROM queue GROUP BY output",
            (now, now),
        ):
            row(output).update(
                spooled=count,
                oldest_age=round(now - oldest, 3),
                due=due,
                next_due=next_due,
            )
        for output, count in self._rows(
            "SELECT output, count(*) FROM dead_letters GROUP BY output"
        ):
            row(output)["dead_letters"] = count
        for name, value in self._rows("SELECT name, value FROM counters"):
            kind, _, output = name.partition(":")
            if kind in ("expired", "duplicates") and output:
                row(output)[kind] = value
        return result

    def dropped(self) -> int:
        rows = self._rows("SELECT value FROM counters WHERE name = 'dropped'")
        return rows[0][0] if rows else 0

    def pending(self, output: str | None = None) -> int:
        query, args = "SELECT count(*) FROM queue", ()
        if output:
            query, args = query + " WHERE output = ?", (output,)
        return self._rows(query, args)[0][0]

    def dead_letters(self, output: str | None = None) -> Iterator[dict[str, Any]]:
        query = "SELECT seq, record_id, output, attempts, reason, died, body FROM dead_letters"
        args: tuple = ()
        if output:
            query, args = query + " WHERE output = ?", (output,)
        for seq, record_id, out, attempts, reason, died, body in self._rows(
            query + " ORDER BY seq", args
        ):
            yield {
                "seq": seq,
                "record_id": record_id,
                "output": out,
                "attempts": attempts,
                "reason": scrub(reason) if reason else reason,
                "died": died,
                "body": body,
            }

    def retry_dead_letters(self, output: str | None = None) -> int:
        """Move dead letters back to the queue, due now, with their attempts reset."""
        where, args = ("WHERE output = ?", (output,)) if output else ("", ())

        def write() -> int:
            db = self.db
            with transaction(db):
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
            with transaction(self.db):
                return self.db.execute(f"DELETE FROM dead_letters {where}", args).rowcount

        return self._retry(write)


def _count(db: sqlite3.Connection, name: str, amount: int) -> None:
    db.execute(
        "INSERT INTO counters (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
        (name, amount),
    )


def _key(record: dict[str, Any]) -> tuple[str, str, int] | None:
    """(node, check, date in microseconds) of a record, or None when it has no usable ones."""
    from accre_monitor.dates import epoch_micros

    node, check = record.get("node"), record.get("name")
    if not isinstance(node, str) or not isinstance(check, str):
        return None
    try:
        return node, check, epoch_micros(record.get("date"))
    except (TypeError, ValueError, OverflowError):
        return None


def _has_column(db: sqlite3.Connection, table: str, column: str) -> bool:
    return any(row[1] == column for row in db.execute(f"PRAGMA table_info({table})"))


def _still_corrupt(path: str) -> bool:
    """A second opinion before a spool is set aside: SQLite's quick check on a new connection."""
    try:
        db = sqlite3.connect(path, timeout=5)
    except sqlite3.DatabaseError:
        return True
    try:
        rows = db.execute("PRAGMA quick_check(1)").fetchall()
        return rows != [("ok",)]
    except sqlite3.DatabaseError as exc:
        return is_corruption(exc)
    finally:
        db.close()
