"""The watchdog's rules, on a real SQLite state with a recording bus: a check past its ttl
is called stale once per gap, a silent node gets one keepalive and none of its checks a
stale record, only the lease holder acts, and a record the state owes is published by the
next watchdog when one dies before publishing it.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from accre_monitor.config import Config
from accre_monitor.dates import epoch_seconds
from accre_monitor.pipeline.spool import Spool
from accre_monitor.pipeline.state import KEEPALIVE, clock
from accre_monitor.pipeline.state_sqlite import SqliteState
from accre_monitor.pipeline.watchdog import LEASE, SpoolOutlet, Watchdog, last_round
from accre_monitor.record import iso_now, new_id
from accre_monitor.sections import state_section


class Bus:
    """Records what the watchdog publishes; `down` refuses everything, `confirm` confirms
    only that many of the next batch."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.down = False
        self.confirm: int | None = None

    def publish(self, records: list[dict[str, Any]]) -> int:
        if self.down:
            raise ConnectionError("broker unreachable")
        confirmed = len(records) if self.confirm is None else min(self.confirm, len(records))
        self.records += records[:confirmed]
        return confirmed

    def close(self) -> None:
        pass

    def named(self, check: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r["name"] == check]


@pytest.fixture
def store(tmp_path):
    state = SqliteState(str(tmp_path / "state.db"))
    yield state
    state.close()


def settings(**values: Any) -> dict[str, Any]:
    checked, unknown, problems = state_section(values, spool_path="/nonexistent/spool.db")
    assert not unknown and not problems
    return checked


def watchdog(store, bus=None, **values: Any) -> Watchdog:
    chunk = values.pop("chunk", 200)
    return Watchdog(store, bus or Bus(), settings(**values), chunk=chunk)


def result(node: str, check: str, ago: float, ttl: float | None = 5, status: str = "OK"):
    """A record from `node` of `check`, dated `ago` seconds ago."""
    record = {
        "id": new_id(),
        "node": node,
        "date": iso_now(time.time() - ago),
        "name": check,
        "status": status,
        "data": {},
        "short": f"{check} says {status}",
    }
    if ttl is not None:
        record["ttl"] = ttl
    return record


# -- stale checks --------------------------------------------------------------------------


def test_a_check_past_its_ttl_gets_one_stale_record_published_and_kept_in_the_state(store):
    last = result("n1", "mounts", ago=10, ttl=5)
    store.take([last])
    bus = Bus()
    assert watchdog(store, bus).round().stale == 1
    [stale] = bus.records
    assert stale["node"] == "n1" and stale["name"] == "mounts"
    assert stale["status"] == "UNKNOWN" and stale["stale"] is True
    assert stale["id"] != last["id"]
    since = clock(epoch_seconds(last["date"]))
    assert stale["short"] == f"no result for mounts from n1 since {since} (ttl 5 s)"
    entry = store.get("n1", "mounts")
    assert entry.stale and entry.status == "UNKNOWN" and entry.record_id == stale["id"]
    assert store.outbox(10) == []  # published: owed no more


def test_the_stale_status_is_the_configured_one(store):
    store.take([result("n1", "mounts", ago=10, ttl=5)])
    bus = Bus()
    watchdog(store, bus, ttl_status="CRITICAL").round()
    assert [r["status"] for r in bus.records] == ["CRITICAL"]


def test_a_check_within_its_ttl_or_without_one_is_left_alone(store):
    store.take([result("n1", "mounts", ago=2, ttl=5), result("n1", "load", ago=3600, ttl=None)])
    bus = Bus()
    assert watchdog(store, bus).round().stale == 0
    assert bus.records == []


def test_a_stale_check_is_not_called_stale_again_while_nothing_arrives(store):
    store.take([result("n1", "mounts", ago=10, ttl=1)])
    bus, dog = Bus(), None
    dog = watchdog(store, bus)
    for _ in range(3):
        dog.round()
    assert len(bus.records) == 1


