"""What the status page, its API and `/metrics` read: the cluster state, once per refresh.

A page open in a dozen browsers refreshes every few seconds, and Prometheus scrapes on its
own clock: each of them reading every entry of a 60,000-entry state would keep a core busy.
`StateView` serves every request from one read of the state, a `Snapshot`, which keeps the
JSON it serves already encoded (and gzipped). Once a snapshot is older than `max_age` (or
twice as long as it took to read and encode, whichever is longer: at most a third of a
core goes to reading, however large the state), the next request still gets it, and starts
one read in the background; the requests after that get the new one, encoded before it is
served. Nobody waits for a read but the first request, the first after a write of this
server (a silence added shows at once), and those after a read that failed (the state is
down: they are told so, in one line). Nothing is read while nobody asks.

Two JSON forms are served:

- `state_bytes`: `accre-pipeline overview --json`, one object per node and check, built by
  the same function (`overview.entry_json`), in the same order.
- `grid_bytes`: the page's compact form (`grid`), about a fifth of the size: every cell of
  the heat map as one character, its age and its short text, and the problems, worst first,
  as indexes into it. Its fields:

      version   1
      now       the server's clock when the state was read (epoch seconds)
      nodes     node names, grouped by name prefix, in natural order (gpu2 before gpu10)
      groups    [[prefix, first node's index, number of nodes], ...]
      checks    check names (the node's `keepalive` first, then by name)
      cells     one character per node and check (node-major): "." no entry; else
                "a" + 4 * status (OK, WARNING, CRITICAL, UNKNOWN) + 2 * stale + silenced
      age       per cell: seconds since its latest result (null: no entry)
      short     per cell: its short text, cut at SHORT_MAX characters (null: none)
      problems  [[cell, seconds since the status holds, occurrences, [silence ids]], ...]
                every cell not OK, stale or silenced, worst first (as `overview` sorts)
      counts    per status, stale and silenced (as `overview` counts)
      silences  the silences not over yet (as `silence list --json`)
      watchdog  the acting watchdog's last round (`at`, `holder`, ...), or null
      refresh   seconds between the page's refreshes; writable: whether silences can be
                added from the page (a token is set); store: where the state is
"""

from __future__ import annotations

import gzip
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from accre_monitor.pipeline.overview import entry_json, overdue
from accre_monitor.pipeline.silence_cli import as_json
from accre_monitor.pipeline.state import KEEPALIVE, Entry, Silence, StateStore, covering
from accre_monitor.pipeline.state_cli import sqlite_missing, state_dir, unreachable, where
from accre_monitor.pipeline.state_store import open_state
from accre_monitor.pipeline.watchdog import last_round
from accre_monitor.status import CRITICAL, SEVERITY, STATUSES

SHORT_MAX = 200  # characters of a short text in the grid (the node's page shows it whole)
FORMS = ("state", "state.gz", "grid", "grid.gz")  # the encoded forms a snapshot serves
FAILURE_HOLD = 1.0  # seconds a failed read is answered from memory before trying again
_TRAILING_NUMBER = re.compile(r"^(.*?)(\d+)$")
_CODE = {status: index for index, status in enumerate(STATUSES)}


class StateUnavailable(Exception):
    """The state cannot be read now; the message is one line that says where and why."""


