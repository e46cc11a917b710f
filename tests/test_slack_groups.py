"""Grouping Slack messages: many nodes failing one check at once are one message.

The timing rules run on a fake clock (every call is given `now`) against the real SQLite
state in memory, with a stand-in for the post; the integration tests run the real outputs
(the state destination, then Slack) against the Slack stand-in over HTTP.
"""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from accre_monitor.config import Config
from accre_monitor.outcome import DELIVERED, REJECTED, RETRY, Outcome, StoreUnavailable
from accre_monitor.outputs import create_output
from accre_monitor.outputs.notify import EVERY, NEW, RECOVERY, REPEAT
from accre_monitor.outputs.slack_format import Notice
from accre_monitor.outputs.slack_groups import Groups
from accre_monitor.pipeline.state_sqlite import SqliteState
from accre_monitor.record import build_record, iso_now

T0 = 1_800_000_000.0
WAIT, INTERVAL, REPEAT_AFTER = 30.0, 300.0, 14400.0


def notice(node, status="CRITICAL", verdict=NEW, check="ib_link", before=None, at=T0, short=None):
    record = build_record(
        check, status, {}, short or f"IB link {status} on {node}", node=node, date=iso_now(at)
    )
    made = Notice(record)
    made.verdict = verdict
    made.before = before
    return made


def nodes(count, start=1):
    return [f"cn{n:04d}" for n in range(start, start + count)]


class Slack:
    """Stands in for SlackOutput._send: keeps what was posted, answers as told."""

    def __init__(self):
        self.posted: list[dict] = []
        self.answers: list[Outcome] = []
        self.during = None  # called while a post is under way

    def __call__(self, body, deadline):
        import orjson

        if self.during is not None:
            self.during()
        outcome = self.answers.pop(0) if self.answers else Outcome(DELIVERED)
        if outcome.state == DELIVERED:
            self.posted.append(orjson.loads(body))
        return outcome, (outcome if outcome.state == RETRY else None)

    def titles(self):
        return [p["attachments"][0]["title"] for p in self.posted]


@pytest.fixture
def store():
    state = SqliteState(":memory:")
    yield state
    state.close()


def make_groups(store, output="slack-critical", **kw):
    settings = {"wait": WAIT, "interval": INTERVAL, "repeat": REPEAT_AFTER, **kw}
    return Groups(output, open_store=lambda: store, **settings)


@pytest.fixture
def groups(store):
    return make_groups(store)


def flush(groups, slack, at):
    return groups.flush(slack, time.monotonic() + 5, now=at)


def know(store, count, check="ib_link"):
    """The state knows `count` nodes for `check` (all OK)."""
    store.take(
        [build_record(check, "OK", {}, node=n, date=iso_now(T0 - 600)) for n in nodes(count)]
    )


# -- the timing rules -------------------------------------------------------------------------


def test_the_first_message_goes_out_group_wait_after_the_first_member_arrived(groups):
    slack = Slack()
    groups.join([notice("cn0001")], now=T0)
    groups.join([notice("cn0002"), notice("cn0003")], now=T0 + 20)
    assert flush(groups, slack, T0 + WAIT - 0.1) == 0
    assert flush(groups, slack, T0 + WAIT) == 1
    assert slack.titles() == ["ib_link CRITICAL on 3 of 3 nodes"]
    assert flush(groups, slack, T0 + WAIT + 1) == 0


def test_the_message_counts_the_nodes_the_state_knows_and_names_the_first_ten(store, groups):
    know(store, 1200)
    slack = Slack()
    groups.join([notice(n) for n in reversed(nodes(37))], now=T0)
    flush(groups, slack, T0 + WAIT)
    (posted,) = slack.posted
    attachment = posted["attachments"][0]
    assert attachment["title"] == "ib_link CRITICAL on 37 of 1200 nodes"
    assert attachment["color"] == "danger"
    names = ", ".join(nodes(10))
    assert f"*Nodes:* {names} and 27 more" in attachment["text"]
    assert "*cn0001:* IB link CRITICAL on cn0001" in attachment["text"]


