"""The one delivery policy, unit by unit: ordered claims, classification, the door, the retry
policy, at most once for ordered outputs (the real servers are in the integration tests)."""

import json
import threading
import time

import pytest

from accre_monitor.outcome import (
    DELIVERED,
    POISON,
    REJECTED,
    RETRY,
    Outcome,
    StoreUnavailable,
    is_store_failure,
)
from accre_monitor.outputs.remote import RemoteOutput
from accre_monitor.pipeline.delivery import deliver_batch, drain
from accre_monitor.pipeline.door import admit
from accre_monitor.pipeline.retry import RetryPolicy
from accre_monitor.pipeline.spool import Spool, spool_settings
from accre_monitor.record import build_record, iso_now


def make_spool(tmp_path, **settings):
    return Spool(spool_settings({"path": str(tmp_path / "spool.db"), **settings}))


def rec(seq, node="n1", name="disk", status="OK", taken=None):
    record = build_record(name, status, {"seq": seq}, node=node)
    if taken is not None:
        record["date"] = iso_now(taken)
    return record


def body(record):
    return json.dumps(record).encode()


def add(spool, records, output="nagios-nsca", **kw):
    spool.add([(r["id"], output, body(r)) for r in records], **kw)


def seqs(entries):
    return [json.loads(e.body)["data"]["seq"] for e in entries]


class Ordered(RemoteOutput):
    """A store that keeps what it got, in order; answers as its script says."""

    ordered = True
    newest_only = True  # as NSCA: one current state per node and check

    def __init__(self, name="nagios-nsca", **settings):
        super().__init__(name, settings)
        self.got: list[int] = []
        self.script: list = []  # per call: "down", or a function record -> Outcome

    def write_batch(self, items, timeout):
        step = self.script.pop(0) if self.script else None
        if step == "down":
            raise StoreUnavailable("connection refused")
        outcomes = []
        for record in items:
            outcome = step(record) if step else Outcome(DELIVERED)
            if outcome.state == DELIVERED:
                self.got.append(record["data"]["seq"])
            outcomes.append(outcome)
        return outcomes


# -- ordered claims -------------------------------------------------------------------------


def test_an_ordered_claim_takes_nothing_while_the_head_of_the_backlog_is_not_due(tmp_path):
    spool = make_spool(tmp_path)
    add(spool, [rec(1)], attempts=3)  # backing off
    add(spool, [rec(2), rec(3)], attempts=0)  # due now, behind it
    assert spool.claim("nagios-nsca", 10, ordered=True) == []
    assert seqs(spool.claim("nagios-nsca", 10)) == [2, 3]  # an unordered claim skips ahead


def test_an_ordered_claim_stops_at_the_first_entry_that_is_not_due(tmp_path):
    spool = make_spool(tmp_path)
    add(spool, [rec(1), rec(2)], attempts=0)
    add(spool, [rec(3)], attempts=3)
    add(spool, [rec(4)], attempts=0)
    assert seqs(spool.claim("nagios-nsca", 10, ordered=True)) == [1, 2]


def test_an_ordered_claim_waits_while_the_head_is_in_flight_elsewhere(tmp_path):
    spool = make_spool(tmp_path)
    add(spool, [rec(n) for n in range(1, 5)], attempts=0)
    first = spool.claim("nagios-nsca", 2, ordered=True)
    assert seqs(first) == [1, 2]
    assert make_spool(tmp_path).claim("nagios-nsca", 10, ordered=True) == []


def test_an_ordered_claim_of_anything_due_or_not_still_honours_a_retry_after(tmp_path):
    spool = make_spool(tmp_path)
    add(spool, [rec(1)], attempts=1, not_before=60)
    add(spool, [rec(2)], attempts=0)
    assert spool.claim("nagios-nsca", 10, due_only=False, ordered=True) == []
    assert seqs(spool.claim("nagios-nsca", 10, due_only=False)) == [2]