@dataclass
class Snapshot:
    """The state as read at `now` (epoch seconds), with the forms served from it."""

    now: float
    location: str
    entries: list[Entry]  # by node and check; each record cut to its short text
    silences: list[Silence]  # not over yet (some may begin later)
    backs: dict[str, float]  # node -> when it last came back
    nodes: int  # nodes the state knows (with or without entries)
    silent_nodes: int  # nodes a keepalive record called silent
    watchdog: dict[str, Any] | None
    read_seconds: float
    empty: bool = False  # no state yet: nothing was ever taken
    extra: dict[str, Any] = field(default_factory=dict)  # what the grid carries beside
    _cache: dict[str, Any] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def flags(self) -> list[tuple[bool, list[str]]]:
        """Per entry: (stale, ids of the silences covering it now), as `overview` says."""

        def build() -> list[tuple[bool, list[str]]]:
            active = self.active_silences()
            now, backs = self.now, self.backs
            return [
                (
                    e.stale or overdue(e, backs.get(e.node, 0.0), now),
                    covering(active, e.node, e.check, now) if active else [],
                )
                for e in self.entries
            ]

        return self.once("flags", build)

    def once(self, name: str, build: Any) -> Any:
        """`build()`, made once per snapshot (threads asking at once wait for the first)."""
        with self._lock:
            if name not in self._cache:
                self._cache[name] = build()
            return self._cache[name]

    def items(self) -> list[dict[str, Any]]:
        """`overview --json`'s objects."""
        return self.once(
            "items",
            lambda: [
                entry_json(e, self.silences, self.backs.get(e.node, 0.0), self.now)
                for e in self.entries
            ],
        )

    def state_bytes(self, gzipped: bool = False) -> bytes:
        plain = self.once("state", lambda: orjson.dumps(self.items()))
        return self.once("state.gz", lambda: _gzip(plain)) if gzipped else plain

    def grid_bytes(self, gzipped: bool = False) -> bytes:
        plain = self.once("grid", lambda: orjson.dumps({**grid(self), **self.extra}))
        return self.once("grid.gz", lambda: _gzip(plain)) if gzipped else plain

    def built(self) -> list[str]:
        """The forms asked of this snapshot (a new one builds them before it is served)."""
        with self._lock:
            return [name for name in FORMS if name in self._cache]

    def build(self, names: list[str]) -> None:
        for name in names:
            gzipped = name.endswith(".gz")
            (self.state_bytes if name.startswith("state") else self.grid_bytes)(gzipped)

    def active_silences(self) -> list[Silence]:
        return [s for s in self.silences if s.active(self.now)]


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=5, mtime=0)


# -- the compact form -------------------------------------------------------------------


def group_of(node: str) -> str:
    """A node's group: its name without the trailing number (`gpu017` -> `gpu`); a name
    without one is a group of its own."""
    found = _TRAILING_NUMBER.match(node)
    return found.group(1) if found and found.group(1) else node


def node_order(node: str) -> tuple[str, int, str]:
    """Natural order: by group, then by number (gpu2 before gpu10), then by name."""
    found = _TRAILING_NUMBER.match(node)
    if found and found.group(1):
        return (found.group(1), int(found.group(2)), node)
    return (node, -1, node)


def check_order(check: str) -> tuple[bool, str]:
    """The node's liveness (`keepalive`) first, then by name."""
    return (check != KEEPALIVE, check)


def grid(snapshot: Snapshot) -> dict[str, Any]:
    """The page's compact form of the snapshot (see the module docstring)."""
    now = snapshot.now
    nodes = sorted({e.node for e in snapshot.entries}, key=node_order)
    checks = sorted({e.check for e in snapshot.entries}, key=check_order)
    row = {name: index for index, name in enumerate(nodes)}
    column = {name: index for index, name in enumerate(checks)}
    size = len(nodes) * len(checks)
    cells = bytearray(b"." * size)
    ages: list[int | None] = [None] * size
    shorts: list[str | None] = [None] * size
    problems: list[tuple[tuple[Any, ...], list[Any]]] = []
    for entry, (stale, silenced) in zip(snapshot.entries, snapshot.flags(), strict=True):
        index = row[entry.node] * len(checks) + column[entry.check]
        cells[index] = 97 + 4 * _CODE.get(entry.status, 3) + 2 * stale + bool(silenced)
        ages[index] = max(0, round(now - entry.date))
        short = entry.record.get("short")
        if isinstance(short, str):
            shorts[index] = short if len(short) <= SHORT_MAX else short[: SHORT_MAX - 1] + "…"
        if entry.status != "OK" or stale or silenced:
            since = max(0, round(now - entry.since))
            row_ = [index, since, entry.occurrences, silenced]
            problems.append((worst_first_key(entry, stale), row_))
    problems.sort(key=lambda p: p[0])
    return {
        "version": 1,
        "now": now,
        "store": snapshot.location,
        "empty": snapshot.empty,
        "nodes": nodes,
        "groups": groups(nodes),
        "checks": checks,
        "cells": cells.decode("ascii"),
        "age": ages,
        "short": shorts,
        "problems": [row for _, row in problems],
        "counts": counts_of(snapshot),
        "silences": [as_json(s) for s in snapshot.silences],
        "watchdog": snapshot.watchdog,
    }