def test_while_the_group_changes_updates_go_out_at_most_once_per_group_interval(groups):
    slack = Slack()
    groups.join([notice("cn0001")], now=T0)
    flush(groups, slack, T0 + WAIT)
    groups.join([notice("cn0002")], now=T0 + 40)
    assert flush(groups, slack, T0 + 40) == 0
    assert flush(groups, slack, T0 + WAIT + INTERVAL - 1) == 0
    assert flush(groups, slack, T0 + WAIT + INTERVAL) == 1
    groups.join([notice("cn0003")], now=T0 + 400)
    groups.join([notice("cn0004")], now=T0 + 500)
    assert flush(groups, slack, T0 + WAIT + 2 * INTERVAL - 1) == 0
    assert flush(groups, slack, T0 + WAIT + 2 * INTERVAL) == 1
    assert slack.titles() == [
        "ib_link CRITICAL on 1 of 1 node",
        "ib_link CRITICAL on 2 of 2 nodes (1 new)",
        "ib_link CRITICAL on 4 of 4 nodes (2 new)",
    ]
    assert "*New:* cn0003, cn0004" in slack.posted[2]["attachments"][0]["text"]


def test_an_unchanged_group_is_said_again_after_repeat_interval_and_only_then(groups):
    slack = Slack()
    groups.join([notice("cn0001"), notice("cn0002")], now=T0)
    flush(groups, slack, T0 + WAIT)
    # its members keep failing: the repeats of `renotify` change nothing in the group
    groups.join([notice("cn0001", verdict=REPEAT, at=T0 + 3600)], now=T0 + 3600)
    for moment in (T0 + WAIT + INTERVAL, T0 + 3600, T0 + WAIT + REPEAT_AFTER - 1):
        assert flush(groups, slack, moment) == 0
    assert flush(groups, slack, T0 + WAIT + REPEAT_AFTER) == 1
    assert slack.titles()[1].startswith("ib_link CRITICAL on 2 of 2 nodes (still, since ")


def test_repeat_interval_zero_never_repeats(store):
    groups = make_groups(store, repeat=0.0)
    slack = Slack()
    groups.join([notice("cn0001")], now=T0)
    flush(groups, slack, T0 + WAIT)
    assert flush(groups, slack, T0 + 30 * 86400) == 0
    assert len(slack.posted) == 1


def test_recoveries_are_grouped_and_the_group_ends_when_all_have_recovered(store, groups):
    know(store, 20)
    slack = Slack()
    groups.join([notice(n) for n in nodes(20)], now=T0)
    flush(groups, slack, T0 + WAIT)
    back = T0 + 1000
    groups.join([notice(n, "OK", RECOVERY, before="CRITICAL") for n in nodes(12)], now=back)
    groups.join([notice(n, "OK", RECOVERY, before="CRITICAL") for n in nodes(8, 13)], now=back + 10)
    assert flush(groups, slack, back + WAIT - 1) == 0
    assert flush(groups, slack, back + WAIT) == 1
    assert slack.titles()[1] == "ib_link recovered on 20 of 20 nodes (from CRITICAL)"
    assert slack.posted[1]["attachments"][0]["color"] == "good"
    # nothing fails any more: no repeat, and the groups are gone from the state
    for moment in (back + WAIT + INTERVAL, T0 + WAIT + REPEAT_AFTER, T0 + 2 * REPEAT_AFTER):
        assert flush(groups, slack, moment) == 0
    assert store.doc_keys("") == []
    assert len(slack.posted) == 2


def test_part_of_a_group_recovering_leaves_the_rest_repeating(store, groups):
    know(store, 5)
    slack = Slack()
    groups.join([notice(n) for n in nodes(5)], now=T0)
    flush(groups, slack, T0 + WAIT)
    groups.join([notice("cn0001", "OK", RECOVERY, before="CRITICAL")], now=T0 + 100)
    flush(groups, slack, T0 + 100 + WAIT)
    flush(groups, slack, T0 + WAIT + REPEAT_AFTER)
    assert slack.titles()[1:] == [
        "ib_link recovered on 1 of 5 nodes (from CRITICAL)",
        slack.titles()[2],
    ]
    assert slack.titles()[2].startswith("ib_link CRITICAL on 4 of 5 nodes (still, since ")


def test_a_problem_that_recovers_within_group_wait_says_nothing_at_all(store, groups):
    slack = Slack()
    groups.join([notice("cn0001")], now=T0)
    groups.join([notice("cn0001", "OK", RECOVERY, before="CRITICAL")], now=T0 + 10)
    for moment in (T0 + WAIT, T0 + WAIT + INTERVAL, T0 + REPEAT_AFTER + WAIT):
        assert flush(groups, slack, moment) == 0
    assert slack.posted == [] and store.doc_keys("") == []


