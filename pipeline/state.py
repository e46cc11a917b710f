"""The cluster state: per node and check, the latest result and what it means over time.

The state is the one source of truth for alerting. Every record goes through it (the
`state` destination, see `state_output.py`) before a notifying output (Slack) decides
anything: Sensu's order, state first, then notification. It is kept in a `StateStore`:
SQLite beside the spool for one machine (`state_sqlite.py`), Redis for shippers on several
machines (`state_redis.py`); both implement the same contract, written down here as the
pure functions they share.

Per node and check an `Entry` holds the latest record's status and date, since when the
status holds, `occurrences` and `occurrences_watermark` with Sensu Go's meaning, the
record's `ttl`, whether it is a stale record, the silences covering it, and the last
notification of each notifying output. Rules every store keeps:

- **Never rewound.** A record is taken only when it is newer than the entry's latest, by
  (date, id): an older record (a replayed backlog) is stored by the stores, but changes
  nothing here and notifies nobody. Taking a record twice changes nothing either.
- **Atomic per node and check.** Shippers on several machines take records at once.
- **Occurrences** count consecutive results of one status, OK included; the watermark is
  the highest count of the current non-OK run and survives WARNING <-> CRITICAL, and a
  resolution (non-OK -> OK) carries the run's watermark, so a recovery can say how long the
  problem lasted.
"""

from __future__ import annotations

import time

from accre_monitor.dates import epoch_seconds
from accre_monitor.record import iso_now, new_id
from accre_monitor.status import OK, STATUSES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

KEEPALIVE = "keepalive"  # the check name of a node's keepalive record


class _Value:
    """A small record type: keyword construction with defaults, equality, a dict form.

    Written out rather than a dataclass: `dataclasses` imports `inspect`, which alone costs
    a check run that keeps the state more than the state itself.
    """

    __slots__ = ()
    FIELDS: tuple[tuple[str, Any], ...] = ()  # (name, default; a list or dict is copied)

    def __init__(self, *args: Any, **kw: Any) -> None:
        names = [name for name, _ in self.FIELDS]
        values = dict(zip(names, args, strict=False))
        for key in kw:
            if key not in names or key in values:
                raise TypeError(f"{type(self).__name__}: unexpected or repeated {key!r}")
        values.update(kw)
        for name, default in self.FIELDS:
            if name in values:
                value = values[name]
            elif default is _REQUIRED:
                raise TypeError(f"{type(self).__name__}: {name} is required")
            else:
                value = default.copy() if isinstance(default, list | dict) else default
            setattr(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name, _ in self.FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """The value a stored dict holds (keys it does not know are left out). Faster than
        the constructor: a status page reads every entry of the state every few seconds."""
        value = object.__new__(cls)
        for name, default in cls.FIELDS:
            if name in data:
                setattr(value, name, data[name])
            elif default is _REQUIRED:
                raise TypeError(f"{cls.__name__}: {name} is required")
            else:
                fresh = default.copy() if isinstance(default, list | dict) else default
                setattr(value, name, fresh)
        return value

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.to_dict() == other.to_dict()  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name, _ in self.FIELDS)
        return f"{type(self).__name__}({shown})"


_REQUIRED = object()


class Entry(_Value):
    """What is known of one check on one node.

    node, check, status; date (the latest record's date, epoch seconds) and record_id;
    since (when `status` began to hold); occurrences and watermark; previous (the status of
    the record before, None for the first); problem_since (start of the current non-OK run,
    kept by a resolution); ttl (seconds without a newer result before it is stale, 0:
    never); stale (the latest record says results stopped coming); silenced (ids of the
    silences covering it when it was taken); notified (output -> what it said last: status,
    date, id); record (the latest record itself).
    """

    FIELDS = (
        ("node", _REQUIRED),
        ("check", _REQUIRED),
        ("status", _REQUIRED),
        ("date", _REQUIRED),
        ("record_id", _REQUIRED),
        ("since", _REQUIRED),
        ("occurrences", 1),
        ("watermark", 1),
        ("previous", None),
        ("problem_since", None),
        ("ttl", 0.0),
        ("stale", False),
        ("silenced", []),
        ("notified", {}),
        ("record", {}),
    )
    __slots__ = tuple(name for name, _ in FIELDS)
    node: str
    check: str
    status: str
    date: float
    record_id: str
    since: float
    occurrences: int
    watermark: int
    previous: str | None
    problem_since: float | None
    ttl: float
    stale: bool
    silenced: list[str]
    notified: dict[str, dict[str, Any]]
    record: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return (self.node, self.check)

    @property
    def due(self) -> float | None:
        """When a stale record is owed if nothing newer arrives (None: never)."""
        if self.ttl <= 0 or self.stale:
            return None
        return self.date + self.ttl

    @property
    def is_resolution(self) -> bool:
        return self.status == OK and self.previous is not None and self.previous != OK