def worst_first_key(entry: Entry, stale: bool) -> tuple[Any, ...]:
    """`overview.worst_first` on an entry: the same order without formatting its dates
    (since to the millisecond, as the overview's ISO 8601 dates give it)."""
    since_ms = int(entry.since) * 1000 + int(entry.since % 1 * 1000)
    return (
        -SEVERITY.get(entry.status, 0),
        entry.status != CRITICAL,
        not stale,
        since_ms,
        entry.node,
        entry.check,
    )


def groups(nodes: list[str]) -> list[list[Any]]:
    """[[prefix, first index, count], ...] of consecutive nodes of one group."""
    found: list[list[Any]] = []
    for index, node in enumerate(nodes):
        prefix = group_of(node)
        if found and found[-1][0] == prefix:
            found[-1][2] += 1
        else:
            found.append([prefix, index, 1])
    return found


def counts_of(snapshot: Snapshot) -> dict[str, int]:
    """Per status, stale and silenced, as `overview` counts them."""

    def build() -> dict[str, int]:
        result = dict.fromkeys(STATUSES, 0)
        for entry in snapshot.entries:
            result[entry.status] = result.get(entry.status, 0) + 1
        flags = snapshot.flags()
        result["stale"] = sum(1 for stale, _ in flags if stale)
        result["silenced"] = sum(1 for _, silenced in flags if silenced)
        return result

    return snapshot.once("counts", build)


def per_check(snapshot: Snapshot) -> dict[str, dict[str, int]]:
    """check -> {status: count, ..., "stale": n, "silenced": n}, for `/metrics`."""

    def build() -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = {}
        for entry, (stale, silenced) in zip(snapshot.entries, snapshot.flags(), strict=True):
            row = result.get(entry.check)
            if row is None:
                row = result[entry.check] = {
                    **dict.fromkeys(STATUSES, 0),
                    "stale": 0,
                    "silenced": 0,
                }
            row[entry.status] = row.get(entry.status, 0) + 1
            row["stale"] += stale
            row["silenced"] += bool(silenced)
        return result

    return snapshot.once("per_check", build)


# -- reading ------------------------------------------------------------------------------