def test_a_recovery_of_a_problem_said_under_another_status_is_said(store):
    groups = make_groups(store, output="slack-warning")
    slack = Slack()
    groups.join([notice("cn0001", "CRITICAL")], now=T0)
    flush(groups, slack, T0 + WAIT)
    groups.join([notice("cn0001", "WARNING", NEW, before="CRITICAL")], now=T0 + 5)
    groups.join([notice("cn0001", "OK", RECOVERY, before="WARNING")], now=T0 + 10)
    flush(groups, slack, T0 + 10 + WAIT)
    assert slack.titles() == [
        "ib_link CRITICAL on 1 of 1 node",
        "ib_link recovered on 1 of 1 node (from WARNING)",
    ]


def test_a_recovery_of_a_problem_no_group_knows_is_said(groups):
    slack = Slack()  # (said before grouping was on, say)
    groups.join([notice("cn0001", "OK", RECOVERY, before="CRITICAL")], now=T0)
    flush(groups, slack, T0 + WAIT)
    assert slack.titles() == ["ib_link recovered on 1 of 1 node (from CRITICAL)"]


def test_recoveries_after_a_recovered_message_wait_for_group_interval(store, groups):
    know(store, 3)
    slack = Slack()
    groups.join([notice(n, "OK", RECOVERY, before="CRITICAL") for n in nodes(2)], now=T0)
    flush(groups, slack, T0 + WAIT)
    groups.join([notice("cn0003", "OK", RECOVERY, before="CRITICAL")], now=T0 + WAIT + 1)
    assert flush(groups, slack, T0 + 2 * WAIT + 1) == 0
    assert flush(groups, slack, T0 + WAIT + INTERVAL) == 1
    assert slack.titles()[1] == "ib_link recovered on 1 of 3 nodes (from CRITICAL)"


def test_each_check_and_status_is_a_group_of_its_own(groups):
    slack = Slack()
    groups.join(
        [
            notice("cn0001", "CRITICAL"),
            notice("cn0002", "UNKNOWN"),
            notice("cn0003", "CRITICAL", check="gpfs"),
        ],
        now=T0,
    )
    assert flush(groups, slack, T0 + WAIT) == 3
    assert sorted(slack.titles()) == [
        "gpfs CRITICAL on 1 of 1 node",
        "ib_link CRITICAL on 1 of 1 node",
        "ib_link UNKNOWN on 1 of 1 node",
    ]


def test_every_result_with_notify_every_joins_its_group_once_per_node(groups):
    slack = Slack()
    groups.join([notice(n, "OK", EVERY) for n in nodes(3)], now=T0)
    groups.join([notice("cn0001", "OK", EVERY, at=T0 + 5)], now=T0 + 5)
    flush(groups, slack, T0 + WAIT)
    assert slack.titles() == ["ib_link OK on 3 of 3 nodes"]


# -- posting --------------------------------------------------------------------------------


def test_a_failed_post_keeps_the_group_due(groups):
    slack = Slack()
    slack.answers = [Outcome(RETRY, "HTTP 500")]
    groups.join([notice("cn0001")], now=T0)
    assert flush(groups, slack, T0 + WAIT) == 0
    assert flush(groups, slack, T0 + WAIT + 2) == 1  # after a short backoff
    assert slack.titles() == ["ib_link CRITICAL on 1 of 1 node"]


def test_a_429_keeps_every_due_group_and_no_flush_posts_before_retry_after(groups):
    slack = Slack()
    slack.answers = [Outcome(RETRY, "HTTP 429", retry_after=30)]
    groups.join([notice("cn0001"), notice("cn0002", check="gpfs")], now=T0)
    assert flush(groups, slack, T0 + WAIT) == 0
    assert flush(groups, slack, T0 + WAIT + 29) == 0
    assert flush(groups, slack, T0 + WAIT + 30) == 2


def test_a_message_slack_refuses_is_not_posted_again(groups):
    slack = Slack()
    slack.answers = [Outcome(REJECTED, "HTTP 400 invalid_payload")]
    groups.join([notice("cn0001")], now=T0)
    assert flush(groups, slack, T0 + WAIT) == 0
    assert flush(groups, slack, T0 + WAIT + INTERVAL) == 0


