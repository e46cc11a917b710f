"""The Slack output against a webhook over real HTTP on loopback (tests/slack_server.py)."""

from __future__ import annotations

import itertools
import time

import pytest
from slack_server import (
    INVALID_PAYLOAD,
    INVALID_TOKEN,
    OK_REPLY,
    RATE_LIMITED,
    SERVER_ERROR,
    Reply,
)

from accre_monitor.config import Config
from accre_monitor.errors import ConfigError
from accre_monitor.outcome import DELIVERED, REJECTED, RETRY, StoreUnavailable
from accre_monitor.outputs import create_output
from accre_monitor.pipeline.filters import MinSeverity, binding_keys
from accre_monitor.pipeline.wiring import filter_stages
from accre_monitor.record import build_record, iso_now

pytest.importorskip("urllib3")

pytestmark = pytest.mark.integration


@pytest.fixture
def make(slack):
    made = []

    def build(name="slack-all", **settings):
        settings = {"webhook_url": slack.url, "min_interval": 0, "group_wait": 0, **settings}
        output = create_output(name, settings, state_dir=settings.pop("state_dir", None))
        made.append(output)
        return output

    yield build
    for output in made:
        output.close()


T0 = time.time() - 3600


def rec(status="WARNING", name="disk_usage", node="cn0001", at=None, **extra):
    date = iso_now(at) if at is not None else None
    record = build_record(name, status, {"/": 91}, f"DISK {status}", node=node, date=date)
    record.update(extra)
    return record


def states(outcomes):
    return [o.state for o in outcomes]


def titles(slack):
    return [p["attachments"][0]["title"] for p in slack.delivered()]


# -- settings ------------------------------------------------------------------------------


def test_a_missing_webhook_url_is_a_config_error_naming_where_to_set_it():
    with pytest.raises(ConfigError, match="outputs.slack.webhook_url is not set.*"
                       "ACCRE_MONITOR_SLACK_WEBHOOK_URL"):  # fmt: skip
        create_output("slack-warning", {})


def test_the_webhook_url_may_come_from_the_environment(slack, monkeypatch):
    monkeypatch.setenv("ACCRE_MONITOR_SLACK_WEBHOOK_URL", slack.url)
    output = create_output("slack-critical", {"group_wait": 0})
    try:
        assert states(output.deliver([rec("CRITICAL")], 5)) == [DELIVERED]
    finally:
        output.close()
    assert len(slack.delivered()) == 1


@pytest.mark.parametrize(
    "key, value",
    [
        ("webhook_url", "ftp://hooks.example/services/SECRETSECRETSECRET"),
        ("webhook_url", "http://[bad/SECRETSECRETSECRET"),
        ("channel", 5),
        ("notify", "sometimes"),
        ("renotify", -1),
        ("digest_threshold", 2.5),
        ("min_interval", "fast"),
        ("late_after", 0),
        ("timeout", 0),
        ("proxy", "socks://proxy:1080"),
        ("min_severity", "LOUD"),
        ("min_occurrences", 0),
        ("min_occurrences", "3"),
    ],
)
def test_every_setting_is_checked_when_built(slack, key, value):
    settings = {"webhook_url": slack.url, "notify": "change", key: value}
    with pytest.raises(ConfigError, match=f"outputs.slack.{key} ") as caught:
        create_output("slack-warning", settings)
    assert "SECRETSECRETSECRET" not in str(caught.value)


def test_the_output_never_shows_its_webhook(make, slack):
    output = make()
    assert slack.token not in repr(output)
    assert slack.token not in str(output.settings)
    assert output.safe_url == f"http://127.0.0.1:{slack.port}/***"


# -- Slack's answers -----------------------------------------------------------------------


def test_a_result_is_posted_as_one_message(make, slack):
    assert states(make().deliver([rec("CRITICAL")], 5)) == [DELIVERED]
    assert titles(slack) == ["CRITICAL: disk_usage on cn0001"]
    assert slack.requests[0].headers["Content-Type"].startswith("application/json")