def test_a_batch_retried_together_keeps_its_order_of_due_times(tmp_path):
    spool = make_spool(tmp_path, backoff_base=10.0, backoff_max=100.0)
    add(spool, [rec(n) for n in range(1, 21)], attempts=0)
    claimed = spool.claim("nagios-nsca", 20, ordered=True)
    spool.settle([(entry, RETRY, "down") for entry in claimed])
    due = [row[0] for row in spool.db.execute("SELECT next_attempt FROM queue ORDER BY seq")]
    assert due == sorted(due) and len(set(due)) == 1


# -- drain: order, the store back, poison ---------------------------------------------------


def test_a_drain_delivers_the_backlog_oldest_first_whatever_the_attempts(tmp_path):
    spool = make_spool(tmp_path, backoff_base=0.01, backoff_max=0.01)
    for n in range(1, 7):  # older entries collected more attempts, as runs retried them
        add(spool, [rec(n)], attempts=7 - n)
    store = Ordered()
    deadline = time.monotonic() + 10
    while spool.pending() and time.monotonic() < deadline:
        for _ in drain(spool, store, 100, time.monotonic() + 5, due_only=True, batch_size=2):
            pass
    assert store.got == [1, 2, 3, 4, 5, 6]


def test_once_a_batch_was_delivered_the_rest_of_the_backlog_follows_at_once(tmp_path):
    spool = make_spool(tmp_path, backoff_base=600.0, backoff_max=600.0)
    add(spool, [rec(1)], attempts=0)
    add(spool, [rec(n) for n in range(2, 7)], attempts=1)  # each waiting out a long backoff
    store = Ordered()
    for _ in drain(spool, store, 100, time.monotonic() + 5, due_only=True, batch_size=1):
        pass
    assert store.got == [1, 2, 3, 4, 5, 6]


def test_a_retry_after_holds_the_whole_ordered_backlog_behind_its_head(tmp_path):
    spool = make_spool(tmp_path)
    add(spool, [rec(n) for n in range(1, 4)], output="slack-all", attempts=0)
    store = Ordered("slack-all")
    store.script = [lambda r: Outcome(RETRY, "429", 30.0)]
    for _ in drain(spool, store, 100, time.monotonic() + 5, due_only=False, batch_size=1):
        pass
    assert store.got == []
    for _ in drain(spool, store, 100, time.monotonic() + 5, due_only=False, batch_size=1):
        pass
    assert store.got == []  # 2 and 3 wait behind the held head, never ahead of it


def test_a_poison_entry_is_a_dead_letter_at_once_and_the_rest_flows(tmp_path):
    spool = make_spool(tmp_path, max_attempts=5)
    good = rec(2)
    no_node = rec(3)
    del no_node["node"]
    spool.add(
        [
            ("bad-json", "nagios-nsca", b"{not json"),
            (good["id"], "nagios-nsca", body(good)),
            (no_node["id"], "nagios-nsca", body(no_node)),
        ],
        attempts=0,
    )
    store = Ordered()
    for _ in drain(spool, store, 100, time.monotonic() + 5, due_only=True):
        pass
    assert store.got == [2]
    reasons = {d["record_id"]: d["reason"] for d in spool.dead_letters()}
    assert "not JSON" in reasons["bad-json"]
    assert "no 'node' field" in reasons[no_node["id"]]
    assert spool.pending() == 0


def test_a_record_that_breaks_its_rendering_is_refused_alone(tmp_path):
    class Fussy(Ordered):
        def prepare(self, record):
            return record["short"].upper() and record  # AttributeError for a number

    spool = make_spool(tmp_path)
    records = [rec(1), rec(2), rec(3)]
    for r in records:
        r["short"] = "fine"
    records[1]["short"] = 5
    add(spool, records, attempts=0)
    store = Fussy()
    for _ in drain(spool, store, 100, time.monotonic() + 5, due_only=True):
        pass
    assert store.got == [1, 3]
    (dead,) = spool.dead_letters()
    assert dead["record_id"] == records[1]["id"] and "AttributeError" in dead["reason"]


