"""The cluster state's contract, kept alike by both stores: SQLite (a file) and Redis (a real
redis-server, skipped with an install hint where none can run here)."""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from servers import RedisServer, missing_reason

from accre_monitor.outcome import DELIVERED, REJECTED, RETRY, StoreUnavailable
from accre_monitor.outputs import create_output
from accre_monitor.pipeline.delivery import deliver_batch
from accre_monitor.pipeline.state import KEEPALIVE, Silence, keepalive_record, stale_record
from accre_monitor.pipeline.state_store import open_state
from accre_monitor.record import iso_now, new_id

WORKER = Path(__file__).resolve().parent / "state_worker.py"
T0 = 1_780_000_000.0  # a moment in 2026; records are dated from it
_prefixes = itertools.count()


def need_redis() -> None:
    pytest.importorskip("redis", reason="the redis package: pip install 'accre-monitor[redis]'")
    reason = missing_reason("redis")
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def redis_server():
    need_redis()
    with RedisServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "redis"])
def settings(request, tmp_path):
    """The `[state]` settings of a fresh, empty state of each kind."""
    if request.param == "sqlite":
        return {"url": f"sqlite:///{tmp_path / 'state.db'}", "busy_timeout": 10.0}
    server = request.getfixturevalue("redis_server")
    return {"url": server.url, "key_prefix": f"test{next(_prefixes)}"}


@pytest.fixture
def opened():
    stores = []

    def open_one(settings):
        store = open_state(settings)
        stores.append(store)
        return store

    yield open_one
    for store in stores:
        store.close()


@pytest.fixture
def store(settings, opened):
    return opened(settings)


def result(status="OK", at=0.0, node="web01", check="disk", **extra):
    """A check's record, dated `at` seconds after T0."""
    record = {
        "id": new_id(),
        "node": node,
        "date": iso_now(T0 + at),
        "name": check,
        "status": status,
        "data": {},
        "runtime": 0.01,
    }
    record.update(extra)
    return record


def take(store, *records, now=None):
    return store.take(list(records), now=T0 + 1000 if now is None else now)


# -- occurrences and the watermark -----------------------------------------------------------


def test_occurrences_count_consecutive_results_of_one_status_ok_included(store):
    take(store, result("OK", 0), result("OK", 60), result("OK", 120))
    entry = store.get("web01", "disk")
    assert (entry.status, entry.occurrences, entry.since) == ("OK", 3, T0)
    assert entry.problem_since is None


def test_the_watermark_survives_warning_critical_changes(store):
    take(store, result("OK", 0), result("WARNING", 60), result("WARNING", 120))
    take(store, result("CRITICAL", 180))
    entry = store.get("web01", "disk")
    assert (entry.status, entry.occurrences, entry.watermark) == ("CRITICAL", 1, 2)
    assert entry.problem_since == T0 + 60
    take(store, result("CRITICAL", 240), result("CRITICAL", 300))
    entry = store.get("web01", "disk")
    assert (entry.occurrences, entry.watermark, entry.since) == (3, 3, T0 + 180)


def test_a_resolution_keeps_the_problems_watermark_and_since(store):
    take(store, *(result("CRITICAL", at) for at in (0, 60, 120, 180)), result("OK", 240))
    entry = store.get("web01", "disk")
    assert (entry.status, entry.occurrences, entry.previous) == ("OK", 1, "CRITICAL")
    assert (entry.watermark, entry.problem_since, entry.is_resolution) == (4, T0, True)
    take(store, result("OK", 300))
    entry = store.get("web01", "disk")
    assert (entry.occurrences, entry.problem_since, entry.is_resolution) == (2, None, False)


# -- never rewound, idempotent ------------------------------------------------------------------


def test_an_older_record_never_rewinds_the_entry(store):
    newer, older = result("OK", 60), result("CRITICAL", 0)
    take(store, newer)
    (taken,) = take(store, older)
    assert (taken.applied, taken.current) == (False, False)
    entry = store.get("web01", "disk")
    assert (entry.status, entry.record_id, entry.occurrences) == ("OK", newer["id"], 1)


def test_taking_a_record_twice_changes_nothing(store):
    first = result("CRITICAL", 0)
    take(store, first, result("CRITICAL", 60))
    before = store.get("web01", "disk")
    (again,) = take(store, first)
    assert (again.applied, again.current) == (False, False)
    latest = before.record
    (same,) = take(store, latest)
    assert (same.applied, same.current) == (False, True)
    assert store.get("web01", "disk") == before