def test_a_429_is_retried_no_sooner_than_slack_asked_and_nothing_more_is_sent(make, slack):
    slack.script(Reply(429, "rate_limited", retry_after=30))
    output = make()
    outcomes = output.deliver([rec(node="cn1"), rec(node="cn2"), rec(node="cn3")], 5)
    assert states(outcomes) == [RETRY] * 3
    assert {o.retry_after for o in outcomes} == {30.0}
    assert "429" in outcomes[0].error
    assert len(slack.requests) == 1
    # the same process keeps away from Slack meanwhile, without a request
    later = output.deliver([rec(node="cn4")], 1)
    assert states(later) == [RETRY] and later[0].retry_after > 25
    assert len(slack.requests) == 1


def test_a_server_error_is_retried_and_the_rest_of_the_batch_waits(make, slack):
    slack.script(SERVER_ERROR)
    outcomes = make().deliver([rec(node="cn1"), rec(node="cn2")], 5)
    assert states(outcomes) == [RETRY, RETRY]
    assert "HTTP 500 rollup_error" in outcomes[0].error
    assert len(slack.requests) == 1


def test_a_refused_payload_is_rejected_with_slacks_answer_and_spares_the_rest(make, slack):
    slack.script(INVALID_PAYLOAD, OK_REPLY)
    outcomes = make().deliver([rec(node="cn1"), rec(node="cn2")], 5)
    assert states(outcomes) == [REJECTED, DELIVERED]
    assert "HTTP 400 invalid_payload" in outcomes[0].error
    assert slack.token not in outcomes[0].error


@pytest.mark.parametrize("reply", [INVALID_TOKEN, Reply(404, "no_service")])
def test_a_refused_webhook_holds_the_whole_batch_for_a_retry_after_one_request(make, slack, reply):
    # the webhook revoked is not the records' fault: they wait for it to be fixed
    slack.always(reply)
    outcomes = make().deliver([rec(node=f"cn{n}") for n in range(4)], 5)
    assert states(outcomes) == [RETRY] * 4
    assert all(reply.body in o.error for o in outcomes)
    assert len(slack.requests) == 1


def test_an_unreachable_slack_is_retried_without_naming_the_webhook(make, slack):
    output = make()
    slack.stop()
    outcomes = output.deliver([rec()], 2)
    assert states(outcomes) == [RETRY]
    assert "Connection refused" in outcomes[0].error or "refused" in outcomes[0].error.lower()
    assert slack.token not in outcomes[0].error and "/services/" not in outcomes[0].error


def test_an_answer_naming_the_webhook_is_scrubbed_of_it(make, slack):
    slack.always(Reply(502, "<html>proxy: cannot reach {target}</html>"))
    webhook = "http://hooks.slack.invalid" + slack.path
    output = make(webhook_url=webhook, proxy=f"http://127.0.0.1:{slack.port}")
    outcomes = output.deliver([rec()], 2)
    assert states(outcomes) == [RETRY]
    assert "cannot reach http://hooks.slack.invalid/***" in outcomes[0].error
    assert slack.token not in outcomes[0].error and "/services/" not in outcomes[0].error


def test_a_hanging_slack_is_retried_within_the_deadline(make, slack):
    slack.hang(True)
    try:
        started = time.monotonic()
        outcomes = make().deliver([rec(), rec(node="cn2")], 1.0)
        elapsed = time.monotonic() - started
    finally:
        slack.hang(False)
    assert states(outcomes) == [RETRY, RETRY]
    assert elapsed < 2.5
    assert "timed out" in outcomes[0].error.lower()
    assert slack.token not in outcomes[0].error


# -- pace and deadline ---------------------------------------------------------------------


def test_messages_are_paced_at_min_interval(make, slack):
    outcomes = make(min_interval=0.3).deliver([rec(node=f"cn{n}") for n in range(3)], 5)
    assert states(outcomes) == [DELIVERED] * 3
    times = [r.at for r in slack.requests]
    assert all(later - earlier >= 0.28 for earlier, later in itertools.pairwise(times))


def test_what_the_pace_cannot_fit_before_the_deadline_is_retried(make, slack):
    started = time.monotonic()
    outcomes = make(min_interval=1.0).deliver([rec(node=f"cn{n}") for n in range(4)], 1.5)
    assert time.monotonic() - started < 2.5
    assert states(outcomes) == [DELIVERED, DELIVERED, RETRY, RETRY]
    assert "one message per 1 s" in outcomes[2].error
    assert len(slack.requests) == 2


# -- digests and redelivery ----------------------------------------------------------------