class Node(_Value):
    """A node: the date of its latest real result (stale and keepalive records do not
    count), whether it is silent (a keepalive record said so), and when it last came back
    (its checks get a full ttl from then before any is called stale)."""

    FIELDS = (("name", _REQUIRED), ("last", _REQUIRED), ("silent", False), ("back", 0.0))
    __slots__ = tuple(name for name, _ in FIELDS)
    name: str
    last: float
    silent: bool
    back: float


class Silence(_Value):
    """Records of matching nodes and checks are not notified while it is active; `end`
    None: until removed, or until a resolution (`on_resolve`)."""

    FIELDS = (
        ("id", _REQUIRED),
        ("node", "*"),
        ("check", "*"),
        ("begin", 0.0),
        ("end", None),
        ("on_resolve", False),
        ("comment", ""),
        ("created", 0.0),
    )
    __slots__ = tuple(name for name, _ in FIELDS)
    id: str
    node: str
    check: str
    begin: float
    end: float | None
    on_resolve: bool
    comment: str
    created: float

    def active(self, now: float) -> bool:
        return self.begin <= now and (self.end is None or now < self.end)

    def matches(self, node: str, check: str) -> bool:
        from fnmatch import fnmatchcase  # `re`: only where silences exist

        return fnmatchcase(node, self.node) and fnmatchcase(check, self.check)


class Taken(_Value):
    """What the state says of one record handed to `take`.

    `entry` is the entry after the record (or as it stands, when the record changed
    nothing); `current` says whether the record is the entry's latest (taken now or before):
    a record that is not (a newer one was taken before, or later in the same batch) is
    superseded, and a notifier stays quiet about it. `applied`:
    this call changed the entry; `problem`: why the state cannot take the record at all.
    """

    FIELDS = (
        ("record", _REQUIRED),
        ("entry", _REQUIRED),
        ("applied", _REQUIRED),
        ("current", _REQUIRED),
        ("problem", None),
    )
    __slots__ = tuple(name for name, _ in FIELDS)
    record: dict[str, Any]
    entry: Entry | None
    applied: bool
    current: bool
    problem: str | None


class StateStore:
    """The contract both stores keep (see the module docstring); SqliteState and RedisState
    implement it (structurally: this class only names it, without importing `typing`)."""

    def take(self, records: list[dict[str, Any]], now: float | None = None) -> list[Taken]: ...

    def entries(self, node: str | None = None, check: str | None = None) -> list[Entry]: ...

    def get(self, node: str, check: str) -> Entry | None: ...

    def count_check(self, check: str) -> int: ...

    def nodes(self) -> list[Node]: ...

    def node(self, name: str) -> Node | None: ...

    def mark_notified(self, output: str, notes: list[dict[str, Any]]) -> None: ...

    def forget(self, node: str, check: str | None = None) -> int: ...

    def add_silence(self, silence: Silence) -> Silence: ...

    def silences(self, now: float | None = None) -> list[Silence]: ...

    def remove_silence(self, silence_id: str) -> bool: ...

    def acquire_lease(self, name: str, holder: str, seconds: float) -> bool: ...

    def release_lease(self, name: str, holder: str) -> None: ...

    def overdue(self, now: float, limit: int, offset: int = 0) -> list[Entry]: ...

    def silent_candidates(self, now: float, node_ttl: float, limit: int) -> list[Node]: ...

    def fire_stale(self, record: dict[str, Any], expect: str, now: float) -> bool: ...

    def fire_keepalive(self, record: dict[str, Any], last: float, now: float) -> bool: ...

    def outbox(self, limit: int) -> list[dict[str, Any]]: ...

    def published(self, record_ids: list[str]) -> None: ...

    def load_doc(self, key: str) -> tuple[Any, int]: ...

    def save_doc(self, key: str, value: Any, version: int) -> bool: ...

    def doc_keys(self, prefix: str) -> list[str]: ...

    def close(self) -> None: ...


# -- the rules, shared by every store ------------------------------------------------------


def record_date(record: dict[str, Any]) -> float:
    """The record's date in epoch seconds; ValueError when it is not ISO 8601."""
    return epoch_seconds(record.get("date"))


def record_ttl(record: dict[str, Any]) -> float:
    """The record's `ttl` in seconds (0: no freshness); anything odd counts as none."""
    ttl = record.get("ttl")
    if isinstance(ttl, int | float) and not isinstance(ttl, bool) and 0 < ttl < 1e9:
        return float(ttl)
    return 0.0


def is_newer(record: dict[str, Any], date: float, entry: Entry | None) -> bool:
    """Whether a record of `date` moves `entry` on: newer by (date, id), never rewinding."""
    if entry is None:
        return True
    if entry.stale and is_real(record):
        # the watchdog dated the stale record by its own clock: the node's next result
        # replaces it even when delivered late, or taken by a clock a little behind
        last = last_real_date(entry)
        if last is not None:
            return date > last
    return (date, str(record.get("id"))) > (entry.date, entry.record_id)


