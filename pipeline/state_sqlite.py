"""The cluster state in SQLite: the embedded default, for shippers on one machine.

One file (`state.db` beside the spool unless `[state] url` says otherwise), WAL mode, every
change in one short `BEGIN IMMEDIATE` transaction: processes on this machine take records at
once, and SQLite serialises them. The rules are those of `state.py`; the Redis store keeps
the same contract for shippers on several machines.

A file that stays locked past the busy timeout, or cannot be opened, raises
`StoreUnavailable`, as an unreachable store does: the records wait and are retried, never
refused.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from typing import Any

from accre_monitor import log
from accre_monitor.outcome import StoreUnavailable, describe
from accre_monitor.pipeline import state_apply
from accre_monitor.pipeline.state import (
    KEEPALIVE,
    Entry,
    Node,
    Silence,
    Taken,
    covering,
    settled,
)
from accre_monitor.sqlite_files import create_private, retry_busy, set_aside, transaction

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS entries (
        node TEXT NOT NULL,
        check_name TEXT NOT NULL,
        due REAL,
        body BLOB NOT NULL,
        PRIMARY KEY (node, check_name)
    )""",
    "CREATE INDEX IF NOT EXISTS entries_due ON entries (due) WHERE due IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS nodes (
        node TEXT PRIMARY KEY,
        last REAL NOT NULL,
        silent INTEGER NOT NULL DEFAULT 0,
        back REAL NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS nodes_last ON nodes (last) WHERE silent = 0",
    "CREATE TABLE IF NOT EXISTS silences (id TEXT PRIMARY KEY, body BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT, until REAL)",
    """CREATE TABLE IF NOT EXISTS outbox (
        id TEXT PRIMARY KEY,
        node TEXT NOT NULL,
        created REAL NOT NULL,
        body BLOB NOT NULL
    )""",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
    """CREATE TABLE IF NOT EXISTS docs (
        key TEXT PRIMARY KEY,
        version INTEGER NOT NULL,
        body BLOB NOT NULL
    )""",
)
SCHEMA_VERSION = "1"


def _dump(value: Any) -> str:
    # the standard library's encoder: a check run that keeps the state need not import orjson
    return json.dumps(value, separators=(",", ":"), default=_plain)


def _plain(value: Any) -> Any:
    """An Entry, Node or Silence as the dict JSON holds."""
    return value.to_dict()


def _load(text: str | bytes) -> Any:
    return json.loads(text)


