"""Slack seen from the command line: the three filter stages, Slack's answers, the spool.

Each test runs `accre-monitor` and `accre-pipeline` as subprocesses against a webhook over
real HTTP on loopback (tests/slack_server.py); a site check gives whatever status it is told.
"""

from __future__ import annotations

import json
import os
import stat
import time

import pytest
from slack_server import INVALID_PAYLOAD, Reply, SlackServer

from accre_monitor.codec import encode
from accre_monitor.pipeline.spool import Spool, spool_settings
from accre_monitor.record import build_record, iso_now

pytest.importorskip("urllib3")

pytestmark = pytest.mark.integration

CODES = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}

SHAPES = """
from accre_monitor import monitor_command

@monitor_command
def shaped(opts):
    \"\"\"Returns the status, data and texts it is given.\"\"\"
    return opts.get("status", "OK"), opts.get("data", {}), opts.get("short"), opts.get("long")
"""


@pytest.fixture
def slack():
    with SlackServer() as server:
        yield server


@pytest.fixture
def node(cli, slack):
    """The command line with a site check and a private spool, Slack configured."""
    cli.write_module("shapes", SHAPES)
    configure(cli, slack)
    return cli


def configure(cli, slack, slack_section="", spool_extra="", webhook=True):
    url = f'webhook_url = "{slack.url}"\n' if webhook else ""
    cli.write_config(
        '[monitoring]\ncheck_modules = ["shapes"]\n'
        f'[spool]\npath = "{cli.tmp / "spool.db"}"\ninline_budget = 5\n{spool_extra}'
        f"[outputs.slack]\n{url}min_interval = 0\ngroup_wait = 0\ntimeout = 2\n{slack_section}"
    )


def check(cli, output, status, *extra):
    """One run of the site check giving `status`; its exit code is the status's own."""
    result = cli.run("--outputs", output, "shaped", "--status", status, *extra)
    assert result.returncode == CODES[status], result.stderr
    return result


def pipeline(cli, *args):
    return cli.run(*args, script="accre-pipeline")