def test_more_groups_due_at_once_than_the_digest_threshold_are_one_digest(store):
    groups = make_groups(store, digest_threshold=2)
    slack = Slack()
    groups.join([notice(n, check=c) for c in ("ib_link", "gpfs", "ntp") for n in nodes(4)], now=T0)
    assert flush(groups, slack, T0 + WAIT) == 1
    attachment = slack.posted[0]["attachments"][0]
    assert attachment["title"] == "3 groups of results: 3 CRITICAL"
    assert "*CRITICAL* gpfs on 4 of 4 nodes: cn0001, cn0002, cn0003, cn0004" in attachment["text"]
    assert flush(groups, slack, T0 + WAIT + INTERVAL) == 0  # every group it held was said


def test_two_shippers_flushing_at_once_post_a_group_once(tmp_path):
    path = str(tmp_path / "state.db")
    stores = [SqliteState(path), SqliteState(path)]
    first, second = (make_groups(s) for s in stores)
    first.join([notice(n) for n in nodes(3)], now=T0)
    slack = Slack()
    slack.during = lambda: flush(second, slack, T0 + WAIT)  # the other one, mid-post
    assert flush(first, slack, T0 + WAIT) == 1
    assert flush(second, slack, T0 + WAIT + 1) == 0
    assert slack.titles() == ["ib_link CRITICAL on 3 of 3 nodes"]
    for store in stores:
        store.close()


def test_a_claim_left_by_a_shipper_killed_mid_post_expires_and_another_posts(tmp_path):
    path = str(tmp_path / "state.db")
    stores = [SqliteState(path), SqliteState(path)]
    first, second = (make_groups(s, claim_seconds=60) for s in stores)
    first.join([notice("cn0001")], now=T0)

    def killed(body, deadline):
        raise KeyboardInterrupt  # dies between the claim and the post's answer

    with pytest.raises(KeyboardInterrupt):
        first.flush(killed, time.monotonic() + 5, now=T0 + WAIT)
    slack = Slack()
    assert flush(second, slack, T0 + WAIT + 59) == 0
    assert flush(second, slack, T0 + WAIT + 60) == 1
    for store in stores:
        store.close()


def test_members_joining_while_a_message_is_posted_wait_for_the_next(groups):
    slack = Slack()
    groups.join([notice("cn0001")], now=T0)
    slack.during = lambda: groups.join([notice("cn0002")], now=T0 + WAIT)
    flush(groups, slack, T0 + WAIT)
    slack.during = None
    assert flush(groups, slack, T0 + WAIT + INTERVAL) == 1
    assert slack.titles() == [
        "ib_link CRITICAL on 1 of 1 node",
        "ib_link CRITICAL on 2 of 2 nodes (1 new)",
    ]


class Broken:
    """A state that cannot be reached (SQLite locked, Redis down)."""

    def close(self):
        pass

    def __getattr__(self, name):
        def fail(*args, **kw):
            raise sqlite3.OperationalError("database is locked")

        return fail


def test_a_state_that_cannot_keep_the_groups_is_the_stores_failure():
    groups = Groups("slack-all", wait=WAIT, interval=INTERVAL, repeat=0, open_store=Broken)
    with pytest.raises(StoreUnavailable, match="database is locked"):
        groups.join([notice("cn0001")], now=T0)
    assert groups.flush(Slack(), time.monotonic() + 5, now=T0 + WAIT) == 0  # logged, not raised


def test_a_record_waits_when_the_state_cannot_keep_its_group():
    output = create_output(
        "slack-all", {"webhook_url": "http://127.0.0.1:9/services/T0/B0/x", "notify": "change"}
    )
    output._groups._open_store = Broken
    try:
        outcomes = output.deliver([rec("cn0001", "OK"), rec("cn0001", "CRITICAL")], 2)
    finally:
        output.close()
    assert [o.state for o in outcomes] == [DELIVERED, RETRY]
    assert "database is locked" in outcomes[1].error


# -- the settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [("group_wait", -1), ("group_interval", 0), ("repeat_interval", 1e300), ("group_wait", "30")],
)
def test_a_grouping_setting_out_of_bounds_is_one_clear_error(key, value):
    from accre_monitor.errors import ConfigError

    settings = {"webhook_url": "https://hooks.slack.com/services/T0/B0/x", key: value}
    with pytest.raises(ConfigError, match=f"^outputs.slack.{key} must be "):
        create_output("slack-all", settings)


# -- the real outputs, over HTTP ------------------------------------------------------------


_CLOCK = [0.0]


def rec(node, status, check="ib_link"):
    """A record dated a millisecond after the one made before it: results of one check on
    one node never share a date, as results a check takes a run apart never do."""
    _CLOCK[0] = max(_CLOCK[0] + 0.001, time.time())
    return build_record(check, status, {}, f"IB link {status}", node=node, date=iso_now(_CLOCK[0]))