class SqliteState:
    """The `StateStore` contract on one SQLite file (`:memory:` for tests and one process)."""

    def __init__(self, path: str, busy_timeout: float = 30.0) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._db: sqlite3.Connection | None = None
        self._lock = threading.RLock()  # shipper threads share the one connection

    def __repr__(self) -> str:
        return f"SqliteState({self.path!r})"

    # -- the connection ----------------------------------------------------------------

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = self._open()
        return self._db

    def _open(self) -> sqlite3.Connection:
        memory = self.path == ":memory:"
        if not memory:
            create_private(self.path)
        db = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            if not memory:
                db.execute("PRAGMA journal_mode=WAL")
                # a power cut costs at most the last update, which the next result redoes
                db.execute("PRAGMA synchronous=NORMAL")
            with transaction(db):
                for statement in SCHEMA:
                    db.execute(statement)
                db.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)",
                    (SCHEMA_VERSION,),
                )
        except BaseException:
            db.close()
            raise
        return db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _run(self, operation: Any) -> Any:
        """`operation(db)` in one write transaction, retried while another process holds
        the lock; a corrupt file is set aside once and a fresh one started (the state is
        rebuilt by the next results; silences are lost, and the log says so)."""

        def attempt() -> Any:
            with transaction(self.db) as db:
                return operation(db)

        with self._lock, self._reachable():
            on_corruption = None if self.path == ":memory:" else self._set_aside
            return retry_busy(attempt, self.busy_timeout, on_corruption)

    def _read(self, operation: Any) -> Any:
        with self._lock, self._reachable():
            return retry_busy(lambda: operation(self.db), self.busy_timeout)

    @contextlib.contextmanager
    def _reachable(self) -> Any:
        """SQLite's `OperationalError` (still locked after the busy timeout, a file that
        cannot be opened or written) as `StoreUnavailable`, in one line."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            reason = " ".join(describe(exc).split())
            raise StoreUnavailable(f"cluster state {self.path}: {reason}") from None

    def _set_aside(self, error: BaseException) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            target = set_aside(self.path)
            log.error(
                "cluster state is corrupt: set aside, starting afresh (silences are lost)",
                state=self.path,
                set_aside=target,
                error=str(error),
            )

    # -- rows --------------------------------------------------------------------------

    @staticmethod
    def _entry(db: sqlite3.Connection, node: str, check: str) -> Entry | None:
        row = db.execute(
            "SELECT body FROM entries WHERE node = ? AND check_name = ?", (node, check)
        ).fetchone()
        return Entry.from_dict(_load(row[0])) if row else None

    @staticmethod
    def _put(db: sqlite3.Connection, entry: Entry) -> None:
        db.execute(
            "INSERT INTO entries (node, check_name, due, body) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (node, check_name) DO UPDATE SET due = excluded.due,"
            " body = excluded.body",
            (entry.node, entry.check, entry.due, _dump(entry)),
        )

    @staticmethod
    def _node(db: sqlite3.Connection, name: str) -> Node | None:
        row = db.execute("SELECT last, silent, back FROM nodes WHERE node = ?", (name,)).fetchone()
        return Node(name, row[0], bool(row[1]), row[2]) if row else None

    @staticmethod
    def _put_node(db: sqlite3.Connection, node: Node) -> None:
        db.execute(
            "INSERT INTO nodes (node, last, silent, back) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (node) DO UPDATE SET last = excluded.last,"
            " silent = excluded.silent, back = excluded.back",
            (node.name, node.last, int(node.silent), node.back),
        )

    @staticmethod
    def _all_silences(db: sqlite3.Connection) -> list[Silence]:
        return [
            Silence.from_dict(_load(body))
            for (body,) in db.execute("SELECT body FROM silences ORDER BY rowid")
        ]

    # -- taking records ----------------------------------------------------------------

    def take(self, records: list[dict[str, Any]], now: float | None = None) -> list[Taken]:
        """Take each record into the state, in one transaction (see `state.py`)."""
        now = time.time() if now is None else now

        def operation(db: sqlite3.Connection) -> list[Taken]:
            silences = self._all_silences(db)
            rows = _Rows(db)
            return [state_apply.take_one(rows, record, silences, now) for record in records]

        return settled(self._run(operation))

    # -- the watchdog's side -----------------------------------------------------------

    def overdue(self, now: float, limit: int, offset: int = 0) -> list[Entry]:
        """Entries whose ttl ran out (oldest due first), stale ones excepted; `offset` skips
        the first ones (those the watchdog spares for now: a silent node's)."""
        rows = self._read(
            lambda db: db.execute(
                "SELECT body FROM entries WHERE due IS NOT NULL AND due <= ?"
                " ORDER BY due, node, check_name LIMIT ? OFFSET ?",
                (now, limit, offset),
            ).fetchall()
        )
        return [Entry.from_dict(_load(body)) for (body,) in rows]

    def silent_candidates(self, now: float, node_ttl: float, limit: int) -> list[Node]:
        """Nodes not yet called silent whose latest real result is older than `node_ttl`."""
        rows = self._read(
            lambda db: db.execute(
                "SELECT node, last, silent, back FROM nodes WHERE silent = 0 AND last <= ?"
                " ORDER BY last LIMIT ?",
                (now - node_ttl, limit),
            ).fetchall()
        )
        return [Node(name, last, bool(silent), back) for name, last, silent, back in rows]

    def node(self, name: str) -> Node | None:
        return self._read(lambda db: self._node(db, name))

    def fire_stale(self, record: dict[str, Any], expect: str, now: float) -> bool:
        """Take the stale `record` and owe its publication, only if its entry still has the
        record `expect` as its latest (no newer result came meanwhile, no one fired it)."""

        def operation(db: sqlite3.Connection) -> bool:
            return state_apply.fire_stale(_Rows(db), record, expect, self._all_silences(db), now)

        return self._run(operation)

    def fire_keepalive(self, record: dict[str, Any], last: float, now: float) -> bool:
        """Call the node silent with the keepalive `record`, only if it still is what the
        watchdog saw (not silent, latest result at `last`)."""

        def operation(db: sqlite3.Connection) -> bool:
            return state_apply.fire_keepalive(_Rows(db), record, last, self._all_silences(db), now)

        return self._run(operation)

    def outbox(self, limit: int) -> list[dict[str, Any]]:
        """Records the state made and still owes to the bus, oldest first."""
        rows = self._read(
            lambda db: db.execute(
                "SELECT body FROM outbox ORDER BY created, rowid LIMIT ?", (limit,)
            ).fetchall()
        )
        return [_load(body) for (body,) in rows]

    def published(self, record_ids: list[str]) -> None:
        self._run(
            lambda db: db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in record_ids])
        )

    def acquire_lease(self, name: str, holder: str, seconds: float) -> bool:
        """Hold lease `name` for `seconds` more: True when it was free, expired or ours."""

        def operation(db: sqlite3.Connection) -> bool:
            now = time.time()
            row = db.execute("SELECT holder, until FROM leases WHERE name = ?", (name,)).fetchone()
            if row is not None and row[0] != holder and row[1] > now:
                return False
            db.execute(
                "INSERT INTO leases (name, holder, until) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                " until = excluded.until",
                (name, holder, now + seconds),
            )
            return True

        return self._run(operation)

    def release_lease(self, name: str, holder: str) -> None:
        self._run(
            lambda db: db.execute(
                "DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder)
            )
        )

    # -- reading and curating --------------------------------------------------------------

    def entries(self, node: str | None = None, check: str | None = None) -> list[Entry]:
        """Every entry (of nodes and checks matching the globs), by node and check."""
        from fnmatch import fnmatchcase

        rows = self._read(
            lambda db: db.execute("SELECT body FROM entries ORDER BY node, check_name").fetchall()
        )
        found = [Entry.from_dict(_load(body)) for (body,) in rows]
        return [
            e
            for e in found
            if (node is None or fnmatchcase(e.node, node))
            and (check is None or fnmatchcase(e.check, check))
        ]

    def count_check(self, check: str) -> int:
        """How many nodes the state knows for `check` (what a grouped message counts the
        affected ones against), without reading the entries."""
        row = self._read(
            lambda db: db.execute(
                "SELECT count(*) FROM entries WHERE check_name = ?", (check,)
            ).fetchone()
        )
        return int(row[0])

    def get(self, node: str, check: str) -> Entry | None:
        return self._read(lambda db: self._entry(db, node, check))

    def nodes(self) -> list[Node]:
        rows = self._read(
            lambda db: db.execute("SELECT node, last, silent, back FROM nodes ORDER BY node")
        )
        return [Node(name, last, bool(silent), back) for name, last, silent, back in rows]

    def mark_notified(self, output: str, notes: list[dict[str, Any]]) -> None:
        """Remember what `output` said last per node and check: each note has `node`,
        `check`, `status`, `date` (epoch seconds of the record said) and `id`; an older note
        never replaces a newer one."""

        def operation(db: sqlite3.Connection) -> None:
            for note in notes:
                entry = self._entry(db, note["node"], note["check"])
                if entry is not None and state_apply.note_notified(entry, output, note):
                    self._put(db, entry)

        self._run(operation)

    def forget(self, node: str, check: str | None = None) -> int:
        """Drop a node (all its checks, its liveness, what it owes) or one of its checks
        (and the stale record it still owes); how many entries went."""

        def operation(db: sqlite3.Connection) -> int:
            if check is not None:
                owed = db.execute("SELECT id, body FROM outbox WHERE node = ?", (node,))
                gone_ids = [(i,) for i, body in owed if _load(body).get("name") == check]
                db.executemany("DELETE FROM outbox WHERE id = ?", gone_ids)
                return db.execute(
                    "DELETE FROM entries WHERE node = ? AND check_name = ?", (node, check)
                ).rowcount
            gone = db.execute("DELETE FROM entries WHERE node = ?", (node,)).rowcount
            db.execute("DELETE FROM nodes WHERE node = ?", (node,))
            db.execute("DELETE FROM outbox WHERE node = ?", (node,))
            return gone

        return self._run(operation)

    # -- small documents (notification groups) ---------------------------------------

    def load_doc(self, key: str) -> tuple[Any, int]:
        """(the document stored under `key`, its version); (None, 0) when there is none."""
        row = self._read(
            lambda db: db.execute("SELECT body, version FROM docs WHERE key = ?", (key,)).fetchone()
        )
        return (_load(row[0]), row[1]) if row else (None, 0)

    def save_doc(self, key: str, value: Any, version: int) -> bool:
        """Store `value` under `key` if its version is still `version` (compare and set);
        None deletes it. False when another process changed it first."""

        def operation(db: sqlite3.Connection) -> bool:
            row = db.execute("SELECT version FROM docs WHERE key = ?", (key,)).fetchone()
            if (row[0] if row else 0) != version:
                return False
            if value is None:
                db.execute("DELETE FROM docs WHERE key = ?", (key,))
            else:
                db.execute(
                    "INSERT INTO docs (key, version, body) VALUES (?, ?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET version = excluded.version,"
                    " body = excluded.body",
                    (key, version + 1, _dump(value)),
                )
            return True

        return self._run(operation)

    def doc_keys(self, prefix: str) -> list[str]:
        """The keys of the documents whose key starts with `prefix`."""
        rows = self._read(
            lambda db: db.execute(
                "SELECT key FROM docs WHERE substr(key, 1, ?) = ? ORDER BY key",
                (len(prefix), prefix),
            ).fetchall()
        )
        return [key for (key,) in rows]

    # -- silences ------------------------------------------------------------------------

    def add_silence(self, silence: Silence) -> Silence:
        """Store a silence and mark the entries it covers now."""

        def operation(db: sqlite3.Connection) -> Silence:
            db.execute(
                "INSERT INTO silences (id, body) VALUES (?, ?)",
                (silence.id, _dump(silence.to_dict())),
            )
            self._remark(db, time.time())
            return silence

        return self._run(operation)

    def silences(self, now: float | None = None) -> list[Silence]:
        """The silences not yet over (expired ones are removed as they are met)."""
        now = time.time() if now is None else now

        def operation(db: sqlite3.Connection) -> list[Silence]:
            found = self._all_silences(db)
            over = [s.id for s in found if s.end is not None and s.end <= now]
            if over:
                db.executemany("DELETE FROM silences WHERE id = ?", [(i,) for i in over])
                self._remark(db, now)
            return [s for s in found if s.id not in over]

        return self._run(operation)

    def remove_silence(self, silence_id: str) -> bool:
        def operation(db: sqlite3.Connection) -> bool:
            gone = db.execute("DELETE FROM silences WHERE id = ?", (silence_id,)).rowcount
            if gone:
                self._remark(db, time.time())
            return bool(gone)

        return self._run(operation)

    def _remark(self, db: sqlite3.Connection, now: float) -> None:
        """Mark every entry with the silences covering it now."""
        silences = self._all_silences(db)
        for (body,) in db.execute("SELECT body FROM entries").fetchall():
            entry = Entry.from_dict(_load(body))
            ids = covering(silences, entry.node, entry.check, now)
            if ids != entry.silenced:
                entry.silenced = ids
                self._put(db, entry)


class _Rows:
    """The `View` of one SQLite transaction (see `state_apply.py`)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def entry(self, node: str, check: str) -> Entry | None:
        return SqliteState._entry(self.db, node, check)

    def put(self, entry: Entry) -> None:
        SqliteState._put(self.db, entry)

    def node(self, name: str) -> Node | None:
        return SqliteState._node(self.db, name)

    def put_node(self, node: Node) -> None:
        SqliteState._put_node(self.db, node)

    def end_silences(self, ids: list[str]) -> None:
        self.db.executemany("DELETE FROM silences WHERE id = ?", [(i,) for i in ids])

    def owe(self, record: dict[str, Any], now: float) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO outbox (id, node, created, body) VALUES (?, ?, ?, ?)",
            (record["id"], record["node"], now, _dump(record)),
        )


__all__ = ["KEEPALIVE", "SqliteState"]