def test_the_next_result_replaces_the_stale_record_and_a_new_gap_gets_a_new_one(store):
    now = time.time()
    store.take([result("n1", "mounts", ago=20, ttl=5)])
    bus = Bus()
    dog = watchdog(store, bus)
    dog.clock = lambda: now - 10  # the first gap was noticed 10 s ago
    dog.round()
    back = result("n1", "mounts", ago=8, ttl=5)  # after the stale record, and past its ttl
    store.take([back])
    entry = store.get("n1", "mounts")
    assert entry.record_id == back["id"] and not entry.stale and entry.status == "OK"
    dog.clock = lambda: now - 2
    dog.round()
    assert len(bus.named("mounts")) == 2
    assert bus.records[0]["id"] != bus.records[1]["id"]
    fresh = result("n1", "mounts", ago=0, ttl=5)
    store.take([fresh])
    dog.clock = time.time
    dog.round()
    assert len(bus.records) == 2
    assert store.get("n1", "mounts").record_id == fresh["id"]


def test_more_spared_entries_than_a_chunk_do_not_hide_those_due_behind_them(store):
    """A silent node's checks stay overdue (spared); the ones due after them are found in
    the same round however many there are."""
    store.take([result("dead", f"c{i}", ago=100, ttl=5) for i in range(25)])
    store.take([result("alive", f"c{i}", ago=50, ttl=5) for i in range(15)])
    dog = watchdog(store, chunk=10)
    for name in ("dead",):  # the dead node was called silent earlier
        node = store.node(name)
        from accre_monitor.pipeline.state import keepalive_record

        now = time.time()
        store.fire_keepalive(keepalive_record(node, "CRITICAL", now, 60), node.last, now)
    outcome = dog.round()
    assert outcome.stale == 15 and outcome.spared == 25
    assert {r["node"] for r in dog.outlet.records if r["name"] != KEEPALIVE} == {"alive"}


# -- silent nodes ---------------------------------------------------------------------------


def test_a_silent_node_gets_one_keepalive_and_none_of_its_checks_a_stale_record(store):
    # its checks reported one after the other, each past its ttl, all before node_ttl ran out
    store.take([result("n1", f"c{i}", ago=30 - i, ttl=5) for i in range(5)])
    bus = Bus()
    dog = watchdog(store, bus, node_ttl=60)
    dog.round()
    assert bus.records == []  # the node may be dead: its keepalive will say so
    silent = result("n2", "c0", ago=100, ttl=5)  # silent for longer than node_ttl
    store.take([silent])
    for _ in range(3):
        dog.round()
    [keepalive] = bus.records
    assert keepalive["node"] == "n2" and keepalive["name"] == KEEPALIVE
    assert keepalive["status"] == "CRITICAL" and keepalive["stale"] is True
    assert keepalive["short"] == f"no result from n2 since {clock(epoch_seconds(silent['date']))}"
    assert store.node("n2").silent


def test_the_keepalive_status_is_the_configured_one(store):
    store.take([result("n1", "c0", ago=100)])
    bus = Bus()
    watchdog(store, bus, node_ttl=60, node_status="WARNING").round()
    assert [r["status"] for r in bus.records] == ["WARNING"]


def test_without_node_ttl_no_node_is_ever_called_silent(store):
    store.take([result("n1", "c0", ago=100, ttl=None)])
    bus = Bus()
    watchdog(store, bus).round()
    assert bus.records == []


def test_a_silent_nodes_next_result_recovers_its_keepalive(store):
    store.take([result("n1", "c0", ago=100, ttl=5), result("n1", "c1", ago=99, ttl=5)])
    bus = Bus()
    dog = watchdog(store, bus, node_ttl=60)
    dog.round()
    assert [r["name"] for r in bus.records] == [KEEPALIVE]
    store.take([result("n1", "c0", ago=0, ttl=5)])
    dog.round()
    recovered = bus.records[1]
    assert recovered["name"] == KEEPALIVE and recovered["status"] == "OK"
    assert recovered["short"] == "n1 reports again"
    assert store.get("n1", KEEPALIVE).status == "OK"
    # c1 still sends nothing: it gets a full ttl from the node's return before it is stale
    dog.round()
    assert len(bus.records) == 2


def test_a_check_that_stops_while_its_node_reports_is_called_stale(store):
    store.take([result("n1", "stuck", ago=30, ttl=5), result("n1", "other", ago=1, ttl=5)])
    bus = Bus()
    watchdog(store, bus, node_ttl=60).round()
    assert [(r["name"], r["status"]) for r in bus.records] == [("stuck", "UNKNOWN")]