class Pipeline:
    """The in-process order: the state takes each record, then Slack gets it."""

    def __init__(self, tmp_path, slack, **settings):
        settings = {
            "webhook_url": slack.url,
            "min_interval": 0,
            "notify": "change",
            "group_wait": 1.0,
            "group_interval": 1.0,
            "repeat_interval": 0,
            **settings,
        }
        self.state = create_output("state", {}, state_dir=str(tmp_path))
        self.slack = create_output("slack-critical", settings, state_dir=str(tmp_path))

    def deliver(self, records):
        assert {o.state for o in self.state.deliver(records, 5)} == {DELIVERED}
        outcomes = self.slack.deliver(records, 5)
        assert {o.state for o in outcomes} == {DELIVERED}

    def flush_until(self, slack, count, timeout=10.0):
        """Flush as the shipper does, until `count` messages arrived."""
        deadline = time.monotonic() + timeout
        while len(slack.delivered()) < count and time.monotonic() < deadline:
            self.slack.flush_due()
            slack.wait_for(count, timeout=0.1)
        return len(slack.delivered())

    def close(self):
        self.slack.close()
        self.state.close()


@pytest.fixture
def pipeline(tmp_path, slack):
    made = []

    def build(**settings):
        made.append(Pipeline(tmp_path, slack, **settings))
        return made[-1]

    yield build
    for each in made:
        each.close()


def titles(slack):
    return [p["attachments"][0]["title"] for p in slack.delivered()]


@pytest.mark.integration
def test_twenty_nodes_failing_one_check_are_one_message_and_their_recovery_one_more(
    pipeline, slack
):
    pytest.importorskip("urllib3")
    run = pipeline()
    run.deliver([rec(n, "OK") for n in nodes(50)])  # the state knows 50 nodes
    failing = nodes(20)
    for part in (failing[:7], failing[7:15], failing[15:]):  # arriving within group_wait
        run.deliver([rec(n, "CRITICAL") for n in part])
    assert slack.delivered() == []  # delivered, and owed by the group
    assert run.flush_until(slack, 1) == 1
    assert titles(slack) == ["ib_link CRITICAL on 20 of 50 nodes"]
    run.deliver([rec(n, "OK") for n in failing])
    assert run.flush_until(slack, 2) == 2
    assert titles(slack)[1] == "ib_link recovered on 20 of 50 nodes (from CRITICAL)"
    # nothing more is owed: flushing past every interval posts nothing
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        assert run.slack.flush_due() == 0
        slack.wait_for(3, timeout=0.2)
    assert len(slack.delivered()) == 2


@pytest.mark.integration
def test_group_wait_zero_posts_one_message_per_record_as_before(pipeline, slack, tmp_path):
    pytest.importorskip("urllib3")
    run = pipeline(group_wait=0, digest_threshold=0)
    run.deliver([rec(n, "OK") for n in nodes(5)])
    run.deliver([rec(n, "CRITICAL") for n in nodes(5)])
    assert titles(slack) == [f"CRITICAL: ib_link on {n}" for n in nodes(5)]
    assert run.slack.flush_due() == 0
    state = SqliteState(str(tmp_path / "state.db"))
    try:
        assert state.doc_keys("slack-groups/") == []  # no group was kept
    finally:
        state.close()


@pytest.mark.integration
def test_a_batch_flushes_the_groups_due_before_it_is_judged(pipeline, slack):
    pytest.importorskip("urllib3")
    run = pipeline(group_wait=0.5)
    run.deliver([rec("cn0001", "CRITICAL")])
    deadline = time.monotonic() + 10
    while not slack.delivered() and time.monotonic() < deadline:
        run.deliver([rec("cn0002", "OK")])  # quiet: only the flush at its start posts
        slack.wait_for(1, timeout=0.1)
    assert titles(slack) == ["ib_link CRITICAL on 1 of 2 nodes"]


# -- the shipper flushes ----------------------------------------------------------------------


class Flushing:
    """An output that only counts its flushes, and in which thread they ran."""

    name = "slack-all"
    timeout = 1.0
    batch_size = 500
    ordered = False

    def __init__(self):
        self.flushes: list[float] = []
        self.threads: set[int] = set()

    def flush_due(self):
        self.flushes.append(time.monotonic())
        self.threads.add(threading.get_ident())
        return 0

    def deliver(self, records, timeout):
        return [Outcome(DELIVERED) for _ in records]

    def close(self):
        pass


