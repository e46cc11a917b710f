"""What the status page serves from: one read of the state shared by every request, read
again in the background once old, and the page's compact form of it."""

from __future__ import annotations

import random
import time

import pytest
from served import record
from test_rabbitmq import wait_until

from accre_monitor.config import Config
from accre_monitor.pipeline.overview import entry_json, worst_first
from accre_monitor.pipeline.serve_data import (
    StateUnavailable,
    StateView,
    group_of,
    groups,
    node_order,
    worst_first_key,
)
from accre_monitor.pipeline.state import Entry
from accre_monitor.pipeline.state_store import open_state


@pytest.fixture
def state(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = open_state({"url": url})
    store.take([record("cn1", "load", "OK")])
    config = Config(None, {"state": {"url": url}, "spool": {"path": str(tmp_path / "s.db")}})
    yield store, config
    store.close()


def test_requests_share_one_read_until_it_is_old(state):
    store, config = state
    view = StateView(config, max_age=60)
    first = view.snapshot()
    store.take([record("cn2", "load", "CRITICAL")])
    assert view.snapshot() is first
    assert [e.node for e in first.entries] == ["cn1"]


def test_an_old_snapshot_is_served_while_a_new_one_is_read_in_the_background(state):
    store, config = state
    view = StateView(config, max_age=0.05)
    first = view.snapshot()
    first.state_bytes(gzipped=True)  # a client asked for overview's JSON, gzipped
    store.take([record("cn2", "load", "CRITICAL")])
    newer = wait_until(lambda: (s := view.snapshot()) is not first and s, what="a new read")
    assert [e.node for e in newer.entries] == ["cn1", "cn2"]
    assert newer.built() == ["state", "state.gz"]  # encoded before it was served


def test_after_a_write_the_next_request_reads_afresh(state):
    store, config = state
    view = StateView(config, max_age=60)
    view.snapshot()
    store.take([record("cn2", "load", "CRITICAL")])
    view.invalidate()
    assert [e.node for e in view.snapshot().entries] == ["cn1", "cn2"]


def test_a_state_that_cannot_be_read_is_one_line_naming_it(tmp_path):
    (tmp_path / "state.db").mkdir()  # a file SQLite cannot open
    url = f"sqlite:///{tmp_path / 'state.db'}"
    view = StateView(Config(None, {"state": {"url": url}}), max_age=1)
    with pytest.raises(StateUnavailable) as raised:
        view.snapshot()
    message = str(raised.value)
    assert message.startswith(f"cannot use the state at {url}: ") and "\n" not in message
    with pytest.raises(StateUnavailable):  # said again, without reading again at once
        view.snapshot()


def test_nodes_are_grouped_by_their_name_without_its_number_in_natural_order():
    names = ["gpu10", "login", "cn-a01-2", "gpu2", "cn-a01-10", "gpu001x"]
    ordered = sorted(names, key=node_order)
    assert ordered == ["cn-a01-2", "cn-a01-10", "gpu2", "gpu10", "gpu001x", "login"]
    assert [group_of(n) for n in ordered] == [
        "cn-a01-",
        "cn-a01-",
        "gpu",
        "gpu",
        "gpu001x",
        "login",
    ]
    assert groups(ordered) == [["cn-a01-", 0, 2], ["gpu", 2, 2], ["gpu001x", 4, 1], ["login", 5, 1]]


def test_the_pages_order_of_problems_is_the_overviews():
    rng = random.Random(15)
    now = time.time()
    entries = []
    for n in range(400):
        since = now - rng.choice([10, 10.0004, 60, 3600.5, 7200])  # ties within a millisecond
        entries.append(
            Entry(
                node=f"n{n % 7}",
                check=f"c{n}",
                status=rng.choice(["OK", "WARNING", "CRITICAL", "UNKNOWN"]),
                date=since,
                record_id=str(n),
                since=since,
                stale=rng.random() < 0.3,
            )
        )
    overview = sorted(entries, key=lambda e: worst_first(entry_json(e, [], 0.0, now)))
    page = sorted(entries, key=lambda e: worst_first_key(e, e.stale))
    assert [e.check for e in page] == [e.check for e in overview]
