"""Inline delivery logic (with stand-in outputs; the real stores are in test_outage.py)."""

import time

from accre_monitor.config import Config
from accre_monitor.outputs.base import DELIVERED, REJECTED, RETRY, Outcome, RemoteOutput
from accre_monitor.pipeline.bus import InProcessBus, Subscriber
from accre_monitor.pipeline.delivery import InlineDeliverer, deliver_batch
from accre_monitor.pipeline.filters import min_severity
from accre_monitor.record import build_record


class StandIn(RemoteOutput):
    """A store that answers as told: 'up', 'down', 'hang' or 'reject'."""

    def __init__(self, name="store", mode="up", **settings):
        super().__init__(name, settings)
        self.mode = mode
        self.stored: list[str] = []

    def deliver(self, records, timeout):
        if self.mode == "down":
            raise ConnectionRefusedError("connection refused")
        if self.mode == "hang":
            time.sleep(timeout)
            raise TimeoutError(f"no answer in {timeout} s")
        if self.mode == "reject":
            return [Outcome(REJECTED, "mapper_parsing_exception") for _ in records]
        self.stored += [r["id"] for r in records]
        return [Outcome(DELIVERED) for _ in records]


def config_for(tmp_path, **spool):
    return Config(None, {"spool": {"path": str(tmp_path / "spool.db"), **spool}})


def record(status="OK"):
    return build_record("disk", status, {"used": 1}, node="n1")


def test_a_failing_batch_is_retry_for_every_record():
    outcomes = deliver_batch(StandIn(mode="down"), [record(), record()], 1)
    assert [o.state for o in outcomes] == [RETRY, RETRY]
    assert "connection refused" in outcomes[0].error


def test_a_delivered_record_is_not_spooled(tmp_path):
    store = StandIn()
    deliverer = InlineDeliverer(config_for(tmp_path))
    rec = record()
    deliverer.deliver(rec, [store])
    deliverer.close()
    assert store.stored == [rec["id"]]
    assert not deliverer.spool.exists() or deliverer.spool.pending() == 0


def test_an_undelivered_record_is_spooled_with_the_error(tmp_path, capsys):
    deliverer = InlineDeliverer(config_for(tmp_path))
    rec = record()
    deliverer.deliver(rec, [StandIn("a", mode="down"), StandIn("b", mode="reject")])
    stats = deliverer.spool.stats()
    assert stats["a"]["spooled"] == 1 and stats["b"]["spooled"] == 1
    (entry,) = deliverer.spool.claim("a", 1, due_only=False)
    assert entry.record_id == rec["id"] and "connection refused" in entry.last_error
    assert "delivery failed; record spooled" in capsys.readouterr().err


def test_hanging_stores_share_one_bounded_budget(tmp_path):
    deliverer = InlineDeliverer(config_for(tmp_path, inline_budget=1.0))
    stores = [StandIn(f"s{i}", mode="hang", timeout=0.6) for i in range(4)]
    started = time.monotonic()
    deliverer.deliver(record(), stores)
    assert time.monotonic() - started < 2.0
    assert deliverer.spool.pending() == 4


def test_a_success_drains_older_spooled_records_in_order(tmp_path):
    store = StandIn(mode="down")
    deliverer = InlineDeliverer(config_for(tmp_path))
    old = [record() for _ in range(3)]
    for rec in old:
        deliverer.deliver(rec, [store])
    store.mode = "up"
    new = record()
    deliverer.deliver(new, [store])
    assert store.stored == [new["id"]] + [r["id"] for r in old]
    assert deliverer.spool.pending() == 0


def test_the_drain_after_a_success_is_bounded(tmp_path):
    store = StandIn(mode="down")
    deliverer = InlineDeliverer(config_for(tmp_path, drain_limit=2))
    for _ in range(5):
        deliverer.deliver(record(), [store])
    store.mode = "up"
    deliverer.deliver(record(), [store])
    assert len(store.stored) == 3
    assert deliverer.spool.pending() == 3


def test_filter_stages_decide_which_outputs_get_a_record(tmp_path):
    loud, quiet = StandIn("loud"), StandIn("quiet")
    bus = InProcessBus(
        [Subscriber(loud), Subscriber(quiet, [min_severity("WARNING")])],
        InlineDeliverer(config_for(tmp_path)),
    )
    ok, critical = record("OK"), record("CRITICAL")
    bus.publish(ok)
    bus.publish(critical)
    bus.close()
    assert loud.stored == [ok["id"], critical["id"]]
    assert quiet.stored == [critical["id"]]