def test_a_record_the_state_cannot_take_gives_a_problem_and_the_others_are_taken(store):
    good = result("OK", 0)
    no_node = {**result("OK", 0), "node": ""}
    bad_date = result("OK", 0, date="yesterday")
    bad_status = result("FINE", 0)
    taken = take(store, no_node, good, bad_date, bad_status)
    assert [t.problem is not None for t in taken] == [True, False, True, True]
    assert "node" in taken[0].problem and "FINE" in taken[3].problem
    assert store.get("web01", "disk").record_id == good["id"]


def test_the_state_destination_refuses_a_bad_record_alone_and_counts_a_duplicate(settings):
    output = create_output("state", {}, state=settings)
    try:
        good, bad = result("OK", 0), {**result("OK", 0), "node": None}
        outcomes = deliver_batch(output, [good, bad], 5.0)
        assert [o.state for o in outcomes] == [DELIVERED, REJECTED]
        (again,) = deliver_batch(output, [good], 5.0)
        assert (again.state, again.duplicate) == (DELIVERED, True)
    finally:
        output.close()


def test_a_watchdog_record_coming_back_through_the_bus_is_no_duplicate(settings, opened):
    """The watchdog takes its stale record into the state before publishing it; the state
    destination meets it again from the bus, which is how it flows, not a redelivery."""
    store = opened(settings)
    (first,) = take(store, result("OK", at=0, ttl=60))
    stale = stale_record(first.entry, "UNKNOWN", T0 + 1000)
    assert store.fire_stale(stale, first.entry.record_id, T0 + 1000)
    output = create_output("state", {}, state=settings)
    try:
        (outcome,) = deliver_batch(output, [stale], 5.0)
        assert (outcome.state, outcome.duplicate) == (DELIVERED, False)
    finally:
        output.close()


# -- several processes at once ------------------------------------------------------------------


def run_workers(jobs: list[dict]) -> list:
    """Each job in a process of its own, all started at once; their results."""
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for _ in jobs
    ]
    try:
        for worker, job in zip(workers, jobs, strict=True):
            worker.stdin.write(json.dumps(job) + "\n")
            worker.stdin.flush()
        for worker in workers:
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        results = [json.loads(worker.stdout.readline()) for worker in workers]
        for worker in workers:
            assert worker.wait(timeout=60) == 0
        return results
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


def test_processes_taking_interleaved_records_at_once_lose_no_update(settings, store):
    """Each record is applied once at most; the count is exactly the number applied (a lost
    update would count one twice), and the newest record wins."""
    records = [result("CRITICAL", at) for at in range(200)]
    jobs = [
        {"settings": settings, "action": "take", "records": records[k::4], "batch": 1}
        for k in range(4)
    ]
    applied = [i for ids in run_workers(jobs) for i in ids]
    assert len(applied) == len(set(applied))
    entry = store.get("web01", "disk")
    assert entry.record_id == records[-1]["id"]
    assert entry.status == "CRITICAL"
    assert entry.occurrences == entry.watermark == len(applied)


def test_processes_taking_records_of_many_checks_of_one_node_lose_none(settings, store):
    """Batches of many checks of one node, taken by two processes at once: every check ends
    with its latest record and the exact number of results."""
    rounds = [[result("WARNING", at, check=f"c{n}") for n in range(20)] for at in range(30)]
    flat = [record for batch in rounds for record in batch]
    jobs = [
        {"settings": settings, "action": "take", "records": flat, "batch": 20} for _ in range(2)
    ]
    applied = [i for ids in run_workers(jobs) for i in ids]
    assert sorted(applied) == sorted(r["id"] for r in flat)  # in order: each exactly once
    for n in range(20):
        entry = store.get("web01", f"c{n}")
        assert (entry.occurrences, entry.record_id) == (30, rounds[-1][n]["id"])
    assert store.node("web01").last == T0 + 29


def test_fire_stale_fires_once_when_two_processes_race(settings, store):
    entries = []
    for n in range(20):
        take(store, result("OK", 0, check=f"c{n}", ttl=30))
        entries.append(store.get("web01", f"c{n}"))
    jobs = [
        {
            "settings": settings,
            "action": "fire_stale",
            "fires": [[stale_record(e, "UNKNOWN", T0 + 100), e.record_id] for e in entries],
        }
        for _ in range(2)
    ]
    assert sum(run_workers(jobs)) == 20
    assert len(store.outbox(100)) == 20
    assert all(store.get("web01", f"c{n}").stale for n in range(20))