# -- classification ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc, store",
    [
        (StoreUnavailable("down"), True),
        (ConnectionRefusedError("refused"), True),
        (TimeoutError("slow"), True),
        (ImportError("no module named redis"), True),
        (AttributeError("'int' object has no attribute 'replace'"), False),
        (ValueError("year 0 is out of range"), False),
    ],
)
def test_one_rule_tells_a_stores_failure_from_a_records(exc, store):
    assert is_store_failure(exc) is store


def test_an_unexpected_exception_in_a_batch_refuses_only_the_record_that_raises_it():
    class Bug(RemoteOutput):
        def __init__(self):
            super().__init__("store", {})
            self.stored = []

        def write_batch(self, items, timeout):
            if any(item["data"]["seq"] == 2 for item in items):
                raise KeyError("boom")
            self.stored += [item["data"]["seq"] for item in items]
            return [Outcome(DELIVERED) for _ in items]

    store = Bug()
    outcomes = store.deliver([rec(1), rec(2), rec(3)], 5)
    assert [o.state for o in outcomes] == [DELIVERED, REJECTED, DELIVERED]
    assert store.stored == [1, 3]


def test_an_output_that_raises_a_bug_for_one_record_does_not_hold_the_others():
    class Raises:
        name, timeout, batch_size = "x", 1.0, 10

        def deliver(self, records, timeout):
            if any(r["data"]["seq"] == 2 for r in records):
                raise RuntimeError("a bug")
            return [Outcome(DELIVERED) for _ in records]

    outcomes = deliver_batch(Raises(), [rec(1), rec(2), rec(3)], 5)
    assert [o.state for o in outcomes] == [DELIVERED, REJECTED, DELIVERED]
    assert "RuntimeError: a bug" in outcomes[1].error


# -- the door ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload, why",
    [
        (b"{nope", "not JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"id": "x", "node": "n", "date": "d", "name": "c"}', "no 'status' field"),
        (b'{"id": "x", "node": "", "date": "d", "name": "c", "status": "OK"}', "'node'"),
        (b'{"id": "x", "node": "n", "date": "d", "name": "c", "status": "FINE"}', "FINE"),
    ],
)
def test_the_door_turns_away_what_is_not_a_result_record(payload, why):
    record, problem = admit(payload)
    assert record is None and why in problem


def test_the_door_lets_a_result_record_in():
    record = rec(1)
    assert admit(body(record)) == (record, None)


# -- the retry policy ----------------------------------------------------------------------


def test_a_rejected_record_is_a_dead_letter_at_its_first_rejection_by_default(tmp_path):
    policy = make_spool(tmp_path).policy
    assert policy.gives_up(REJECTED, 1)
    assert not policy.gives_up(RETRY, 10_000)  # a store's failure is never given up on
    assert policy.gives_up(POISON, 1)


def test_the_broker_delays_are_the_spool_backoff_steps_without_jitter():
    policy = RetryPolicy(0.5, 5.0, 1)
    assert policy.delays() == [0.5, 1.0, 2.0, 4.0, 5.0]
    assert policy.delay_for(1) == 0.5
    assert policy.delay_for(3) == 2.0
    assert policy.delay_for(40) == 5.0
    assert policy.delay_for(1, retry_after=1.5) == 2.0  # a Retry-After is never cut short
    assert policy.delay_for(1, retry_after=60) == 5.0


def test_the_spool_backoff_and_the_broker_delays_follow_the_same_steps():
    policy = RetryPolicy(10.0, 100.0, 1)
    for attempts in range(1, 8):
        step = policy.step(attempts)
        assert policy.backoff(attempts, jitter=0.5) == step
        assert policy.delay_for(attempts) == step


