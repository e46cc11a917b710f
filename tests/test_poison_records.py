"""One bad record never stops a queue: a record whose fields cannot be rendered, or that is
not a result record at all, becomes a dead letter with the reason, and the records behind
it are delivered. Over the spool (replay) and over the broker (the shipper), against the
real NSCA daemon, the Slack test webhook and a real RabbitMQ node.
"""

from __future__ import annotations

import json

import pytest
from test_outage import nsca_ids
from test_rabbitmq import Node, wait_until

from accre_monitor.codec import encode
from accre_monitor.pipeline.spool import Spool, spool_settings
from accre_monitor.record import build_record

pytest.importorskip("urllib3")

pytestmark = pytest.mark.integration

ODD_DATE = "0001-01-01T00:00:00+14:00"  # valid ISO 8601, yet Python cannot show it in UTC


def sections(daemon, slack) -> str:
    return (
        f"[outputs.nagios-nsca]\nport = {daemon.port}\ntimeout = 2\n"
        f'[outputs.slack]\nwebhook_url = "{slack.url}"\nmin_interval = 0\ntimeout = 2\n'
        "group_wait = 0\n"
    )


def odd_short() -> dict:
    """A record whose `short` is a number: the NSCA plugin output cannot be made of it."""
    record = build_record("odd_short", "WARNING", {"v": 1})
    record["short"] = 5
    return record


def odd_date() -> dict:
    """A record dated in year 1 at +14:00: year 0 in UTC, which Python cannot format."""
    return build_record("odd_date", "CRITICAL", {"v": 2}, date=ODD_DATE)


def slack_titles(slack) -> list[str]:
    return [p["attachments"][0]["title"] for p in slack.delivered()]


# -- over the spool ------------------------------------------------------------------------


def test_records_that_cannot_be_rendered_are_dead_lettered_and_the_rest_replayed(
    cli, daemon, slack
):
    cli.write_config(f'[spool]\npath = "{cli.tmp / "spool.db"}"\n{sections(daemon, slack)}')
    bad_nsca, bad_slack = odd_short(), odd_date()
    good_nsca = build_record("healthy", "OK", {"v": 3})
    good_slack = build_record("healthy", "WARNING", {"v": 4}, node="cn0042")
    spool = Spool(spool_settings({"path": str(cli.tmp / "spool.db")}))
    spool.add(
        [
            (bad_nsca["id"], "nagios-nsca", encode(bad_nsca)),
            (bad_slack["id"], "slack-all", encode(bad_slack)),
            (good_nsca["id"], "nagios-nsca", encode(good_nsca)),
            (good_slack["id"], "slack-all", encode(good_slack)),
        ],
        error="down",
        attempts=0,
    )
    spool.close()
    replayed = cli.run("replay", script="accre-pipeline", timeout=30)
    assert "Traceback" not in replayed.stderr
    assert "nagios-nsca: delivered 1, dead-lettered 1, still spooled 0" in replayed.stdout
    assert "slack-all: delivered 1, dead-lettered 1, still spooled 0" in replayed.stdout
    assert nsca_ids(daemon) == [good_nsca["id"]]
    assert slack_titles(slack) == ["WARNING: healthy on cn0042"]
    letters = cli.run("dead-letters", "list", script="accre-pipeline").stdout.splitlines()
    reasons = {line.split()[0]: line for line in letters}
    assert set(reasons) == {bad_nsca["id"], bad_slack["id"]}
    assert "nagios-nsca" in reasons[bad_nsca["id"]]
    assert "AttributeError" in reasons[bad_nsca["id"]]
    assert "slack-all" in reasons[bad_slack["id"]]
    assert "year 0 is out of range" in reasons[bad_slack["id"]]


# -- over the broker -----------------------------------------------------------------------


@pytest.fixture
def node(cli, broker, daemon, slack):
    made = Node(cli, broker, sections(daemon, slack), spool="backoff_base = 0.2\n")
    # the queues of both outputs exist before anything is published
    text = cli.config_path.read_text()
    cli.config_path.write_text(text.replace('["stdout"]', '["stdout", "nagios-nsca", "slack-all"]'))
    shown = made.pipeline("topology")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    yield made
    made.close()


def dead_letters(node, output: str) -> list[tuple[dict, bytes]]:
    """(headers, body) of every message in the output's dead-letter queue (left there)."""
    return [(props.headers or {}, body) for props, body in node.messages(f"{output}.dead")]


def dead_letter_of(node, output: str, record_id: str) -> dict:
    """The headers of the one dead letter of `output` that carries record `record_id`."""
    [headers] = [h for h, body in dead_letters(node, output) if json.loads(body)["id"] == record_id]
    return headers


def test_records_published_with_odd_fields_are_dead_lettered_and_later_ones_delivered(
    node, daemon, slack
):
    bad_nsca, bad_slack = odd_short(), odd_date()
    node.publish("WARNING.odd_short", encode(bad_nsca), bad_nsca["id"])
    node.publish("CRITICAL.odd_date", encode(bad_slack), bad_slack["id"])
    shipper = node.ship("--outputs", "nagios-nsca,slack-all")
    later, _ = node.run(outputs="stdout,nagios-nsca,slack-all")
    wait_until(lambda: later["id"] in nsca_ids(daemon), what="the later record sent to NSCA")
    posted = f"OK: loadavg on {later['node']}"
    wait_until(lambda: posted in slack_titles(slack), what="the later record posted to Slack")
    wait_until(lambda: node.queue_depth("nagios-nsca", ".dead") >= 1, what="the NSCA dead letter")
    wait_until(lambda: node.queue_depth("slack-all", ".dead") >= 1, what="the Slack dead letter")
    assert shipper.stop() == 0
    assert bad_nsca["id"] not in nsca_ids(daemon)
    headers = dead_letter_of(node, "nagios-nsca", bad_nsca["id"])
    assert headers["x-accre-output"] == "nagios-nsca"
    assert "AttributeError" in headers["x-accre-reason"]
    headers = dead_letter_of(node, "slack-all", bad_slack["id"])
    assert headers["x-accre-output"] == "slack-all"
    assert "year 0 is out of range" in headers["x-accre-reason"]
    assert node.queue_depth("nagios-nsca") == node.queue_depth("slack-all") == 0


def test_a_published_record_without_a_node_is_dead_lettered_at_once(node, daemon):
    record = build_record("loadavg", "OK", {"v": 1})
    del record["node"]
    node.publish("OK.loadavg", encode(record), record["id"])
    shipper = node.ship("--outputs", "nagios-nsca")
    later, _ = node.run(outputs="stdout,nagios-nsca")
    wait_until(lambda: later["id"] in nsca_ids(daemon), what="the later record sent to NSCA")
    # at its first sight, not after a round of retries
    wait_until(lambda: node.queue_depth("nagios-nsca", ".dead") == 1, timeout=5, what="dead")
    assert shipper.stop() == 0
    [(headers, body)] = dead_letters(node, "nagios-nsca")
    assert json.loads(body)["id"] == record["id"]
    assert headers.get("x-accre-attempts", 0) <= 1, headers  # never retried
    assert "retried=1" not in shipper.text()
    assert "'node'" in headers["x-accre-reason"]
    assert node.queue_depth("nagios-nsca") == 0