def test_a_node_back_gives_its_checks_a_full_ttl_before_any_is_stale(store):
    store.take([result("n1", "c0", ago=100, ttl=30), result("n1", "c1", ago=100, ttl=30)])
    bus = Bus()
    dog = watchdog(store, bus, node_ttl=60)
    dog.round()  # silent
    store.take([result("n1", "c0", ago=0, ttl=30)])  # back, c1 not yet
    dog.round()
    assert [r["status"] for r in bus.named(KEEPALIVE)] == ["CRITICAL", "OK"]
    assert bus.named("c1") == []


def test_forgetting_a_node_or_a_check_stops_their_alerts(store):
    store.take([result("gone", "c0", ago=100, ttl=5), result("n1", "retired", ago=100, ttl=5)])
    store.take([result("n1", "kept", ago=0, ttl=5)])
    assert store.forget("gone") == 1
    assert store.forget("n1", "retired") == 1
    bus = Bus()
    dog = watchdog(store, bus, node_ttl=60)
    dog.round()
    assert bus.records == []


# -- one watchdog at a time ---------------------------------------------------------------------


def test_only_the_lease_holder_acts_and_its_release_lets_another_act_at_once(store, tmp_path):
    other_store = SqliteState(str(tmp_path / "state.db"))
    first_bus, second_bus = Bus(), Bus()
    first = watchdog(store, first_bus)
    second = watchdog(other_store, second_bus)
    assert first.holder != second.holder
    store.take([result("n1", "c0", ago=10, ttl=5)])
    assert first.round().active
    assert not second.round().active
    store.take([result("n2", "c0", ago=10, ttl=5)])
    assert second.round().stale == 0
    first.close()  # a clean stop releases the lease
    assert second.round().stale == 1
    assert [r["node"] for r in first_bus.records] == ["n1"]
    assert [r["node"] for r in second_bus.records] == ["n2"]
    second.close()


def test_a_watchdog_that_cannot_renew_its_lease_stops_acting(store):
    dog = watchdog(store)
    assert dog.round().active
    store.release_lease(LEASE, dog.holder)
    assert store.acquire_lease(LEASE, "someone else", 60)
    assert not dog.round().active


# -- the outbox -------------------------------------------------------------------------------


def test_a_stale_record_taken_but_not_published_is_published_by_the_next_watchdog(store):
    """The state took the stale record and the watchdog died before publishing it."""
    store.take([result("n1", "c0", ago=10, ttl=5)])
    dying = watchdog(store)
    entry = store.get("n1", "c0")
    from accre_monitor.pipeline.state import stale_record

    record = stale_record(entry, "UNKNOWN", time.time())
    assert store.fire_stale(record, entry.record_id, time.time())
    # ...killed here; its lease runs out
    store.release_lease(LEASE, dying.holder)
    bus = Bus()
    watchdog(store, bus).round()
    assert [r["id"] for r in bus.records] == [record["id"]]
    assert store.outbox(10) == []


def test_a_record_stays_owed_until_the_bus_confirms_it(store):
    store.take([result("n1", "c0", ago=10, ttl=5), result("n1", "c1", ago=10, ttl=5)])
    bus = Bus()
    bus.down = True
    dog = watchdog(store, bus)
    assert dog.round().stale == 2
    owed = [r["id"] for r in store.outbox(10)]
    assert len(owed) == 2
    bus.down, bus.confirm = False, 1  # the first confirmed, the second not
    dog.round()
    assert [r["id"] for r in store.outbox(10)] == owed[1:]
    bus.confirm = None
    dog.round()
    assert [r["id"] for r in bus.records] == owed  # each once, oldest first, same ids
    assert store.outbox(10) == []


def test_a_stale_record_taken_again_changes_nothing(store):
    store.take([result("n1", "c0", ago=10, ttl=5)])
    bus = Bus()
    watchdog(store, bus).round()
    before = store.get("n1", "c0")
    [taken] = store.take(bus.records)
    assert not taken.applied and taken.current
    assert store.get("n1", "c0") == before


# -- the in-process bus ------------------------------------------------------------------------