def test_a_held_batch_is_probed_again_within_seconds_and_never_faster_than_retry_after():
    policy = RetryPolicy(600.0, 900.0, 1)
    assert all(0.25 <= policy.probe(1) <= 0.5 for _ in range(20))
    assert all(15 <= policy.probe(50) <= 30 for _ in range(20))
    assert policy.probe(1, retry_after=7) == 7


# -- at most once, in order -------------------------------------------------------------------


def test_a_record_delivered_once_is_skipped_when_it_comes_again_and_counted(tmp_path):
    spool = make_spool(tmp_path)
    first, second = rec(1, taken=1000), rec(2, taken=1060)
    assert spool.only_newer("nagios-nsca", [first]) == [True]
    spool.delivered("nagios-nsca", [first])
    assert spool.only_newer("nagios-nsca", [first, second, second]) == [False, True, False]
    spool.delivered("nagios-nsca", [second])
    older = rec(0, taken=940)
    assert spool.only_newer("nagios-nsca", [older]) == [False]  # would put Nagios back in time
    other = rec(3, node="n2", taken=900)
    assert spool.only_newer("nagios-nsca", [other]) == [True]  # another node, its own line
    assert spool.only_newer("slack-all", [first]) == [True]  # each output its own memory
    assert spool.stats()["nagios-nsca"]["duplicates"] == 3


def test_an_ordered_output_that_keeps_every_record_gets_an_older_one_too(tmp_path):
    class Forwarder(Ordered):
        newest_only = False  # as the broker's forwarder: the stores behind it keep history

    spool = make_spool(tmp_path)
    newer, older = rec(2, taken=2000), rec(1, taken=1000)
    add(spool, [newer], output="broker", attempts=0)
    add(spool, [older], output="broker", attempts=0)
    store = Forwarder("broker")
    for _ in drain(spool, store, 100, time.monotonic() + 5):
        pass
    assert store.got == [2, 1]


def test_a_redelivery_a_store_recognises_is_counted_as_a_duplicate(tmp_path):
    class Remembers(Ordered):
        newest_only = False

        def write_batch(self, items, timeout):
            return [Outcome(DELIVERED, duplicate=i["data"]["seq"] == 1) for i in items]

    spool = make_spool(tmp_path)
    add(spool, [rec(1), rec(2)], output="redis", attempts=0)
    for _ in drain(spool, Remembers("redis"), 100, time.monotonic() + 5):
        pass
    assert spool.stats()["redis"]["duplicates"] == 1


def test_a_drain_of_an_ordered_output_never_sends_the_same_record_twice(tmp_path):
    spool = make_spool(tmp_path)
    record = rec(1)
    add(spool, [record], attempts=0)
    store = Ordered()
    for _ in drain(spool, store, 100, time.monotonic() + 5):
        pass
    add(spool, [record], attempts=0)  # the same record again (owed once more by another path)
    for _ in drain(spool, store, 100, time.monotonic() + 5):
        pass
    assert store.got == [1]
    assert spool.pending() == 0


# -- the cluster state, where Slack remembers what it said, from worker threads -------------


def test_the_cluster_state_serves_every_thread_of_a_shipper(tmp_path):
    from accre_monitor.pipeline.state_sqlite import SqliteState
    from accre_monitor.record import build_record

    state = SqliteState(str(tmp_path / "state.db"))
    first = build_record("disk", "OK", {}, node="n1", date="2026-01-01T00:00:00+00:00")
    second = build_record("disk", "CRITICAL", {}, node="n1", date="2026-01-01T00:01:00+00:00")
    state.take([first])
    errors = []

    def use() -> None:
        try:
            state.take([second])
            note = {"node": "n1", "check": "disk", "status": "CRITICAL", "date": 1.0}
            state.mark_notified("slack-all", [{**note, "id": second["id"]}])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    worker = threading.Thread(target=use)
    worker.start()
    worker.join()
    assert errors == []
    entry = state.entries()[0]
    assert entry.status == "CRITICAL" and entry.notified["slack-all"]["id"] == second["id"]
    state.close()