def wait_for_flushes(output, count, timeout=10.0):
    deadline = time.monotonic() + timeout
    while len(output.flushes) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return len(output.flushes)


def test_the_spool_drainer_flushes_its_outputs_about_once_a_second(tmp_path):
    from accre_monitor.pipeline.daemon import Stopping
    from accre_monitor.pipeline.spool_drainer import SpoolDrainer

    config = Config(
        None, {"spool": {"path": str(tmp_path / "spool.db")}, "bus": {"batch_wait": 30}}
    )
    output = Flushing()
    stopping = Stopping()
    drainer = SpoolDrainer(config, {"slack-all": output}, stopping)
    thread = threading.Thread(target=drainer.run)
    thread.start()
    try:
        assert wait_for_flushes(output, 3) == 3  # not once per batch_wait (30 s)
    finally:
        stopping.event.set()
        thread.join(timeout=10)
    gaps = [b - a for a, b in zip(output.flushes, output.flushes[1:], strict=False)]
    assert all(0.8 <= gap <= 3.0 for gap in gaps), gaps
    assert output.threads == {thread.ident}


def test_the_queue_consumer_flushes_each_output_in_its_worker_between_batches(tmp_path):
    pytest.importorskip("pika")
    from accre_monitor.pipeline.consumer import RabbitShipper
    from accre_monitor.pipeline.daemon import Stopping

    config = Config(None, {"spool": {"path": str(tmp_path / "spool.db")}})
    output = Flushing()
    shipper = RabbitShipper(config, {"slack-all": output}, Stopping())
    try:
        deadline = time.monotonic() + 10
        while len(output.flushes) < 3 and time.monotonic() < deadline:
            shipper._step(500, 1.0, flush=False)
            time.sleep(0.05)
    finally:
        shipper.pool.shutdown(wait=True)
    assert len(output.flushes) == 3
    gaps = [b - a for a, b in zip(output.flushes, output.flushes[1:], strict=False)]
    assert all(0.8 <= gap <= 3.0 for gap in gaps), gaps
    assert threading.get_ident() not in output.threads  # in the pool, where batches run


@pytest.mark.integration
def test_the_shipper_posts_a_group_when_it_falls_due_with_no_new_record(cli, slack):
    import signal
    import subprocess

    from conftest import console_script

    from accre_monitor.codec import encode
    from accre_monitor.pipeline.spool import Spool, spool_settings

    pytest.importorskip("urllib3")
    spool_path = cli.tmp / "spool.db"
    cli.write_config(
        '[monitoring]\noutputs = ["slack-critical"]\n'
        f'[spool]\npath = "{spool_path}"\ninline = false\n'
        f'[outputs.slack]\nwebhook_url = "{slack.url}"\nmin_interval = 0\nnotify = "change"\n'
        "group_wait = 1\ngroup_interval = 1\nrepeat_interval = 0\n"
    )
    records = [rec(n, "OK") for n in nodes(50)] + [rec(n, "CRITICAL") for n in nodes(20)]
    spool = Spool(spool_settings({"path": str(spool_path)}))
    for output in ("state", "slack-critical"):  # what runs with inline = false leave
        spool.add([(r["id"], output, encode(r)) for r in records], attempts=0)
    spool.close()
    log = open(cli.tmp / "ship.log", "wb")  # noqa: SIM115 - closed below
    shipper = subprocess.Popen(
        [console_script("accre-pipeline"), "ship"], stderr=log, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, env=cli.env,
    )  # fmt: skip
    try:
        assert slack.wait_for(1, timeout=30), (cli.tmp / "ship.log").read_text()
    finally:
        shipper.send_signal(signal.SIGTERM)
        assert shipper.wait(timeout=40) == 0
        log.close()
    assert titles(slack) == ["ib_link CRITICAL on 20 of 50 nodes"]


def test_results_that_arrived_late_are_marked_late_in_the_message_that_first_tells_them(groups):
    slack = Slack()
    groups.join([notice("cn0001", at=T0 - 1800), notice("cn0002", at=T0)], now=T0)
    flush(groups, slack, T0 + WAIT)
    flush(groups, slack, T0 + WAIT + REPEAT_AFTER)
    first, repeat = (p["attachments"][0]["text"] for p in slack.posted)
    assert first.startswith(":hourglass: *Late:* 1 of these results taken ")
    assert "30 min before they arrived" in first
    assert "Late" not in repeat