def test_more_messages_than_the_threshold_become_one_digest(make, slack):
    records = [rec(["WARNING", "CRITICAL"][n % 2], node=f"cn{n}") for n in range(6)]
    assert states(make(digest_threshold=5).deliver(records, 5)) == [DELIVERED] * 6
    assert titles(slack) == ["6 results from 6 nodes: 3 CRITICAL, 3 WARNING"]


def test_up_to_the_threshold_each_result_is_its_own_message(make, slack):
    records = [rec(node=f"cn{n}") for n in range(5)]
    assert states(make(digest_threshold=5).deliver(records, 5)) == [DELIVERED] * 5
    assert len(slack.delivered()) == 5


def test_digest_threshold_zero_never_digests(make, slack):
    make(digest_threshold=0).deliver([rec(node=f"cn{n}") for n in range(8)], 5)
    assert len(slack.delivered()) == 8


def test_a_failed_digest_leaves_every_record_it_held_owed(make, slack):
    slack.script(SERVER_ERROR)
    outcomes = make().deliver([rec(node=f"cn{n}") for n in range(10)], 5)
    assert states(outcomes) == [RETRY] * 10


def test_a_record_delivered_again_is_not_posted_again(make, slack, tmp_path):
    record = rec()
    assert states(make(state_dir=str(tmp_path)).deliver([record], 5)) == [DELIVERED]
    # another process (a shipper that died before acknowledging) delivers it again
    assert states(make(state_dir=str(tmp_path)).deliver([record], 5)) == [DELIVERED]
    assert len(slack.requests) == 1


def test_a_malformed_record_is_refused_and_spares_the_rest(make, slack):
    outcomes = make().deliver([rec(date="last tuesday"), rec(id=None), rec()], 5)
    assert states(outcomes) == [REJECTED, REJECTED, DELIVERED]
    assert "not ISO 8601" in outcomes[0].error
    assert "no id string" in outcomes[1].error


# -- notify = "change" ---------------------------------------------------------------------


def test_change_only_posts_problems_their_changes_and_the_recovery(make, slack, tmp_path):
    sequence = ["OK", "WARNING", "WARNING", "CRITICAL", "OK"]
    for n, status in enumerate(sequence):  # one process per result, as from the CLI
        output = make("slack-warning", notify="change", state_dir=str(tmp_path))
        assert states(output.deliver([rec(status, at=T0 + 60 * n)], 5)) == [DELIVERED]
        output.close()
    assert titles(slack) == [
        "WARNING: disk_usage on cn0001",
        "CRITICAL: disk_usage on cn0001 (was WARNING)",
        "OK: disk_usage on cn0001 (recovered from CRITICAL)",
    ]
    assert (tmp_path / "state.db").exists()  # the cluster state, beside the spool
    assert not (tmp_path / "slack-state.db").exists()


@pytest.mark.parametrize("notify", ["every", "change"])
def test_in_one_batch_only_the_latest_result_of_a_check_can_speak(make, slack, notify):
    statuses = ["OK", "WARNING", "CRITICAL"]
    records = [rec(s, at=T0 + 60 * n) for n, s in enumerate(statuses)]
    output = make("slack-warning", notify=notify, digest_threshold=0)
    assert states(output.deliver(records, 5)) == [DELIVERED] * 3
    # the older two are superseded by the time they are judged: a backlog is not replayed
    # into the channel, the check's state is said
    assert titles(slack) == ["CRITICAL: disk_usage on cn0001"]


def test_a_problem_over_within_one_batch_says_nothing(make, slack):
    records = [rec(s, at=T0 + 60 * n) for n, s in enumerate(["WARNING", "WARNING", "OK"])]
    output = make("slack-warning", notify="change", digest_threshold=0)
    assert states(output.deliver(records, 5)) == [DELIVERED] * 3
    assert slack.delivered() == []


def test_each_result_is_judged_after_what_was_said_before_it(make, slack):
    output = make("slack-warning", notify="change", digest_threshold=0)
    for n, status in enumerate(["WARNING", "WARNING", "OK"]):
        assert states(output.deliver([rec(status, at=T0 + 60 * n)], 5)) == [DELIVERED]
    assert titles(slack) == [
        "WARNING: disk_usage on cn0001",
        "OK: disk_usage on cn0001 (recovered from WARNING)",
    ]