def test_on_the_in_process_bus_the_record_is_spooled_for_every_remote_output_that_wants_it(
    tmp_path,
):
    config = Config(
        data={
            "monitoring": {"outputs": ["stdout", "redis"]},
            "spool": {"path": str(tmp_path / "spool.db")},
            "state": {},
            "outputs": {
                "redis": {"url": "redis://127.0.0.1:1/0"},
                "couch": {"url": "http://127.0.0.1:1/db", "checks": ["disk*"]},
            },
        }
    )
    outlet = SpoolOutlet(config)
    record = {**result("n1", "c0", ago=0), "status": "UNKNOWN", "stale": True}
    assert outlet.publish([record]) == 1
    outlet.close()
    spool = Spool.from_config(config)
    assert sorted(spool.outputs()) == ["redis", "state"]  # couch wants disk checks only
    assert spool.pending("redis") == 1
    [entry] = spool.claim("redis", 10)
    assert entry.record_id == record["id"]  # due at once
    spool.close()


# -- a state store that cannot be used ---------------------------------------------------------


class BrokenStore(SqliteState):
    """A state store that is down until `down` is cleared."""

    down = True

    def acquire_lease(self, name: str, holder: str, seconds: float) -> bool:
        if self.down:
            raise ConnectionError("state store unreachable")
        return super().acquire_lease(name, holder, seconds)


def test_a_state_store_down_is_said_once_and_the_rounds_go_on(tmp_path, capsys):
    store = BrokenStore(str(tmp_path / "state.db"))
    store.take([result("n1", "c0", ago=10, ttl=5)])
    bus = Bus()
    dog = watchdog(store, bus)
    assert [dog.step() for _ in range(3)] == [None, None, None]
    store.down = False
    assert dog.step().stale == 1
    err = capsys.readouterr().err
    assert err.count("watchdog cannot use the cluster state") == 1
    assert "state store unreachable" in err
    assert err.count("watchdog uses the cluster state again") == 1
    store.close()


def test_a_long_backlog_keeps_the_lease_and_stops_when_another_took_it(store):
    """Publishing a long outbox renews the lease batch by batch; a watchdog that lost it
    (it was slower than its lease) leaves the rest to the one that holds it now."""
    from accre_monitor.pipeline import watchdog as module

    store.take([result(f"n{i}", "c0", ago=10, ttl=5) for i in range(5)])
    bus = Bus()
    bus.down = True
    dog = watchdog(store, bus)
    dog.round()  # five owed
    bus.down = False

    class Thief(Bus):
        def publish(self, records):
            store.release_lease(LEASE, dog.holder)
            store.acquire_lease(LEASE, "another", 60)
            return super().publish(records)

    dog.outlet = Thief()
    batch, module.OUTBOX_BATCH = module.OUTBOX_BATCH, 2
    try:
        assert dog.publish_owed() == 2
    finally:
        module.OUTBOX_BATCH = batch
    assert len(store.outbox(10)) == 3


def test_a_watchdog_whose_lease_was_taken_mid_round_fires_nothing_more(tmp_path):
    class Slow(SqliteState):
        """Its first outbox read lasts longer than the lease: another watchdog took over."""

        def outbox(self, limit):
            if not getattr(self, "stolen", False):
                self.stolen = True
                self.release_lease(LEASE, dog.holder)
                self.acquire_lease(LEASE, "another", 60)
            return super().outbox(limit)

    store = Slow(str(tmp_path / "state.db"))
    store.take([result("n1", "c0", ago=100, ttl=5), result("n2", "c0", ago=10, ttl=5)])
    dog = watchdog(store, node_ttl=60)
    outcome = dog.round()
    assert outcome.keepalives == 0 and outcome.stale == 0
    assert dog.outlet.records == []
    store.close()


# -- the last round, for a status page and a scrape ------------------------------------------


def test_each_round_of_the_acting_watchdog_is_noted_in_the_state(store):
    assert last_round(store) is None
    store.take([result("n1", "c0", ago=10, ttl=5)])
    now = time.time()
    moments = iter([now, now + 0.5, now + 60, now + 60.5])
    dog = Watchdog(store, Bus(), settings(), clock=lambda: next(moments))
    dog.round()
    first = last_round(store)
    assert first["holder"] == dog.holder and first["stale"] == 1
    assert first["at"] == now + 0.5 and first["interval"] == 1.0 and first["seconds"] >= 0
    dog.round()
    second = last_round(store)
    assert second["at"] == now + 60.5 and second["stale"] == 0


def test_a_watchdog_standing_by_notes_nothing(store):
    assert store.acquire_lease(LEASE, "another shipper", 60)
    watchdog(store).round()
    assert last_round(store) is None