# -- the watchdog's side ------------------------------------------------------------------------


def test_overdue_lists_entries_past_their_ttl_oldest_first_and_never_stale_ones(store):
    take(store, result("OK", 0, check="a", ttl=60), result("OK", 10, check="b", ttl=20))
    take(store, result("OK", 0, check="c"))  # no ttl: never due
    assert [e.check for e in store.overdue(T0 + 100, 10)] == ["b", "a"]
    assert [e.check for e in store.overdue(T0 + 40, 10)] == ["b"]
    assert [e.check for e in store.overdue(T0 + 100, 1)] == ["b"]
    b = store.get("web01", "b")
    assert store.fire_stale(stale_record(b, "UNKNOWN", T0 + 100), b.record_id, T0 + 100)
    assert [e.check for e in store.overdue(T0 + 100, 10)] == ["a"]


def test_a_stale_record_is_not_fired_when_a_newer_result_came(store):
    take(store, result("OK", 0, ttl=60))
    seen = store.get("web01", "disk")
    take(store, result("OK", 30, ttl=60))
    assert not store.fire_stale(stale_record(seen, "UNKNOWN", T0 + 70), seen.record_id, T0 + 70)
    assert store.outbox(10) == []


def test_the_next_real_result_replaces_a_stale_record(store):
    take(store, result("OK", 0, ttl=60))
    seen = store.get("web01", "disk")
    stale = stale_record(seen, "UNKNOWN", T0 + 70)
    assert store.fire_stale(stale, seen.record_id, T0 + 70)
    entry = store.get("web01", "disk")
    assert (entry.status, entry.stale, entry.due) == ("UNKNOWN", True, None)
    assert store.outbox(10) == [stale]
    store.published([stale["id"]])
    assert store.outbox(10) == []
    take(store, result("OK", 80, ttl=60))
    entry = store.get("web01", "disk")
    assert (entry.status, entry.stale, entry.due) == ("OK", False, T0 + 140)


def test_a_silent_node_gets_one_keepalive_and_its_next_result_recovers_it(store):
    take(store, result("OK", 0, node="web01"), result("OK", 50, node="web02"))
    assert [n.name for n in store.silent_candidates(T0 + 100, 60, 10)] == ["web01"]
    assert [n.name for n in store.silent_candidates(T0 + 200, 60, 1)] == ["web01"]
    node = store.node("web01")
    alert = keepalive_record(node, "CRITICAL", T0 + 100, 60)
    assert store.fire_keepalive(alert, node.last, T0 + 100)
    assert not store.fire_keepalive(keepalive_record(node, "CRITICAL", T0 + 100, 60), 0, T0)
    assert store.node("web01").silent
    assert [n.name for n in store.silent_candidates(T0 + 200, 60, 10)] == ["web02"]
    assert store.get("web01", KEEPALIVE).status == "CRITICAL"
    store.published([alert["id"]])
    take(store, result("OK", 150, node="web01"), now=T0 + 150)
    (back,) = store.outbox(10)
    assert (back["name"], back["status"], back["node"]) == (KEEPALIVE, "OK", "web01")
    keepalive = store.get("web01", KEEPALIVE)
    assert (keepalive.status, keepalive.is_resolution) == ("OK", True)
    node = store.node("web01")
    assert (node.silent, node.last, node.back) == (False, T0 + 150, T0 + 150)
    assert [n.name for n in store.nodes()] == ["web01", "web02"]


def test_a_lease_is_held_by_one_holder_at_a_time(store):
    assert store.acquire_lease("watchdog", "a", 30)
    assert not store.acquire_lease("watchdog", "b", 30)
    assert store.acquire_lease("watchdog", "a", 30)  # extended
    store.release_lease("watchdog", "b")  # not b's: nothing happens
    assert not store.acquire_lease("watchdog", "b", 30)
    store.release_lease("watchdog", "a")
    assert store.acquire_lease("watchdog", "b", 30)
    assert store.acquire_lease("other", "a", 30)  # leases are independent


def test_a_lease_that_is_not_extended_expires(store):
    assert store.acquire_lease("watchdog", "a", 0.3)
    assert not store.acquire_lease("watchdog", "b", 30)
    deadline = time.monotonic() + 10
    while not store.acquire_lease("watchdog", "b", 30):
        assert time.monotonic() < deadline, "the lease never expired"
        time.sleep(0.02)
    assert not store.acquire_lease("watchdog", "a", 30)


# -- silences --------------------------------------------------------------------------------------