def test_an_unchanged_problem_is_repeated_after_renotify_seconds(make, slack):
    output = make("slack-critical", notify="change", renotify=600)
    for minute in range(0, 25, 5):
        output.deliver([rec("CRITICAL", at=T0 + 60 * minute)], 5)
    # posted at 0 min, again at 10 and 20 min
    assert len(slack.delivered()) == 3
    assert titles(slack)[1].startswith("CRITICAL: disk_usage on cn0001 (still CRITICAL since ")


def test_a_replayed_older_record_neither_posts_nor_rewinds_the_state(make, slack):
    output = make("slack-warning", notify="change")
    output.deliver([rec("CRITICAL", at=T0 + 60)], 5)
    assert states(output.deliver([rec("OK", at=T0)], 5)) == [DELIVERED]
    output.deliver([rec("CRITICAL", at=T0 + 120)], 5)
    assert titles(slack) == ["CRITICAL: disk_usage on cn0001"]


def test_a_problem_whose_message_failed_is_said_later_once(make, slack, tmp_path):
    slack.script(RATE_LIMITED)
    first = make("slack-warning", notify="change", state_dir=str(tmp_path))
    records = [rec("WARNING", at=T0), rec("WARNING", at=T0 + 60)]
    outcomes = first.deliver(records, 5)
    assert states(outcomes) == [DELIVERED, RETRY]  # the first is superseded: nothing to say
    assert outcomes[1].retry_after == 30.0
    # later, in another process: the problem is still said, once
    again = make("slack-warning", notify="change", state_dir=str(tmp_path))
    assert states(again.deliver(records, 5)) == [DELIVERED, DELIVERED]
    assert states(again.deliver(records[1:], 5)) == [DELIVERED]
    assert titles(slack) == ["WARNING: disk_usage on cn0001"]


def test_a_quiet_result_waits_behind_a_failed_message_of_its_check(make, slack):
    slack.script(SERVER_ERROR)
    output = make("slack-warning", notify="change")
    older = rec("OK", at=T0)  # arriving after a newer one: superseded, quiet
    outcomes = output.deliver([rec("CRITICAL", at=T0 + 60), older, rec("OK", node="cn2")], 5)
    assert states(outcomes) == [RETRY, RETRY, DELIVERED]
    assert "waits for an earlier result of its check" in outcomes[1].error


def test_with_notify_every_a_preset_filters_by_severity(make):
    config = Config(data={"outputs": {"slack": {"notify": "every"}}})
    assert filter_stages("slack-warning", config) == [MinSeverity("WARNING")]
    assert filter_stages("slack-all", config) == []


def test_with_notify_change_every_status_reaches_the_output_to_see_recoveries():
    config = Config(data={"outputs": {"slack": {"notify": "change", "min_severity": "CRITICAL"}}})
    assert filter_stages("slack-warning", config) == []
    assert binding_keys(filter_stages("slack-critical", config)) == ["#"]


def test_the_outputs_own_level_is_the_stricter_of_preset_and_section(make):
    assert make("slack-warning", notify="change", min_severity="CRITICAL").level == "CRITICAL"
    assert make("slack-critical", notify="change", min_severity="WARNING").level == "CRITICAL"
    assert make("slack-all", notify="change").level == "OK"


# -- decided from the cluster state ----------------------------------------------------------


def state_of(tmp_path):
    from accre_monitor.pipeline.state_sqlite import SqliteState

    return SqliteState(str(tmp_path / "state.db"))


@pytest.mark.parametrize(
    "notify, posted",
    [
        ("every", ["OK", "CRITICAL", "OK"]),
        ("change", ["CRITICAL", "OK"]),
    ],
)
def test_a_recovery_is_posted_whichever_shipper_said_the_problem(
    make, slack, tmp_path, notify, posted
):
    # two shippers sharing one state: the problem said by one, the recovery seen by the other
    first = make("slack-all", notify=notify, state_dir=str(tmp_path))
    first.deliver([rec("OK", at=T0)], 5)
    first.deliver([rec("CRITICAL", at=T0 + 60)], 5)
    second = make("slack-all", notify=notify, state_dir=str(tmp_path))
    assert states(second.deliver([rec("OK", at=T0 + 120)], 5)) == [DELIVERED]
    assert [title.split(":")[0] for title in titles(slack)] == posted


