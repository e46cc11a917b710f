"""Slack messages: what a person sees of one result, or of many."""

from __future__ import annotations

import json
import time

import pytest

from accre_monitor.outputs.notify import NEW, RECOVERY, REPEAT
from accre_monitor.outputs.slack_format import (
    DATA_MAX,
    DIGEST_LINES,
    LONG_MAX,
    Notice,
    digest,
    message,
)
from accre_monitor.record import build_record, iso_now

NOW = time.time()


def notice(status="WARNING", name="disk_usage", node="cn0001", age=0.0, **fields):
    record = build_record(
        name,
        status,
        fields.pop("data", {"/": 91}),
        fields.pop("short", f"DISK {status} - / 91%"),
        fields.pop("long", None),
        node=node,
        date=iso_now(NOW - age),
    )
    return Notice(record)


def attachment(payload):
    assert len(payload["attachments"]) == 1
    return payload["attachments"][0]


def text_of(payload) -> str:
    """Everything a reader sees."""
    a = attachment(payload)
    parts = [a["title"], a["text"], a["footer"]] + [f["value"] for f in a.get("fields", [])]
    return "\n".join(parts)


@pytest.mark.parametrize(
    "status, color",
    [("OK", "good"), ("WARNING", "warning"), ("CRITICAL", "danger"), ("UNKNOWN", "#9e9e9e")],
)
def test_the_status_shows_as_colour_and_as_a_word(status, color):
    payload = message(notice(status), "#ops", 120, NOW)
    assert attachment(payload)["color"] == color
    assert attachment(payload)["title"].startswith(f"{status}: disk_usage on cn0001")
    assert payload["channel"] == "#ops"


def test_the_message_shows_short_text_data_and_when_the_result_was_taken():
    n = notice(data={"/": 91, "/home": 40})
    payload = message(n, "#ops", 120, NOW)
    seen = text_of(payload)
    assert "DISK WARNING - / 91%" in seen
    assert '{"/":91,"/home":40}' in seen
    assert attachment(payload)["ts"] == int(n.taken)
    assert time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(n.taken)) in seen


def test_the_long_text_is_folded_in_a_code_block_and_trimmed():
    long = "\n".join(f"line {i} " + "x" * 50 for i in range(200))
    text = attachment(message(notice(long=long), "", 120, NOW))["text"]
    block = text[text.index("```") :]
    assert block.endswith("```") and "line 0 " in block
    assert len(block) < LONG_MAX + 100
    assert f"{len(long) - LONG_MAX} more characters" in block


def test_large_data_is_trimmed_compact_json():
    data = {f"mount{i}": {"used": i, "free": 100 - i} for i in range(500)}
    value = attachment(message(notice(data=data), "", 120, NOW))["fields"][0]["value"]
    assert value.startswith('```{"mount0":{"used":0')
    assert len(value) < DATA_MAX + 100


def test_text_cannot_break_out_of_slack_formatting():
    payload = message(notice(short="<!channel> & <@U123>", long="a ``` b"), "", 120, NOW)
    a = attachment(payload)
    assert "<!channel>" not in json.dumps(payload)
    assert "&lt;!channel&gt; &amp; &lt;@U123&gt;" in a["text"]
    assert a["text"].count("```") == 2


def test_a_result_posted_late_says_when_it_was_taken_and_that_it_is_late():
    old = notice(age=37 * 60)
    text = attachment(message(old, "", 120, NOW))["text"]
    assert text.startswith(":hourglass: *Late:* taken <!date^")
    assert "37 min before this message" in text
    assert time.strftime("%H:%M:%S UTC", time.gmtime(old.taken)) in text


def test_a_fresh_result_is_not_marked_late():
    assert "Late" not in text_of(message(notice(age=119), "", 120, NOW))


@pytest.mark.parametrize(
    "verdict, before, status, says",
    [
        (RECOVERY, "CRITICAL", "OK", "OK: disk_usage on cn0001 (recovered from CRITICAL)"),
        (RECOVERY, "CRITICAL", "WARNING", "WARNING: disk_usage on cn0001 (no longer CRITICAL)"),
        (NEW, "WARNING", "CRITICAL", "CRITICAL: disk_usage on cn0001 (was WARNING)"),
        (NEW, "OK", "WARNING", "WARNING: disk_usage on cn0001"),
        (REPEAT, "WARNING", "WARNING", "WARNING: disk_usage on cn0001 (still WARNING since "),
    ],
)
def test_the_title_says_what_changed(verdict, before, status, says):
    n = notice(status)
    n.verdict, n.before, n.since = verdict, before, n.taken - 7200
    title = attachment(message(n, "", 120, NOW))["title"]
    assert title.startswith(says)


def storm(count, age=600.0):
    statuses = ["CRITICAL", "WARNING", "UNKNOWN", "OK", "CRITICAL"]
    return [
        notice(statuses[i % 5], ["disk_usage", "gpfs"][i % 2], f"cn{i % 37:04d}", age - i)
        for i in range(count)
    ]


def test_a_digest_counts_each_status_and_names_the_worst_first():
    notices = storm(200)
    payload = digest(notices, "#ops", 120, NOW)
    a = attachment(payload)
    assert a["title"] == "200 results from 37 nodes: 80 CRITICAL, 40 UNKNOWN, 40 WARNING, 40 OK"
    assert a["color"] == "danger"
    lines = a["text"].splitlines()
    statuses = [line.split("*")[1] for line in lines if line.startswith("*")]
    assert statuses == sorted(statuses, key=["CRITICAL", "UNKNOWN", "WARNING", "OK"].index)
    assert "cn0000" in a["text"] and "more nodes" in a["text"]


def test_a_digest_of_late_results_says_when_they_were_taken():
    text = attachment(digest(storm(50, age=3600), "", 120, NOW))["text"]
    assert text.startswith(":hourglass: *Late:* taken between <!date^")


def test_a_digest_stays_short_however_many_checks_it_covers():
    notices = [notice("WARNING", f"check{i}", f"cn{i:04d}") for i in range(300)]
    a = attachment(digest(notices, "", 120, NOW))
    assert len(a["text"].splitlines()) == DIGEST_LINES + 1
    assert a["text"].endswith("… and 280 more results in 280 more lines")
    assert len(json.dumps(a)) < 4000


def test_a_record_without_a_node_or_a_date_is_refused():
    record = build_record("disk", "OK", {}, node="cn1")
    for key, value in (("id", 7), ("node", None), ("date", "yesterday"), ("status", "FINE")):
        with pytest.raises(ValueError):
            Notice({**record, key: value})