def test_a_silence_marks_the_entries_it_covers_and_its_removal_unmarks_them(store):
    take(store, result("CRITICAL", 0, node="web01"), result("CRITICAL", 0, node="db01"))
    silence = Silence(id="s1", node="web*", comment="maintenance", created=T0)
    store.add_silence(silence)
    assert store.get("web01", "disk").silenced == ["s1"]
    assert store.get("db01", "disk").silenced == []
    take(store, result("CRITICAL", 60, node="web02"))
    assert store.get("web02", "disk").silenced == ["s1"]
    assert store.silences() == [silence]
    assert store.remove_silence("s1")
    assert not store.remove_silence("s1")
    assert store.silences() == []
    assert store.get("web01", "disk").silenced == []
    assert store.get("web02", "disk").silenced == []


def test_silences_are_listed_in_the_order_they_were_added(store):
    added = [Silence(id=f"s{n}", check="disk", comment="c", created=T0 - n) for n in range(5)]
    for silence in added:
        store.add_silence(silence)
    assert [s.id for s in store.silences()] == ["s0", "s1", "s2", "s3", "s4"]


def test_an_expired_silence_goes_and_its_entries_are_unmarked(store):
    now = time.time()
    take(store, result("CRITICAL", 0), now=now)
    store.add_silence(Silence(id="s1", begin=now - 10, end=now + 60, comment="c", created=now))
    assert store.get("web01", "disk").silenced == ["s1"]
    assert [s.id for s in store.silences(now + 30)] == ["s1"]
    assert store.silences(now + 61) == []
    assert store.get("web01", "disk").silenced == []


def test_an_on_resolve_silence_ends_at_the_resolution_of_a_check_it_covers(store):
    take(store, result("CRITICAL", 0, check="disk"), result("CRITICAL", 0, check="load"))
    store.add_silence(Silence(id="s1", check="disk", on_resolve=True, comment="c", created=T0))
    take(store, result("CRITICAL", 60, check="disk"), result("OK", 60, check="load"))
    assert [s.id for s in store.silences()] == ["s1"]  # load is not covered
    assert store.get("web01", "disk").silenced == ["s1"]
    (taken,) = take(store, result("OK", 120, check="disk"))
    assert taken.entry.is_resolution and taken.entry.silenced == []
    assert store.get("web01", "disk").silenced == []
    assert store.silences() == []


# -- curating ------------------------------------------------------------------------------------


def test_forget_drops_a_check_or_a_whole_node_and_what_it_owes(store):
    take(
        store,
        result("OK", 0, node="web01", check="disk", ttl=60),
        result("OK", 0, node="web01", check="load", ttl=60),
        result("OK", 0, node="web02", check="disk", ttl=60),
    )
    load = store.get("web01", "load")
    assert store.fire_stale(stale_record(load, "UNKNOWN", T0 + 70), load.record_id, T0 + 70)
    assert store.forget("web01", "disk") == 1
    assert store.forget("web01", "disk") == 0
    assert [(e.node, e.check) for e in store.entries()] == [("web01", "load"), ("web02", "disk")]
    assert store.forget("web01") == 1
    assert [(e.node, e.check) for e in store.entries()] == [("web02", "disk")]
    assert [n.name for n in store.nodes()] == ["web02"]
    assert store.node("web01") is None
    assert store.outbox(10) == []
    assert [e.node for e in store.overdue(T0 + 1000, 10)] == ["web02"]
    assert [n.name for n in store.silent_candidates(T0 + 1000, 60, 10)] == ["web02"]


def test_entries_are_listed_by_node_and_check_and_filtered_by_globs(store):
    take(
        store,
        result("OK", 0, node="web02", check="disk"),
        result("OK", 0, node="web01", check="load"),
        result("OK", 0, node="web01", check="disk"),
        result("OK", 0, node="db:1", check="disk:/"),
    )
    assert [(e.node, e.check) for e in store.entries()] == [
        ("db:1", "disk:/"),
        ("web01", "disk"),
        ("web01", "load"),
        ("web02", "disk"),
    ]
    assert [(e.node, e.check) for e in store.entries(node="web*", check="d*")] == [
        ("web01", "disk"),
        ("web02", "disk"),
    ]
    assert store.get("db:1", "disk:/").node == "db:1"
    assert store.get("db", "1:disk:/") is None