def test_what_each_output_said_is_its_own(make, slack, tmp_path):
    warning = make("slack-warning", notify="change", state_dir=str(tmp_path))
    critical = make("slack-critical", notify="change", state_dir=str(tmp_path))
    record = rec("WARNING", at=T0)
    warning.deliver([record], 5)
    critical.deliver([record], 5)
    said = state_of(tmp_path).entries()[0].notified
    assert set(said) == {"slack-warning"} and said["slack-warning"]["id"] == record["id"]


def test_a_record_the_state_took_first_is_still_posted_once(make, slack, tmp_path):
    from accre_monitor.outputs import create_output

    state = create_output("state", {}, state_dir=str(tmp_path))
    older, newer = rec("WARNING", at=T0), rec("CRITICAL", at=T0 + 60)
    assert states(state.deliver([older, newer], 5)) == [DELIVERED, DELIVERED]
    state.close()
    output = make("slack-warning", notify="change", state_dir=str(tmp_path))
    assert states(output.deliver([older], 5)) == [DELIVERED]  # superseded: quiet
    assert states(output.deliver([newer], 5)) == [DELIVERED]
    assert states(output.deliver([newer], 5)) == [DELIVERED]  # said: never twice
    assert titles(slack) == ["CRITICAL: disk_usage on cn0001"]


def test_the_same_record_twice_in_one_batch_is_posted_once(make, slack):
    record = rec("CRITICAL")
    outcomes = make().deliver([record, dict(record)], 5)
    assert states(outcomes) == [DELIVERED, DELIVERED] and outcomes[1].duplicate
    assert len(slack.delivered()) == 1


def silence(tmp_path, **fields):
    from accre_monitor.pipeline.state import Silence

    defaults = {"id": "s1", "node": "cn0001", "check": "disk_*", "comment": "disk swap"}
    store = state_of(tmp_path)
    try:
        return store.add_silence(Silence(**{**defaults, **fields}))
    finally:
        store.close()


@pytest.mark.parametrize("notify", ["every", "change"])
def test_a_silenced_problem_is_delivered_unposted_and_so_is_its_recovery(
    make, slack, tmp_path, notify
):
    silence(tmp_path, begin=time.time() - 5, end=time.time() + 3600)
    output = make("slack-all", notify=notify, state_dir=str(tmp_path))
    outcomes = output.deliver([rec("CRITICAL", at=T0), rec("CRITICAL", node="cn0002", at=T0)], 5)
    assert states(outcomes) == [DELIVERED, DELIVERED]
    assert titles(slack) == ["CRITICAL: disk_usage on cn0002"]  # another node: not silenced
    entry = next(e for e in state_of(tmp_path).entries() if e.node == "cn0001")
    assert entry.status == "CRITICAL" and entry.silenced == ["s1"]  # the state has it
    store = state_of(tmp_path)
    store.remove_silence("s1")
    store.close()
    assert states(output.deliver([rec("OK", at=T0 + 60)], 5)) == [DELIVERED]
    # a recovery is posted only if this output had posted the problem
    assert titles(slack) == ["CRITICAL: disk_usage on cn0002"]


def test_a_silence_that_ended_or_has_not_begun_silences_nothing(make, slack, tmp_path):
    silence(tmp_path, id="over", begin=time.time() - 600, end=time.time() - 1)
    silence(tmp_path, id="later", begin=time.time() + 600)
    output = make("slack-all", state_dir=str(tmp_path))
    assert states(output.deliver([rec("CRITICAL")], 5)) == [DELIVERED]
    assert len(slack.delivered()) == 1


@pytest.mark.parametrize(
    "notify, posted",
    [
        ("change", ["CRITICAL", "OK"]),
        ("every", ["CRITICAL", "CRITICAL", "OK"]),
    ],
)
def test_min_occurrences_posts_a_problem_from_its_nth_result_and_then_its_recovery(
    make, slack, notify, posted
):
    output = make("slack-warning", notify=notify, min_occurrences=3, renotify=0)
    sequence = ["CRITICAL", "CRITICAL", "CRITICAL", "CRITICAL", "OK"]
    for n, status in enumerate(sequence):
        assert states(output.deliver([rec(status, at=T0 + 60 * n)], 5)) == [DELIVERED]
        if n == 1:
            assert slack.delivered() == []
    assert [title.split(":")[0] for title in titles(slack)] == posted
    if notify == "change":
        assert titles(slack)[1] == "OK: disk_usage on cn0001 (recovered from CRITICAL)"