def last_real_date(entry: Entry) -> float | None:
    """The date of the result that went stale, from a stale entry's record."""
    data = entry.record.get("data")
    try:
        return epoch_seconds(data.get("last_result")) if isinstance(data, dict) else None
    except ValueError:
        return None


def is_real(record: dict[str, Any]) -> bool:
    """A result a node sent (not a stale or keepalive record made by the watchdog)."""
    return not record.get("stale") and record.get("name") != KEEPALIVE


def covering(silences: list[Silence], node: str, check: str, now: float) -> list[str]:
    """The ids of the active silences that match `node` and `check`."""
    return [s.id for s in silences if s.active(now) and s.matches(node, check)]


def advance(
    entry: Entry | None,
    record: dict[str, Any],
    date: float,
    silences: list[Silence],
    now: float,
) -> Entry:
    """The entry after a newer `record` of `date` (the caller checked `is_newer`)."""
    status = record["status"]
    node, check = record["node"], record["name"]
    previous = entry.status if entry is not None else None
    same = previous == status
    occurrences = entry.occurrences + 1 if entry is not None and same else 1
    if status != OK:
        run_goes_on = previous is not None and previous != OK
        watermark = max(entry.watermark, occurrences) if entry and run_goes_on else occurrences
        problem_since = entry.problem_since if entry and run_goes_on else date
    elif entry is not None and previous != OK:  # a resolution: the problem's figures stay
        watermark, problem_since = entry.watermark, entry.problem_since
    else:
        watermark, problem_since = occurrences, None
    return Entry(
        node=node,
        check=check,
        status=status,
        date=date,
        record_id=str(record["id"]),
        since=entry.since if entry is not None and same else date,
        occurrences=occurrences,
        watermark=watermark,
        previous=previous,
        problem_since=problem_since,
        ttl=record_ttl(record),
        stale=bool(record.get("stale")),
        silenced=covering(silences, node, check, now),
        notified=dict(entry.notified) if entry is not None else {},
        record=record,
    )


def ending_silences(entry: Entry, silences: list[Silence]) -> list[str]:
    """The on-resolve silences a resolution ends: those covering its node and check."""
    if not entry.is_resolution:
        return []
    return [s.id for s in silences if s.on_resolve and s.matches(entry.node, entry.check)]


def checked(record: dict[str, Any]) -> tuple[float, str | None]:
    """(date, None) for a record the state can take, or (0, the reason it cannot)."""
    for key in ("id", "node", "name", "status"):
        if not isinstance(record.get(key), str) or not record.get(key):
            return 0.0, f"no {key}"
    if record["status"] not in STATUSES:
        return 0.0, f"status {record['status']!r} is not one of {', '.join(STATUSES)}"
    try:
        return record_date(record), None
    except ValueError as exc:
        return 0.0, str(exc)


def settled(takens: list[Taken]) -> list[Taken]:
    """The batch's `takens`, each with `current` as the state stands after the whole batch:
    an earlier result of a check superseded by a later one of the same batch is not current.
    Every store's `take` answers this way, so a notifier judges the same batch alike whether
    it or the `state` destination took it first."""
    latest: dict[tuple[str, str], Entry] = {}
    for taken in takens:
        if taken.entry is not None:  # the store took the batch in order: the last one stands
            latest[taken.entry.key] = taken.entry
    for taken in takens:
        if taken.entry is not None:
            taken.current = latest[taken.entry.key].record_id == str(taken.record.get("id"))
    return takens


# -- records the watchdog makes --------------------------------------------------------------


def clock(moment: float) -> str:
    """`HH:MM:SS` in local time, as the short texts show a moment."""
    return time.strftime("%H:%M:%S", time.localtime(moment))


def stale_record(entry: Entry, status: str, now: float) -> dict[str, Any]:
    """The record that says no newer result came for `entry` within its ttl."""
    return {
        "id": new_id(),
        "node": entry.node,
        "date": iso_now(now),
        "name": entry.check,
        "status": status,
        "stale": True,
        "data": {"last_result": entry.record.get("date"), "ttl": entry.ttl},
        "runtime": 0.0,
        "short": (
            f"no result for {entry.check} from {entry.node} since {clock(entry.date)}"
            f" (ttl {entry.ttl:g} s)"
        ),
    }


def keepalive_record(node: Node, status: str, now: float, node_ttl: float) -> dict[str, Any]:
    """The record that says a node has gone silent (`status`), or is back (OK)."""
    record: dict[str, Any] = {
        "id": new_id(),
        "node": node.name,
        "date": iso_now(now),
        "name": KEEPALIVE,
        "status": status,
        "data": {"last_result": iso_now(node.last), "node_ttl": node_ttl},
        "runtime": 0.0,
    }
    if status == OK:
        record["short"] = f"{node.name} reports again"
    else:
        record["stale"] = True
        record["short"] = f"no result from {node.name} since {clock(node.last)}"
    return record