def test_mark_notified_is_never_rewound_and_survives_new_records(store):
    take(store, result("CRITICAL", 0))
    note = {"node": "web01", "check": "disk", "status": "CRITICAL", "id": "n2", "date": T0 + 200}
    store.mark_notified("slack", [note])
    older = {**note, "id": "n1", "date": T0 + 100, "status": "WARNING"}
    unknown = {**note, "check": "nothing"}
    store.mark_notified("slack", [older, unknown])
    assert store.get("web01", "disk").notified == {
        "slack": {"status": "CRITICAL", "date": T0 + 200, "id": "n2"}
    }
    assert store.get("web01", "nothing") is None
    take(store, result("OK", 60))
    assert store.get("web01", "disk").notified["slack"]["id"] == "n2"


def test_documents_are_set_only_if_unchanged(store):
    assert store.load_doc("group:disk") == (None, 0)
    assert store.save_doc("group:disk", {"nodes": ["web01"]}, 0)
    assert not store.save_doc("group:disk", {"nodes": []}, 0)  # someone else saved first
    assert store.load_doc("group:disk") == ({"nodes": ["web01"]}, 1)
    assert store.save_doc("group:load", [1, 2], 0)
    assert store.save_doc("other", "x", 0)
    assert store.doc_keys("group:") == ["group:disk", "group:load"]
    assert store.save_doc("group:disk", None, 1)  # deleted
    assert store.load_doc("group:disk") == (None, 0)
    assert store.doc_keys("group:") == ["group:load"]


# -- the store cannot be reached ------------------------------------------------------------------


def test_a_locked_sqlite_state_raises_store_unavailable_and_the_records_wait(tmp_path):
    path = tmp_path / "state.db"
    settings = {"url": f"sqlite:///{path}", "busy_timeout": 0.2}
    output = create_output("state", {}, state=settings)
    holder = None
    try:
        deliver_batch(output, [result("OK", 0)], 5.0)  # the file exists
        holder = sqlite3.connect(path, timeout=0, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable) as raised:
            output.state_store().take([result("OK", 60)])
        assert "\n" not in str(raised.value) and "locked" in str(raised.value)
        outcomes = deliver_batch(output, [result("OK", 60), result("OK", 120)], 5.0)
        assert [o.state for o in outcomes] == [RETRY, RETRY]
    finally:
        if holder is not None:
            holder.close()
        output.close()


REDIS_PASSWORD = "s3cr#t/p@ss-horse"


@pytest.fixture
def redis_with_password():
    """A server of its own (the test stops it), behind a password holding `#`, `/`, `@`."""
    need_redis()
    with RedisServer(password=REDIS_PASSWORD) as server:
        yield server


def test_a_stopped_redis_raises_store_unavailable_and_the_records_wait(redis_with_password):
    settings = {"url": redis_with_password.url, "key_prefix": "outage"}
    output = create_output("state", {}, state=settings)
    try:
        assert [o.state for o in deliver_batch(output, [result("OK", 0)], 5.0)] == [DELIVERED]
        redis_with_password.stop()
        with pytest.raises(StoreUnavailable) as raised:
            output.state_store().take([result("OK", 60)])
        message = str(raised.value)
        assert "\n" not in message and "p@ss" not in message and "s3cr" not in message
        assert str(redis_with_password.port) in message
        outcomes = deliver_batch(output, [result("OK", 60), result("OK", 120)], 5.0)
        assert [o.state for o in outcomes] == [RETRY, RETRY]
        assert all("p@ss" not in o.error for o in outcomes)
        for call in (
            lambda s: s.get("web01", "disk"),
            lambda s: s.overdue(T0, 10),
            lambda s: s.acquire_lease("watchdog", "a", 10),
            lambda s: s.silences(),
        ):
            with pytest.raises(StoreUnavailable):
                call(output.state_store())
        redis_with_password.start()
        assert [o.state for o in deliver_batch(output, [result("OK", 60)], 5.0)] == [DELIVERED]
        assert output.state_store().get("web01", "disk").occurrences == 2  # the data survived
    finally:
        output.close()


def test_the_redis_state_keeps_its_keys_under_the_prefix(redis_server, opened):
    import redis

    store = opened({"url": redis_server.url, "key_prefix": "kept"})
    take(store, result("CRITICAL", 0, ttl=60))
    store.add_silence(Silence(id="s1", comment="c"))
    store.acquire_lease("watchdog", "a", 30)
    store.save_doc("group", {}, 0)
    entry = store.get("web01", "disk")
    store.fire_stale(stale_record(entry, "UNKNOWN", T0 + 70), entry.record_id, T0 + 70)
    with redis.Redis.from_url(redis_server.url, decode_responses=True) as client:
        keys = client.keys("kept*")
    assert keys and all(key.startswith("kept:state:") for key in keys)