@pytest.mark.parametrize("notify", ["every", "change"])
def test_min_occurrences_a_single_problem_and_its_recovery_post_nothing(make, slack, notify):
    output = make("slack-all", notify=notify, min_occurrences=3)
    for n, status in enumerate(["OK", "CRITICAL", "OK"]):
        output.deliver([rec(status, at=T0 + 60 * n, node="cn7")], 5)
    posted = [title.split(":")[0] for title in titles(slack)]
    assert posted == (["OK"] if notify == "every" else [])  # the first OK, with "every"


def test_a_stale_record_is_posted_whatever_min_occurrences_and_recovers(make, slack):
    from accre_monitor.pipeline.state import stale_record

    output = make("slack-warning", notify="change", min_occurrences=3)
    output.deliver([rec("OK", at=T0)], 5)
    entry = output.state_store().entries()[0]
    output.deliver([stale_record(entry, "UNKNOWN", T0 + 600)], 5)
    output.deliver([rec("OK", at=T0 + 660)], 5)
    assert titles(slack) == [
        "UNKNOWN: disk_usage on cn0001",
        "OK: disk_usage on cn0001 (recovered from UNKNOWN)",
    ]


def test_a_state_that_cannot_be_reached_holds_the_batch_unposted(slack, tmp_path):
    from accre_monitor.outputs import create_output

    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    output = create_output(
        "slack-all",
        {"webhook_url": slack.url, "min_interval": 0},
        state={"url": f"sqlite:///{blocked}/state.db"},
    )
    try:  # every record of the batch is retried later (StoreUnavailable)
        with pytest.raises(StoreUnavailable, match="cannot use the cluster state"):
            output.deliver([rec("CRITICAL")], 5)
    finally:
        output.close()
    assert slack.requests == []


def test_the_notification_state_of_earlier_versions_is_set_aside_once(
    make, slack, tmp_path, capsys
):
    old = tmp_path / "slack-state.db"
    old.write_bytes(b"SQLite format 3\x00")
    (tmp_path / "slack-state.db-wal").write_bytes(b"")
    make(state_dir=str(tmp_path)).deliver([rec("CRITICAL")], 5)
    make(state_dir=str(tmp_path)).deliver([rec("CRITICAL", node="cn2")], 5)
    assert not old.exists() and (tmp_path / "slack-state.db.unused").exists()
    assert (tmp_path / "slack-state.db.unused-wal").exists()
    assert capsys.readouterr().err.count("slack-state.db is no longer used") == 1
    assert len(slack.delivered()) == 2


# -- proxy ---------------------------------------------------------------------------------


def test_a_proxy_carries_the_messages(make, slack):
    webhook = "http://hooks.slack.invalid" + slack.path
    output = make(webhook_url=webhook, proxy=f"http://127.0.0.1:{slack.port}")
    assert states(output.deliver([rec()], 5)) == [DELIVERED]
    assert slack.requests[0].target == webhook


def test_retry_after_is_read_as_seconds_or_as_a_date():
    from email.utils import formatdate

    from accre_monitor.outputs.slack import retry_after_seconds

    assert retry_after_seconds("30") == 30.0
    assert 55 <= retry_after_seconds(formatdate(time.time() + 60, usegmt=True)) <= 60
    assert retry_after_seconds(None) == retry_after_seconds("soon") == 1.0


def test_every_piece_of_the_webhook_that_names_it_is_scrubbed():
    from accre_monitor.redaction import remember, scrub

    url = "https://hooks.slack.com/services/T0AAAAAAAA/B0BBBBBBBB/abcdefghijklmnopqrstuvwx"
    remember(url)
    text = scrub(f"POST {url} failed; token abcdefghijklmnopqrstuvwx; path /services/T0AAAAAAAA")
    assert "abcdefghijklmnopqrstuvwx" not in text and "T0AAAAAAAA" not in text
    assert "https://hooks.slack.com/***" in text and "/services/***" in text
