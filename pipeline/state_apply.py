"""How a store changes the cluster state: the same steps for every store, written once.

Each store runs these inside one of its own transactions (SQLite's `BEGIN IMMEDIATE`,
Redis' WATCH/MULTI) over a `View`: what that transaction reads and writes of the entries,
the nodes, the silences and the outbox. The decisions themselves are the pure rules of
`state.py`; what is here is the order they are applied in, so that the stores cannot drift
apart.
"""

from __future__ import annotations

from typing import Any, Protocol

from accre_monitor.pipeline.state import (
    KEEPALIVE,
    Entry,
    Node,
    Silence,
    Taken,
    advance,
    checked,
    ending_silences,
    is_newer,
    is_real,
    keepalive_record,
    record_date,
)
from accre_monitor.status import OK


class View(Protocol):
    """What one transaction of a store sees and changes."""

    def entry(self, node: str, check: str) -> Entry | None: ...

    def put(self, entry: Entry) -> None: ...

    def node(self, name: str) -> Node | None: ...

    def put_node(self, node: Node) -> None: ...

    def end_silences(self, ids: list[str]) -> None: ...

    def owe(self, record: dict[str, Any], now: float) -> None:
        """Keep `record` in the outbox (once by its id) until it is published."""


def keys_of(record: dict[str, Any]) -> list[tuple[str, str]]:
    """The (node, check) entries taking `record` may read or change: its own, and its node's
    keepalive (a silent node that reports again recovers it)."""
    node, check = record.get("node"), record.get("name")
    if not isinstance(node, str) or not isinstance(check, str):
        return []
    return [(node, check), (node, KEEPALIVE)]


def take_one(view: View, record: dict[str, Any], silences: list[Silence], now: float) -> Taken:
    """Take one record (see `state.py`); `silences` loses those a resolution ends."""
    date, problem = checked(record)
    if problem is not None:
        return Taken(record, None, False, False, problem)
    entry = view.entry(record["node"], record["name"])
    if not is_newer(record, date, entry):
        current = entry is not None and entry.record_id == str(record["id"])
        return Taken(record, entry, False, current)
    after = advance(entry, record, date, silences, now)
    ended = ending_silences(after, silences)
    if ended:
        view.end_silences(ended)
        silences[:] = [s for s in silences if s.id not in ended]
        after.silenced = [i for i in after.silenced if i not in ended]
    view.put(after)
    if is_real(record):
        heard_from(view, record["node"], date, silences, now)
    return Taken(record, after, True, True)


def heard_from(view: View, name: str, date: float, silences: list[Silence], now: float) -> None:
    """A real result from node `name`: it is alive; a silent node is back (its keepalive
    recovers, through a record in the outbox)."""
    node = view.node(name)
    if node is None:
        view.put_node(Node(name, date))
        return
    if date <= node.last:
        return
    if node.silent:
        node.last = date
        back = keepalive_record(node, OK, now, 0.0)
        back["data"].pop("node_ttl", None)
        apply_made(view, back, silences, now)
        node.silent, node.back = False, now
    node.last = date
    view.put_node(node)


def apply_made(view: View, record: dict[str, Any], silences: list[Silence], now: float) -> None:
    """Take a record the state made itself, and owe its publication (the outbox)."""
    entry = view.entry(record["node"], record["name"])
    view.put(advance(entry, record, record_date(record), silences, now))
    view.owe(record, now)


def fire_stale(
    view: View, record: dict[str, Any], expect: str, silences: list[Silence], now: float
) -> bool:
    """Take the stale `record` and owe it, only if its entry still has the record `expect`
    as its latest (no newer result came meanwhile, no one fired it)."""
    entry = view.entry(record["node"], record["name"])
    if entry is None or entry.record_id != expect or entry.stale:
        return False
    apply_made(view, record, silences, now)
    return True


def fire_keepalive(
    view: View, record: dict[str, Any], last: float, silences: list[Silence], now: float
) -> bool:
    """Call the node silent with the keepalive `record`, only if it still is what the
    watchdog saw (not silent, latest result at `last`)."""
    node = view.node(record["node"])
    if node is None or node.silent or node.last != last:
        return False
    node.silent = True
    view.put_node(node)
    apply_made(view, record, silences, now)
    return True


def note_notified(entry: Entry, output: str, note: dict[str, Any]) -> bool:
    """Remember in `entry` what `output` said (`note`: status, date, id); False when the
    entry knows a newer note already (an older one never replaces it)."""
    before = entry.notified.get(output)
    if before is not None and before.get("date", 0) > note["date"]:
        return False
    entry.notified[output] = {k: note[k] for k in ("status", "date", "id")}
    return True
