"""The cluster state in Redis: one state shared by shippers on several machines.

Key layout (`P` is `[state] key_prefix`; `N` and `C` are a node's and a check's names with
`%`, `:` and the glob characters `*?[]\\` percent-encoded, so that `N:C` names one pair)::

    P:state:entry:N:C       string, the entry of check C on node N (JSON)
    P:state:checks:N        set, the checks of node N that have an entry
    P:state:node:N          string, the node's liveness (JSON: last, silent, back)
    P:state:nodes           set, every node with an entry or a liveness
    P:state:due             sorted set, `N:C` scored by when a stale record is owed
    P:state:awake           sorted set, the nodes not called silent, by their latest result
    P:state:silences        string, every silence (a JSON list, in the order they came)
    P:state:outbox          sorted set, ids of the records the state made and still owes
    P:state:outbox:records  hash, id -> that record (JSON)
    P:state:lease:NAME      string, the lease's holder, expiring with the lease
    P:state:doc:KEY         string, a small document and its version (JSON)
    P:state:docs            set, the documents' keys

The watchdog's questions are cheap at any size: `overdue` and `silent_candidates` read the
head of a sorted set (`due`, `awake`), then only the entries or nodes found there.

**Why optimistic transactions (WATCH/MULTI) rather than Lua.** The rules are Python
(`state.py`), applied in one order (`state_apply.py`) that SQLite follows too; a Lua script
would be a second copy of them in another language, which nothing but luck would keep
equal to the first. So a batch of records WATCHes every key it may change (its entries,
its nodes' liveness and keepalive entries, the silences), reads them all in one MGET,
applies the rules in Python, and writes in one MULTI/EXEC: three round trips per batch,
whatever its size. The indexes (`due`, `awake`, `checks`, `nodes`, the outbox) are written
in the same MULTI; they are derived from watched keys, so they need no watching. When
another shipper changed one of the watched keys meanwhile, EXEC does nothing and the batch
runs again on fresh reads; a batch that keeps meeting others is split in halves, down to
one record, so that shippers busy with the same nodes all make progress. A state that
stays contended past `[state] busy_timeout`, or that cannot be reached, raises
`StoreUnavailable`: the records wait and are retried, never refused.

The password of the URL (which may hold `#`, `/` or `@`) is taken apart before redis-py
sees the URL, and hidden from every message of this process.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

import orjson
import redis
from redis.exceptions import WatchError

from accre_monitor.errors import ConfigError
from accre_monitor.outcome import StoreUnavailable, describe
from accre_monitor.outputs.redis import client_options, url_problem
from accre_monitor.pipeline import state_apply
from accre_monitor.pipeline.state import KEEPALIVE, Entry, Node, Silence, Taken, covering, settled
from accre_monitor.redaction import redact_url, remember_url, split_credentials

READ_CHUNK = 1000  # keys per MGET when listing
SPLIT_AFTER = 2  # conflicts of one batch before it is split in halves
_ENCODED = frozenset("%:*?[]\\")
_CONFLICT = object()

# what a transaction's work returns: (its result, the writes to make, or None for none)
Work = Callable[[Any, list[Any]], tuple[Any, Callable[[Any], None] | None]]


def _part(name: str) -> str:
    """A node's or check's name as a piece of a key: `%`, `:` and glob characters encoded."""
    if _ENCODED.isdisjoint(name):
        return name
    return "".join(f"%{ord(char):02X}" if char in _ENCODED else char for char in name)


def _member(node: str, check: str) -> str:
    return f"{_part(node)}:{_part(check)}"


def _dump(value: Any) -> bytes:
    """JSON of `value`; an Entry, Node or Silence goes as its dict (no deep copy)."""
    return orjson.dumps(value, default=_plain)


def _plain(value: Any) -> Any:
    return value.to_dict()


def _is_for(record: dict[str, Any], node: str, check: str) -> bool:
    return record.get("node") == node and record.get("name") == check


def _entry(value: bytes) -> Entry:
    return Entry.from_dict(orjson.loads(value))


def _node(name: str, value: bytes) -> Node:
    data = orjson.loads(value)
    return Node(name, data["last"], data["silent"], data["back"])


def _silences(value: bytes | None) -> list[Silence]:
    return [Silence.from_dict(data) for data in orjson.loads(value)] if value else []


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisState:
    """The `StateStore` contract on a Redis server shared by every shipper of a cluster."""

    def __init__(
        self,
        url: str,
        prefix: str = "accre-monitor",
        busy_timeout: float = 10.0,
        timeout: float = 5.0,
    ) -> None:
        self.safe_url = redact_url(url)
        remember_url(url)
        bare, username, password = split_credentials(url)
        try:
            problem = url_problem(urlsplit(bare))
        except ValueError as exc:
            problem = str(exc)
        if problem:
            raise ConfigError(f"state.url {self.safe_url!r} is not a usable Redis URL: {problem}")
        self.prefix = prefix
        self.busy_timeout = busy_timeout
        self._pool = redis.ConnectionPool(**client_options(bare, username, password, timeout))
        self.client = redis.Redis(connection_pool=self._pool)
        base = f"{prefix}:state:"
        self._entries = base + "entry:"
        self._checks = base + "checks:"
        self._nodes = base + "node:"
        self._node_set = base + "nodes"
        self._due = base + "due"
        self._awake = base + "awake"
        self._silence_list = base + "silences"
        self._outbox = base + "outbox"
        self._outbox_records = base + "outbox:records"
        self._leases = base + "lease:"
        self._docs = base + "doc:"
        self._doc_set = base + "docs"

    def __repr__(self) -> str:
        return f"RedisState({self.safe_url!r}, prefix={self.prefix!r})"

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing must not fail the run
            self._pool.disconnect()

    # -- keys ----------------------------------------------------------------------------

    def _entry_key(self, node: str, check: str) -> str:
        return self._entries + _member(node, check)

    def _node_key(self, name: str) -> str:
        return self._nodes + _part(name)

    def _checks_key(self, name: str) -> str:
        return self._checks + _part(name)

    # -- talking to Redis ----------------------------------------------------------------

    @contextlib.contextmanager
    def _reachable(self) -> Iterator[None]:
        """redis-py's errors (unreachable, timing out, refusing our password, loading...)
        as `StoreUnavailable`, in one line without the password."""
        try:
            yield
        except WatchError:
            raise
        except redis.RedisError as exc:
            reason = " ".join(describe(exc).split())
            raise StoreUnavailable(f"cluster state at {self.safe_url}: {reason}") from None

    def _attempt(self, watch: list[str], work: Work) -> Any:
        """One optimistic transaction: WATCH `watch`, MGET them, `work(pipe, values)` (which
        may read more through `pipe`), then its writes in MULTI/EXEC. `_CONFLICT` when
        another client changed a watched key first (nothing was written)."""
        with self._reachable(), self.client.pipeline() as pipe:
            try:
                pipe.watch(*watch)
                values = pipe.mget(watch)
                result, write = work(pipe, values)
                if write is not None:
                    pipe.multi()
                    write(pipe)
                    pipe.execute()
                return result
            except WatchError:
                return _CONFLICT

    def _transact(self, watch: list[str], work: Work) -> Any:
        """`_attempt` until it is not in conflict (see `_back_off`)."""
        deadline = time.monotonic() + self.busy_timeout
        return self._until_settled(lambda: self._attempt(watch, work), deadline)

    def _until_settled(
        self, attempt: Callable[[], Any], deadline: float, split: Callable[[], Any] | None = None
    ) -> Any:
        """`attempt()` again after each conflict, backing off; after SPLIT_AFTER conflicts,
        `split()` (when given) answers instead, if it can (None: it cannot)."""
        conflicts = 0
        while True:
            result = attempt()
            if result is not _CONFLICT:
                return result
            conflicts += 1
            self._back_off(conflicts, deadline)
            if split is not None and conflicts >= SPLIT_AFTER:
                halves = split()
                if halves is not None:
                    return halves

    def _back_off(self, conflicts: int, deadline: float) -> None:
        """Wait a little (growing, with jitter) before running a transaction again;
        StoreUnavailable once the busy timeout has passed."""
        if time.monotonic() > deadline:
            raise StoreUnavailable(
                f"cluster state at {self.safe_url}: still contended after {conflicts} tries "
                f"in {self.busy_timeout:g} s"
            )
        time.sleep(min(0.001 * 2**conflicts, 0.1) * (0.5 + random.random()))

    def _mget(self, keys: list[str]) -> list[Any]:
        values: list[Any] = []
        with self._reachable():
            for start in range(0, len(keys), READ_CHUNK):
                values += self.client.mget(keys[start : start + READ_CHUNK])
        return values

    # -- taking records ------------------------------------------------------------------

    def take(self, records: list[dict[str, Any]], now: float | None = None) -> list[Taken]:
        """Take each record into the state, atomically per node and check (see `state.py`)."""
        now = time.time() if now is None else now
        return settled(self._take_part(records, now, time.monotonic() + self.busy_timeout))

    def _take_part(self, records: list[dict[str, Any]], now: float, deadline: float) -> list:
        """The batch in one transaction; when it keeps meeting other shippers' updates, in
        halves (down to single records), so that busy shippers always make progress."""

        def halves() -> list | None:
            if len(records) < 2:
                return None
            half = len(records) // 2
            return self._take_part(records[:half], now, deadline) + self._take_part(
                records[half:], now, deadline
            )

        return self._until_settled(lambda: self._attempt_take(records, now), deadline, halves)

    def _attempt_take(self, records: list[dict[str, Any]], now: float) -> Any:
        pairs = list(dict.fromkeys(p for r in records for p in state_apply.keys_of(r)))
        names = list(dict.fromkeys(node for node, _ in pairs))

        def work(pipe: Any, values: list[Any]) -> tuple[Any, Any]:
            view, silences = self._snapshot(pairs, names, values)
            taken = [state_apply.take_one(view, record, silences, now) for record in records]
            return taken, self._writes(view, silences)

        return self._attempt(self._snapshot_keys(pairs, names), work)

    def _snapshot_keys(self, pairs: list[tuple[str, str]], names: list[str]) -> list[str]:
        """What a transaction over these entries and nodes watches and reads, in order."""
        return [
            self._silence_list,
            *(self._entry_key(node, check) for node, check in pairs),
            *(self._node_key(name) for name in names),
        ]

    def _snapshot(
        self, pairs: list[tuple[str, str]], names: list[str], values: list[Any]
    ) -> tuple[_Snapshot, list[Silence]]:
        entries = values[1 : 1 + len(pairs)]
        nodes = values[1 + len(pairs) :]
        view = _Snapshot(
            {p: _entry(v) if v is not None else None for p, v in zip(pairs, entries, strict=True)},
            {n: _node(n, v) if v is not None else None for n, v in zip(names, nodes, strict=True)},
        )
        return view, _silences(values[0])

    def _writes(self, view: _Snapshot, silences: list[Silence]) -> Callable[[Any], None] | None:
        """The writes of what `view` changed, for one MULTI (None: nothing changed)."""
        if not view.changed:
            return None

        def write(pipe: Any) -> None:
            values: dict[str, bytes] = {}  # one MSET, one ZADD or ZREM per index: a
            due: dict[str, float] = {}  # few commands per batch, not a few per record
            undue: list[str] = []
            checks: dict[str, list[str]] = {}
            for key, entry in view.put_entries.items():
                member = _member(*key)
                values[self._entries + member] = _dump(entry)
                before = view.before.get(key)
                if entry.due is not None:
                    due[member] = entry.due
                elif before is not None and before.due is not None:
                    undue.append(member)
                checks.setdefault(entry.node, []).append(entry.check)
            awake: dict[str, float] = {}
            silent: list[str] = []
            for node in view.put_nodes.values():
                liveness = {"last": node.last, "silent": node.silent, "back": node.back}
                values[self._node_key(node.name)] = _dump(liveness)
                if node.silent:
                    silent.append(node.name)
                else:
                    awake[node.name] = node.last
            if view.ended:
                values[self._silence_list] = _dump([s.to_dict() for s in silences])
            if values:
                pipe.mset(values)
            if due:
                pipe.zadd(self._due, due)
            if undue:
                pipe.zrem(self._due, *undue)
            if awake:
                pipe.zadd(self._awake, awake)
            if silent:
                pipe.zrem(self._awake, *silent)
            for name, names in checks.items():
                pipe.sadd(self._checks_key(name), *names)
            known = set(checks) | set(view.put_nodes)
            if known:
                pipe.sadd(self._node_set, *known)
            for record, now in view.owed:
                pipe.zadd(self._outbox, {record["id"]: now}, nx=True)
                pipe.hsetnx(self._outbox_records, record["id"], _dump(record))

        return write

    def _change(
        self,
        pairs: list[tuple[str, str]],
        names: list[str],
        apply: Callable[[_Snapshot, list[Silence]], Any],
    ) -> Any:
        """`apply(view, silences)` in a transaction over these entries and nodes."""

        def work(pipe: Any, values: list[Any]) -> tuple[Any, Any]:
            view, silences = self._snapshot(pairs, names, values)
            result = apply(view, silences)
            return result, self._writes(view, silences)

        return self._transact(self._snapshot_keys(pairs, names), work)

    # -- the watchdog's side -------------------------------------------------------------

    def overdue(self, now: float, limit: int, offset: int = 0) -> list[Entry]:
        """Entries whose ttl ran out, stale ones excepted, in a stable order (by due, then
        node and check: members of one score come in lexical order), `offset` skipped."""
        with self._reachable():
            members = self.client.zrangebyscore(self._due, "-inf", now, start=offset, num=limit)
        values = self._mget([self._entries + _text(m) for m in members])
        found = [_entry(v) for v in values if v is not None]
        return [e for e in found if e.due is not None and e.due <= now]

    def silent_candidates(self, now: float, node_ttl: float, limit: int) -> list[Node]:
        """Nodes not yet called silent whose latest real result is older than `node_ttl`."""
        with self._reachable():
            found = self.client.zrangebyscore(
                self._awake, "-inf", now - node_ttl, start=0, num=limit
            )
        names = [_text(name) for name in found]
        values = self._mget([self._node_key(name) for name in names])
        nodes = [_node(n, v) for n, v in zip(names, values, strict=True) if v is not None]
        return [node for node in nodes if not node.silent]

    def node(self, name: str) -> Node | None:
        with self._reachable():
            value = self.client.get(self._node_key(name))
        return _node(name, value) if value is not None else None

    def fire_stale(self, record: dict[str, Any], expect: str, now: float) -> bool:
        """Take the stale `record` and owe its publication, only if its entry still has the
        record `expect` as its latest (no newer result came meanwhile, no one fired it)."""
        pairs = [(record["node"], record["name"])]
        return self._change(
            pairs,
            [],
            lambda view, silences: state_apply.fire_stale(view, record, expect, silences, now),
        )

    def fire_keepalive(self, record: dict[str, Any], last: float, now: float) -> bool:
        """Call the node silent with the keepalive `record`, only if it still is what the
        watchdog saw (not silent, latest result at `last`)."""
        name = record["node"]
        return self._change(
            [(name, KEEPALIVE)],
            [name],
            lambda view, silences: state_apply.fire_keepalive(view, record, last, silences, now),
        )

    def outbox(self, limit: int) -> list[dict[str, Any]]:
        """Records the state made and still owes to the bus, oldest first."""
        with self._reachable():
            ids = self.client.zrange(self._outbox, 0, limit - 1) if limit > 0 else []
            bodies = self.client.hmget(self._outbox_records, ids) if ids else []
        return [orjson.loads(body) for body in bodies if body is not None]

    def published(self, record_ids: list[str]) -> None:
        if not record_ids:
            return
        with self._reachable(), self.client.pipeline() as pipe:
            pipe.zrem(self._outbox, *record_ids)
            pipe.hdel(self._outbox_records, *record_ids)
            pipe.execute()

    def acquire_lease(self, name: str, holder: str, seconds: float) -> bool:
        """Hold lease `name` for `seconds` more: True when it was free, expired or ours.
        Redis' clock times it, so the shippers' clocks need not agree."""
        key = self._leases + name
        millis = max(int(seconds * 1000), 1)
        with self._reachable():
            if self.client.set(key, holder, nx=True, px=millis):
                return True

        def extend(pipe: Any, values: list[Any]) -> tuple[Any, Any]:
            if values[0] is not None and _text(values[0]) != holder:
                return False, None
            return True, lambda write: write.set(key, holder, px=millis)

        return self._transact([key], extend)

    def release_lease(self, name: str, holder: str) -> None:
        key = self._leases + name

        def release(pipe: Any, values: list[Any]) -> tuple[Any, Any]:
            if values[0] is None or _text(values[0]) != holder:
                return None, None
            return None, lambda write: write.delete(key)

        self._transact([key], release)

    # -- reading and curating ------------------------------------------------------------

    def _pairs(self, node: str | None = None, check: str | None = None) -> list[tuple[str, str]]:
        """Every (node, check) with an entry, of nodes and checks matching the globs, sorted."""
        with self._reachable():
            names = sorted(_text(n) for n in self.client.smembers(self._node_set))
            names = [n for n in names if node is None or fnmatchcase(n, node)]
            with self.client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.smembers(self._checks_key(name))
                found = pipe.execute() if names else []
        pairs = [(n, _text(c)) for n, checks in zip(names, found, strict=True) for c in checks]
        return sorted(p for p in pairs if check is None or fnmatchcase(p[1], check))

    def entries(self, node: str | None = None, check: str | None = None) -> list[Entry]:
        """Every entry (of nodes and checks matching the globs), by node and check."""
        values = self._mget([self._entry_key(n, c) for n, c in self._pairs(node, check)])
        return [_entry(value) for value in values if value is not None]

    def count_check(self, check: str) -> int:
        """How many nodes the state knows for `check`, in two round trips (a node's checks
        are a set: one SISMEMBER per node, pipelined), without reading the entries."""
        with self._reachable():
            names = list(self.client.smembers(self._node_set))
            if not names:
                return 0
            with self.client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.sismember(self._checks_key(_text(name)), check)
                return sum(1 for known in pipe.execute() if known)

    def get(self, node: str, check: str) -> Entry | None:
        with self._reachable():
            value = self.client.get(self._entry_key(node, check))
        return _entry(value) if value is not None else None

    def nodes(self) -> list[Node]:
        with self._reachable():
            names = sorted(_text(n) for n in self.client.smembers(self._node_set))
        values = self._mget([self._node_key(name) for name in names])
        return [_node(n, v) for n, v in zip(names, values, strict=True) if v is not None]

    def mark_notified(self, output: str, notes: list[dict[str, Any]]) -> None:
        """Remember what `output` said last per node and check: each note has `node`,
        `check`, `status`, `date` (epoch seconds of the record said) and `id`; an older note
        never replaces a newer one."""
        pairs = list(dict.fromkeys((note["node"], note["check"]) for note in notes))

        def apply(view: _Snapshot, silences: list[Silence]) -> None:
            for note in notes:
                entry = view.entry(note["node"], note["check"])
                if entry is not None and state_apply.note_notified(entry, output, note):
                    view.put(entry)

        if pairs:
            self._change(pairs, [], apply)

    def forget(self, node: str, check: str | None = None) -> int:
        """Drop a node (all its checks, its liveness, what it owes) or one of its checks;
        how many entries went."""
        checks_key, node_key = self._checks_key(node), self._node_key(node)

        def one_check(pipe: Any, values: list[Any]) -> tuple[Any, Any]:
            key = self._entry_key(node, check)
            gone = pipe.exists(key)
            owed = [
                _text(record_id)
                for record_id, body in pipe.hgetall(self._outbox_records).items()
                if _is_for(orjson.loads(body), node, check)
            ]

            def write(pipe: Any) -> None:
                pipe.delete(key)
                pipe.zrem(self._due, _member(node, check))
                pipe.srem(checks_key, check)
                if owed:  # a stale record still owed for it is never published
                    pipe.zrem(self._outbox, *owed)
                    pipe.hdel(self._outbox_records, *owed)

            return int(gone), write

        if check is not None:
            return self._transact([self._entry_key(node, check), self._outbox_records], one_check)

        def work(pipe: Any, values: list[Any]) -> tuple[Any, Any]:
            members = [_member(node, _text(c)) for c in pipe.smembers(checks_key)]
            keys = [self._entries + member for member in members]
            if keys:
                pipe.watch(*keys)
            gone = pipe.exists(*keys) if keys else 0
            owed = [
                _text(record_id)
                for record_id, body in pipe.hgetall(self._outbox_records).items()
                if orjson.loads(body).get("node") == node
            ]

            def write(pipe: Any) -> None:
                if keys:
                    pipe.delete(*keys)
                    pipe.zrem(self._due, *members)
                pipe.delete(checks_key, node_key)
                pipe.zrem(self._awake, node)
                pipe.srem(self._node_set, node)
                if owed:
                    pipe.zrem(self._outbox, *owed)
                    pipe.hdel(self._outbox_records, *owed)

            return int(gone), write

        return self._transact([checks_key, node_key], work)

    # -- small documents (notification groups) -------------------------------------------

    def load_doc(self, key: str) -> tuple[Any, int]:
        """(the document stored under `key`, its version); (None, 0) when there is none."""
        with self._reachable():
            value = self.client.get(self._docs + key)
        if value is None:
            return None, 0
        data = orjson.loads(value)
        return data["body"], data["version"]

    def save_doc(self, key: str, value: Any, version: int) -> bool:
        """Store `value` under `key` if its version is still `version` (compare and set);
        None deletes it. False when another process changed it first."""
        target = self._docs + key

        def work(pipe: Any, values: list[Any]) -> tuple[Any, Any]:
            stored = orjson.loads(values[0])["version"] if values[0] is not None else 0
            if stored != version:
                return False, None

            def write(pipe: Any) -> None:
                if value is None:
                    pipe.delete(target)
                    pipe.srem(self._doc_set, key)
                else:
                    pipe.set(target, _dump({"version": version + 1, "body": value}))
                    pipe.sadd(self._doc_set, key)

            return True, write

        return self._attempt([target], work) is True

    def doc_keys(self, prefix: str) -> list[str]:
        """The keys of the documents whose key starts with `prefix`."""
        with self._reachable():
            keys = [_text(key) for key in self.client.smembers(self._doc_set)]
        return sorted(key for key in keys if key.startswith(prefix))

    # -- silences ------------------------------------------------------------------------

    def _change_silences(
        self, change: Callable[[list[Silence]], tuple[Any, list[Silence] | None]]
    ) -> Any:
        """`change(silences)` -> (result, the new list or None to keep it), in a transaction."""

        def work(pipe: Any, values: list[Any]) -> tuple[Any, Any]:
            result, after = change(_silences(values[0]))
            if after is None:
                return result, None
            payload = _dump([s.to_dict() for s in after])
            return result, lambda write: write.set(self._silence_list, payload)

        return self._transact([self._silence_list], work)

    def add_silence(self, silence: Silence) -> Silence:
        """Store a silence and mark the entries it covers now."""

        def change(silences: list[Silence]) -> tuple[Any, list[Silence] | None]:
            if any(s.id == silence.id for s in silences):
                raise ValueError(f"there is a silence {silence.id} already")
            return silence, [*silences, silence]

        self._change_silences(change)
        self._remark([silence], time.time())
        return silence

    def silences(self, now: float | None = None) -> list[Silence]:
        """The silences not yet over (expired ones are removed as they are met)."""
        now = time.time() if now is None else now
        over: list[Silence] = []

        def change(silences: list[Silence]) -> tuple[Any, list[Silence] | None]:
            over[:] = [s for s in silences if s.end is not None and s.end <= now]
            rest = [s for s in silences if s not in over]
            return rest, rest if over else None

        rest = self._change_silences(change)
        self._remark(over, now)
        return rest

    def remove_silence(self, silence_id: str) -> bool:
        gone: list[Silence] = []

        def change(silences: list[Silence]) -> tuple[Any, list[Silence] | None]:
            gone[:] = [s for s in silences if s.id == silence_id]
            return bool(gone), [s for s in silences if s.id != silence_id] if gone else None

        removed = self._change_silences(change)
        self._remark(gone, time.time())
        return removed

    def _remark(self, changed: list[Silence], now: float) -> None:
        """Mark the entries the `changed` silences match with the silences covering them
        now (the others are not affected), a chunk of entries per transaction."""
        if not changed:
            return
        pairs = [
            (node, check)
            for node, check in self._pairs()
            if any(s.matches(node, check) for s in changed)
        ]
        for start in range(0, len(pairs), READ_CHUNK):
            chunk = pairs[start : start + READ_CHUNK]

            def apply(view: _Snapshot, silences: list[Silence], chunk: list = chunk) -> None:
                for pair in chunk:
                    entry = view.entry(*pair)
                    if entry is None:
                        continue
                    ids = covering(silences, entry.node, entry.check, now)
                    if ids != entry.silenced:
                        entry.silenced = ids
                        view.put(entry)

            self._change(chunk, [], apply)


class _Snapshot:
    """The `View` of one Redis transaction: what it read, and what it changes."""

    def __init__(
        self, entries: dict[tuple[str, str], Entry | None], nodes: dict[str, Node | None]
    ) -> None:
        self.entries = entries
        self.before = dict(entries)
        self.nodes = nodes
        self.put_entries: dict[tuple[str, str], Entry] = {}
        self.put_nodes: dict[str, Node] = {}
        self.ended: list[str] = []
        self.owed: list[tuple[dict[str, Any], float]] = []

    @property
    def changed(self) -> bool:
        return bool(self.put_entries or self.put_nodes or self.ended or self.owed)

    def entry(self, node: str, check: str) -> Entry | None:
        return self.entries[(node, check)]  # a KeyError: a key the transaction did not watch

    def put(self, entry: Entry) -> None:
        self.entries[entry.key] = self.put_entries[entry.key] = entry

    def node(self, name: str) -> Node | None:
        return self.nodes[name]

    def put_node(self, node: Node) -> None:
        self.nodes[node.name] = self.put_nodes[node.name] = node

    def end_silences(self, ids: list[str]) -> None:
        self.ended += ids

    def owe(self, record: dict[str, Any], now: float) -> None:
        self.owed.append((record, now))


__all__ = ["RedisState"]
