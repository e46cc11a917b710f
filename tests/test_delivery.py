"""Inline delivery logic (with stand-in outputs; the real stores are in test_outage.py)."""

import os
import time

from accre_monitor.config import Config
from accre_monitor.errors import ConfigError
from accre_monitor.outcome import DELIVERED, REJECTED, RETRY, Outcome
from accre_monitor.outputs.base import RemoteOutput
from accre_monitor.pipeline.bus import Destination, InProcessBus
from accre_monitor.pipeline.delivery import InlineDeliverer, SpoolingDeliverer, deliver_batch
from accre_monitor.pipeline.filters import MinSeverity
from accre_monitor.record import build_record


class StandIn(RemoteOutput):
    """A store that answers as told: 'up', 'down', 'hang' or 'reject'."""

    def __init__(self, name="store", mode="up", delay=0.0, **settings):
        super().__init__(name, settings)
        self.mode = mode
        self.delay = delay
        self.stored: list[str] = []

    def deliver(self, records, timeout):
        if self.delay:
            time.sleep(min(self.delay, timeout))
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


def to(*outputs, stages=None):
    """Destinations for stand-in outputs (already built)."""
    return [Destination(o.name, stages, synchronous=False, output=o) for o in outputs]


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
    deliverer.deliver(rec, to(store))
    deliverer.close()
    assert store.stored == [rec["id"]]
    assert not deliverer.spool.exists() or deliverer.spool.pending() == 0


def test_an_undelivered_record_is_spooled_with_the_error(tmp_path, capsys):
    deliverer = InlineDeliverer(config_for(tmp_path))
    rec = record()
    deliverer.deliver(rec, to(StandIn("a", mode="down"), StandIn("b", mode="reject")))
    stats = deliverer.spool.stats()
    assert stats["a"]["spooled"] == 1 and stats["b"]["spooled"] == 1
    (entry,) = deliverer.spool.claim("a", 1, due_only=False)
    assert entry.record_id == rec["id"] and "connection refused" in entry.last_error
    assert "delivery failed; record spooled" in capsys.readouterr().err


def test_hanging_stores_share_one_bounded_budget(tmp_path):
    deliverer = InlineDeliverer(config_for(tmp_path, inline_budget=1.0))
    stores = [StandIn(f"s{i}", mode="hang", timeout=0.6) for i in range(4)]
    started = time.monotonic()
    deliverer.deliver(record(), to(*stores))
    assert time.monotonic() - started < 2.0
    assert deliverer.spool.pending() == 4


def test_a_success_drains_older_spooled_records_in_order(tmp_path):
    store = StandIn(mode="down")
    deliverer = InlineDeliverer(config_for(tmp_path))
    old = [record() for _ in range(3)]
    for rec in old:
        deliverer.deliver(rec, to(store))
    store.mode = "up"
    new = record()
    deliverer.deliver(new, to(store))
    assert store.stored == [new["id"]] + [r["id"] for r in old]
    assert deliverer.spool.pending() == 0


def test_the_drain_after_a_success_is_bounded(tmp_path):
    store = StandIn(mode="down")
    deliverer = InlineDeliverer(config_for(tmp_path, drain_limit=2))
    for _ in range(5):
        deliverer.deliver(record(), to(store))
    store.mode = "up"
    deliverer.deliver(record(), to(store))
    assert len(store.stored) == 3
    assert deliverer.spool.pending() == 3


def test_filter_stages_decide_which_outputs_get_a_record(tmp_path):
    loud, quiet = StandIn("loud"), StandIn("quiet")
    bus = InProcessBus(
        [*to(loud), *to(quiet, stages=[MinSeverity("WARNING")])],
        InlineDeliverer(config_for(tmp_path)),
    )
    ok, critical = record("OK"), record("CRITICAL")
    bus.publish(ok)
    bus.publish(critical)
    bus.close()
    assert loud.stored == [ok["id"], critical["id"]]
    assert quiet.stored == [critical["id"]]


def test_healing_one_store_never_starves_the_next_of_the_fresh_record(tmp_path):
    slow = StandIn("slow", mode="down", delay=0.2, batch_size=1)
    second = StandIn("second")
    deliverer = InlineDeliverer(config_for(tmp_path, inline_budget=1.0))
    for _ in range(10):  # a backlog that would take the slow store 2 s to drain
        deliverer.deliver(record(), to(slow))
    slow.mode = "up"
    fresh = record()
    deliverer.deliver(fresh, to(slow, second))
    assert fresh["id"] in slow.stored
    assert second.stored == [fresh["id"]]
    assert deliverer.spool.stats().get("second") is None


def test_an_output_that_cannot_be_built_keeps_its_records_and_spares_the_rest(tmp_path, capsys):
    def broken():
        raise ConfigError("outputs.redis.url is not a usable Redis URL")

    good = StandIn("couch")
    config = config_for(tmp_path)
    deliverer = InlineDeliverer(config)
    rec = record()
    deliverer.deliver(rec, [Destination("redis", synchronous=False, factory=broken), *to(good)])
    assert good.stored == [rec["id"]]
    (entry,) = deliverer.spool.claim("redis", 5, due_only=False)
    assert entry.record_id == rec["id"] and "outputs.redis.url" in entry.last_error
    assert config.problems == [
        "outputs.redis.url is not a usable Redis URL; records for it are kept in the spool"
    ]
    assert capsys.readouterr().err.count("outputs.redis.url") == 1  # said once


def test_a_failed_spool_write_is_logged_once_as_a_loss(tmp_path, capsys):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    config = Config(None, {"spool": {"path": str(blocker / "spool.db")}})
    deliverer = InlineDeliverer(config)
    deliverer.deliver(record(), to(StandIn(mode="down")))
    err = capsys.readouterr().err
    assert "record lost" in err
    assert "spooled for later" not in err


def test_without_inline_delivery_the_record_is_only_spooled_due_at_once(tmp_path):
    built = []

    def factory():
        built.append(True)
        return StandIn()

    deliverer = SpoolingDeliverer(config_for(tmp_path, inline=False))
    rec = record()
    deliverer.deliver(rec, [Destination("store", synchronous=False, factory=factory)])
    (entry,) = deliverer.spool.claim("store", 5, due_only=True)
    assert entry.record_id == rec["id"] and entry.attempts == 0
    assert built == []
    assert os.path.exists(deliverer.spool.path)


def test_an_ordered_output_gets_a_fresh_record_only_after_its_backlog(tmp_path):
    store = StandIn(mode="down")
    store.ordered = True
    deliverer = InlineDeliverer(config_for(tmp_path))
    old = [record() for _ in range(3)]
    for rec in old:
        deliverer.deliver(rec, to(store))
    store.mode = "up"
    fresh = record()
    deliverer.deliver(fresh, to(store))
    assert store.stored == [r["id"] for r in old] + [fresh["id"]]
    assert deliverer.spool.pending() == 0


def test_a_fresh_record_that_expires_is_counted_not_spooled(tmp_path, capsys):
    from accre_monitor.outcome import EXPIRED

    class Expiring(StandIn):
        def deliver(self, records, timeout):
            return [Outcome(EXPIRED, "older than max_age") for _ in records]

    deliverer = InlineDeliverer(config_for(tmp_path))
    deliverer.deliver(record(), to(Expiring("nsca")))
    stats = deliverer.spool.stats()["nsca"]
    assert (stats["spooled"], stats["expired"]) == (0, 1)
    err = capsys.readouterr().err
    assert "expired before delivery" in err and "spooled for later" not in err