def test_a_bad_redis_url_is_a_config_error():
    need_redis()
    from accre_monitor.errors import ConfigError

    with pytest.raises(ConfigError, match="state.url"):
        open_state({"url": "redis://host:port/0"})


@pytest.fixture
def interfering(redis_server, monkeypatch):
    """A Redis state whose transactions meet another client's write to a key they watch (the
    silences) while they compute, the first `times` times."""
    import redis

    from accre_monitor.pipeline.state_redis import RedisState

    settings = {"url": redis_server.url, "key_prefix": f"test{next(_prefixes)}"}
    other = redis.Redis.from_url(redis_server.url)
    left = {"times": 0, "met": 0}
    sizes = []
    snapshot, attempt_take = RedisState._snapshot, RedisState._attempt_take

    def meddling(self, *args):
        if left["times"] > 0:
            left["times"] -= 1
            left["met"] += 1
            other.set(f"{settings['key_prefix']}:state:silences", b"[]")
        return snapshot(self, *args)

    def attempt(self, records, now):
        sizes.append(len(records))
        return attempt_take(self, records, now)

    monkeypatch.setattr(RedisState, "_snapshot", meddling)
    monkeypatch.setattr(RedisState, "_attempt_take", attempt)

    def open_with(times, busy_timeout=10.0):
        left["times"] = times
        return open_state({**settings, "busy_timeout": busy_timeout})

    open_with.met = lambda: left["met"]
    open_with.sizes = sizes
    yield open_with
    other.close()


def test_a_redis_batch_that_meets_other_writers_is_taken_again_in_order(interfering):
    store = interfering(times=6)
    records = [result("CRITICAL", at, check=f"c{at % 3}") for at in range(12)]
    taken = store.take(records)
    assert interfering.met() == 6
    assert interfering.sizes[:3] == [12, 12, 6]  # split in halves after two conflicts
    assert [t.record["id"] for t in taken] == [r["id"] for r in records]
    assert all(t.applied for t in taken)
    assert [store.get("web01", f"c{n}").occurrences for n in range(3)] == [4, 4, 4]
    store.close()


def test_a_redis_state_that_stays_contended_raises_store_unavailable(interfering):
    store = interfering(times=10**6, busy_timeout=0.3)
    with pytest.raises(StoreUnavailable, match="contended"):
        store.take([result("OK", 0), result("OK", 60)])
    store.close()


def test_the_nodes_known_for_a_check_are_counted_without_reading_entries(store):
    take(store, *(result(node=f"n{i:02d}", check="ib_link") for i in range(12)))
    take(store, result(node="n99", check="disk"))
    assert store.count_check("ib_link") == 12
    assert store.count_check("disk") == 1
    assert store.count_check("nothing") == 0
    store.forget("n00")
    store.forget("n01", "ib_link")
    assert store.count_check("ib_link") == 10


def test_a_real_result_dated_before_the_stale_record_still_replaces_it(store):
    """The watchdog dates a stale record by its own clock; a node's next result, delivered
    late or from a clock a little behind, is still newer than the result that went stale."""
    (first,) = take(store, result("OK", at=0, ttl=60))
    stale = stale_record(first.entry, "UNKNOWN", T0 + 1000)
    assert store.fire_stale(stale, first.entry.record_id, T0 + 1000)
    late = result("CRITICAL", at=500, ttl=60)
    (taken,) = take(store, late, now=T0 + 1001)
    assert taken.applied and taken.current
    entry = store.get("web01", "disk")
    assert entry.status == "CRITICAL" and not entry.stale
    # the result that went stale, delivered again, changes nothing
    (again,) = take(store, first.record)
    assert not again.applied


def test_a_result_older_than_the_one_that_went_stale_does_not_replace_the_stale_record(store):
    take(store, result("OK", at=100, ttl=60))
    entry = store.get("web01", "disk")
    assert store.fire_stale(stale_record(entry, "UNKNOWN", T0 + 1000), entry.record_id, T0 + 1000)
    (old,) = take(store, result("CRITICAL", at=50, ttl=60))
    assert not old.applied
    assert store.get("web01", "disk").stale


def test_an_earlier_result_of_a_check_in_the_same_batch_is_not_current(store):
    first, second, other = take(
        store, result("CRITICAL", at=0), result("OK", at=60), result("OK", at=0, check="mem")
    )
    assert first.applied and not first.current
    assert second.applied and second.current
    assert other.current