def status_of(cli, output):
    result = pipeline(cli, "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["outputs"].get(output, {})


def titles(slack):
    return [p["attachments"][0]["title"] for p in slack.delivered()]


@pytest.mark.parametrize(
    "output, posted",
    [
        ("slack-all", ["OK", "WARNING", "CRITICAL", "UNKNOWN"]),
        ("slack-warning", ["WARNING", "CRITICAL", "UNKNOWN"]),
        ("slack-critical", ["CRITICAL", "UNKNOWN"]),
    ],
)
def test_each_filter_stage_posts_its_own_statuses(node, slack, output, posted):
    for status in ("OK", "WARNING", "CRITICAL", "UNKNOWN"):
        result = check(node, output, status)
        assert "unknown output" not in result.stderr  # [outputs.slack] serves all three
        assert "spooled" not in result.stderr
    assert [title.split(":")[0] for title in titles(slack)] == posted
    assert status_of(node, output) == {}


def test_a_429_holds_the_record_for_retry_after_even_from_an_operators_replay(node, slack):
    # a wait far longer than the test: "held" cannot depend on how fast this machine is
    slack.script(Reply(429, "rate_limited", retry_after=600))
    before = time.time()
    result = check(node, "slack-warning", "CRITICAL")
    assert "record spooled" in result.stderr and "429" in result.stderr
    row = status_of(node, "slack-warning")
    assert row["spooled"] == 1 and row["due"] == 0
    assert row["next_due"] >= before + 600
    waited = pipeline(node, "replay", "--due")  # a timer's replay: not due yet
    assert waited.returncode == 1 and "still spooled 1" in waited.stdout
    held = pipeline(node, "replay")  # even an operator's replay honours Slack's Retry-After
    assert held.returncode == 1 and "1 backing off" in held.stdout
    assert len(slack.requests) == 1


def test_a_429_waits_at_least_retry_after_then_the_record_is_delivered(node, slack):
    slack.script(Reply(429, "rate_limited", retry_after=3))
    result = check(node, "slack-warning", "CRITICAL")
    assert "record spooled" in result.stderr and "429" in result.stderr
    deadline = time.monotonic() + 60
    while True:  # poll until Slack's wait is over
        replayed = pipeline(node, "replay")
        if replayed.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "delivered 1" in replayed.stdout
    # the replays made during the wait never reached Slack: the one that did came 3 s later
    refused, delivered = slack.requests
    assert delivered.at - refused.at >= 3
    assert len(titles(slack)) == 1 and titles(slack)[0].startswith("CRITICAL: shaped on ")
    assert status_of(node, "slack-warning") == {}


def test_a_refused_payload_becomes_a_dead_letter_with_slacks_answer(node, slack):
    configure(node, slack, spool_extra="max_attempts = 2\n")
    slack.always(INVALID_PAYLOAD)
    run = check(node, "slack-critical", "UNKNOWN")
    assert "rejected=True" in run.stderr
    replayed = pipeline(node, "replay")
    assert replayed.returncode == 1 and "dead-lettered 1" in replayed.stdout
    letters = pipeline(node, "dead-letters")
    assert "slack-critical" in letters.stdout and "HTTP 400 invalid_payload" in letters.stdout
    assert status_of(node, "slack-critical")["dead_letters"] == 1


def test_the_webhook_url_is_never_shown(node, slack, tmp_path):
    configure(node, slack, spool_extra="max_attempts = 1\n", webhook=False)
    node.env["ACCRE_MONITOR_SLACK_WEBHOOK_URL"] = slack.url
    node.env["ACCRE_MONITOR_DEBUG"] = "1"
    seen = []
    slack.stop()  # connection refused
    seen.append(check(node, "slack-all", "WARNING").stderr)
    slack.start()
    slack.hang(True)  # timed out
    try:
        seen.append(check(node, "slack-all", "CRITICAL").stderr)
    finally:
        slack.hang(False)
    slack.always(Reply(502, "<html>bad gateway: {target}</html>"))  # an answer naming it
    seen.append(check(node, "slack-all", "UNKNOWN").stderr)
    slack.always(INVALID_PAYLOAD)  # refused: a dead letter
    for args in (("replay",), ("status",), ("status", "--json"), ("dead-letters",)):
        result = pipeline(node, *args)
        seen += [result.stdout, result.stderr]
    health = node.run("--outputs", "nagios-stdout", "spool_health")
    seen += [health.stdout, health.stderr]
    node.env["ACCRE_MONITOR_LOG_FORMAT"] = "json"
    slack.always(Reply(404, "no_service"))
    # (a WARNING: an OK now would be the recovery of a problem never posted, and say nothing)
    seen.append(check(node, "slack-all", "WARNING").stderr)
    files = [p for p in (node.tmp).rglob("*") if p.is_file()]
    assert any(p.name.startswith("spool.db") for p in files)
    seen += [p.read_bytes().decode("latin-1") for p in files if "spool" in p.name]
    seen += [p.read_bytes().decode("latin-1") for p in files if p.name.startswith("state.db")]
    assert any(p.name == "state.db" for p in files)
    text = "\n".join(seen)
    assert "dead-lettered" in text and "no_service" in text  # the failures were reported
    assert slack.token not in text
    assert "/services/" not in text


def test_a_missing_webhook_keeps_the_verdict_and_the_record(node, slack):
    configure(node, slack, webhook=False)
    result = check(node, "slack-warning", "CRITICAL")
    assert "outputs.slack.webhook_url is not set" in result.stderr
    assert "Traceback" not in result.stderr
    assert status_of(node, "slack-warning")["spooled"] == 1
    configure(node, slack)
    assert pipeline(node, "replay").returncode == 0
    assert len(slack.delivered()) == 1


def test_notify_change_posts_a_problem_its_change_and_its_recovery(node, slack):
    configure(node, slack, 'notify = "change"\n')
    for status in ("OK", "WARNING", "WARNING", "CRITICAL", "OK"):
        assert "spooled" not in check(node, "slack-warning", status).stderr
    host = slack.delivered()[0]["attachments"][0]["title"].rsplit(" on ", 1)[1]
    assert titles(slack) == [
        f"WARNING: shaped on {host}",
        f"CRITICAL: shaped on {host} (was WARNING)",
        f"OK: shaped on {host} (recovered from CRITICAL)",
    ]
    state = node.tmp / "state.db"  # the cluster state, beside the spool
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
    assert not (node.tmp / "slack-state.db").exists()


def spool_old_records(cli, output, count, age, **fields):
    """`count` records taken `age` seconds ago, owed to `output`, as check runs during an
    outage would have left them."""
    spool = Spool(spool_settings({"path": str(cli.tmp / "spool.db")}))
    statuses = ["CRITICAL", "WARNING", "UNKNOWN", "CRITICAL"]
    records = [
        build_record(
            ["disk_usage", "gpfs", "infiniband"][n % 3],
            fields.get("status") or statuses[n % 4],
            {"n": n},
            node=f"cn{n % 97:04d}",
            date=iso_now(time.time() - age + n * 0.1),
        )
        for n in range(count)
    ]
    spool.add([(r["id"], output, encode(r)) for r in records], error="down", attempts=0)
    spool.close()
    return records


def test_a_result_delivered_late_says_when_it_was_taken(node, slack):
    slack.stop()
    check(node, "slack-warning", "WARNING")  # spooled now: not late when replayed at once
    spool_old_records(node, "slack-warning", 1, age=1800, status="CRITICAL")
    slack.start()
    assert pipeline(node, "replay").returncode == 0
    texts = {p["attachments"][0]["title"]: p["attachments"][0]["text"] for p in slack.delivered()}
    late = [title for title, text in texts.items() if text.startswith(":hourglass: *Late:*")]
    assert late == ["CRITICAL: disk_usage on cn0000"]
    assert "30 min before this message" in texts[late[0]]


def test_a_storm_of_200_spooled_results_is_replayed_as_a_handful_of_messages(node, slack):
    slack.stop()
    check(node, "slack-warning", "CRITICAL")
    spool_old_records(node, "slack-warning", 199, age=900)
    assert status_of(node, "slack-warning")["spooled"] == 200
    slack.start()
    replayed = pipeline(node, "replay")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "delivered 200" in replayed.stdout
    assert 1 <= len(slack.requests) <= 5
    summarised = 0
    for title in titles(slack):
        counts = title.split(": ", 1)[1].split(", ")
        summarised += sum(int(count.split()[0]) for count in counts)
    assert summarised == 200
    assert status_of(node, "slack-warning") == {}