class StateView:
    """The state `[state]` names, as snapshots (see the module docstring)."""

    def __init__(self, config: Any, max_age: float, extra: dict[str, Any] | None = None) -> None:
        self.config = config
        self.max_age = max_age
        self.extra = extra or {}
        self.location = where(config)
        self._store: StateStore | None = None
        self._store_lock = threading.Lock()
        self._lock = threading.Lock()  # guards the fields below
        self._reading = threading.Lock()  # one read at a time
        self._snapshot: Snapshot | None = None
        self._read_at = 0.0  # monotonic time the snapshot was ready
        self._lifetime = max_age
        self._failure: str | None = None  # the last read failed: why
        self._failed_at = 0.0
        self._dirty = False  # this server wrote: the next request reads afresh
        self._refreshing = False
        self._reads = 0  # reads done (or failed): those who waited share the last one

    def store(self) -> StateStore:
        """The store, opened on first use and kept (ConfigError: a URL it cannot use)."""
        with self._store_lock:
            if self._store is None:
                self._store = open_state(self.config.state, state_dir(self.config))
            return self._store

    def close(self) -> None:
        with self._store_lock:
            if self._store is not None:
                store, self._store = self._store, None
                try:
                    store.close()
                except unreachable():
                    pass

    def readable(self) -> bool:
        """Whether there is a state to read (a SQLite state not created yet is not one)."""
        return not sqlite_missing(self.config)

    def invalidate(self) -> None:
        """The next request reads the state afresh (after a write of this server's)."""
        with self._lock:
            self._dirty = True

    def snapshot(self) -> Snapshot:
        """The snapshot to serve now (see the module docstring); StateUnavailable when the
        state cannot be read."""
        now = time.monotonic()
        with self._lock:
            current, failure, reads = self._snapshot, self._failure, self._reads
            if failure is not None and now - self._failed_at < FAILURE_HOLD:
                raise StateUnavailable(failure)
            if current is not None and failure is None and not self._dirty:
                if now - self._read_at >= self._lifetime and not self._refreshing:
                    self._refreshing = True
                    threading.Thread(target=self._refresh, args=(reads,), daemon=True).start()
                return current
        return self._read_now(reads)

    def _read_now(self, reads: int) -> Snapshot:
        with self._reading:
            with self._lock:
                if self._reads != reads:  # read meanwhile, while this one waited
                    if self._failure is not None:
                        raise StateUnavailable(self._failure)
                    if self._snapshot is not None and not self._dirty:
                        return self._snapshot
            return self._read_once()

    def _refresh(self, reads: int) -> None:
        try:
            with self._reading:
                if self._reads == reads:
                    self._read_once()
        except StateUnavailable:
            pass  # kept as the failure: the next request says it
        finally:
            with self._lock:
                self._refreshing = False

    def _read_once(self) -> Snapshot:
        """Read the state, build the forms the last snapshot was asked for, and serve it
        from now on (the caller holds `_reading`)."""
        with self._lock:
            wanted = self._snapshot.built() if self._snapshot is not None else []
            self._dirty = False
        started = time.monotonic()
        try:
            snapshot = self._read()
            snapshot.build(wanted)
        except StateUnavailable as exc:
            with self._lock:
                self._failure, self._failed_at = str(exc), time.monotonic()
                self._reads += 1
            raise
        spent = time.monotonic() - started
        with self._lock:
            self._snapshot, self._failure = snapshot, None
            self._read_at = time.monotonic()
            self._lifetime = max(self.max_age, 2 * spent)
            self._reads += 1
        return snapshot

    def use(self, work: Any) -> Any:
        """`work(store)`, with a store that cannot be reached as StateUnavailable."""
        try:
            return work(self.store())
        except unreachable() as exc:
            raise StateUnavailable(self.reason(exc)) from None

    def reason(self, exc: BaseException) -> str:
        """One line: where the state is and why it cannot be used (as the commands say)."""
        text = " ".join((getattr(exc, "strerror", None) or str(exc) or type(exc).__name__).split())
        filename = getattr(exc, "filename", None)
        text = f"{text}: {filename}" if filename else text
        if self.location in text:
            return f"cannot use the state: {text}"
        return f"cannot use the state at {self.location}: {text}"

    def _read(self) -> Snapshot:
        started = time.monotonic()
        now = time.time()
        if sqlite_missing(self.config):  # never create the file just to say it is empty
            return Snapshot(
                now, self.location, [], [], {}, 0, 0, None, 0.0, empty=True, extra=self.extra
            )

        def read(store: StateStore) -> Snapshot:
            silences = store.silences(now)
            nodes = store.nodes()
            entries = sorted(store.entries(), key=lambda e: e.key)
            for entry in entries:  # the rest of the record is for the node's page
                entry.record = {"short": entry.record.get("short")}
            return Snapshot(
                now=now,
                location=self.location,
                entries=entries,
                silences=silences,
                backs={n.name: n.back for n in nodes},
                nodes=len({n.name for n in nodes} | {e.node for e in entries}),
                silent_nodes=sum(1 for n in nodes if n.silent),
                watchdog=last_round(store),
                read_seconds=0.0,
                extra=self.extra,
            )

        snapshot = self.use(read)
        snapshot.read_seconds = time.monotonic() - started
        return snapshot
