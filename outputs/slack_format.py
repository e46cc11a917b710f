"""Slack messages a person reads at a glance: one result, or a digest of many.

An incoming-webhook payload with one attachment, so the status shows as a coloured bar
(OK green, WARNING yellow, CRITICAL red, UNKNOWN grey) as well as in words. One result:
the title says the status, check and node (and what changed: "was WARNING", "recovered
from CRITICAL", "still CRITICAL since ..."); the text holds the short text, the long text
folded in a code block (trimmed to LONG_MAX characters) and the data as compact JSON
(trimmed to DATA_MAX); the footer and `ts` give the time the result was taken.

A result posted more than `late_after` seconds after it was taken (it waited in the spool,
or in a backlog) starts with a "Late" line saying when it was taken and how long ago, so
an old alert is never mistaken for a new one.

A digest summarises many results in one message: counts per status, then one line per
status and check, the worst first, naming the nodes (trimmed), and the span of time the
results were taken in.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from accre_monitor.codec import encode
from accre_monitor.dates import epoch_seconds
from accre_monitor.outputs.notify import NEW, RECOVERY, REPEAT
from accre_monitor.status import CRITICAL, OK, SEVERITY, STATUSES, UNKNOWN, WARNING

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

COLORS = {OK: "good", WARNING: "warning", CRITICAL: "danger", UNKNOWN: "#9e9e9e"}
SHORT_MAX = 300
LONG_MAX = 1500
DATA_MAX = 600
DIGEST_LINES = 20  # lines of a digest, one per status and check
DIGEST_NODES = 8  # nodes named per line
SENDER = "accre-monitor"


class Notice:
    """One record on its way to Slack: its fields, checked, and what it means.

    `verdict` is one of accre_monitor.outputs.notify's; `before` is the status known before
    it and `since` when `before` (or, for a repeat, this status) began, epoch seconds.
    """

    __slots__ = ("record", "node", "check", "status", "taken", "verdict", "before", "since")

    def __init__(self, record: dict[str, Any]) -> None:
        from accre_monitor.status import normalize_status

        self.record = record
        _field(record, "id")  # what a redelivery is recognised by
        self.node = _field(record, "node")
        self.check = _field(record, "name")
        self.status = normalize_status(record.get("status"))
        self.taken = epoch_seconds(_field(record, "date"))
        self.verdict = ""
        self.before: str | None = None
        self.since: float | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.node, self.check


def _field(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"record has no {key} string")
    return value


# -- one result ------------------------------------------------------------------------------


def message(notice: Notice, channel: str, late_after: float, now: float | None = None) -> dict:
    """The webhook payload for one result."""
    now = time.time() if now is None else now
    record = notice.record
    title = f"{notice.status}: {notice.check} on {notice.node}{_change(notice)}"
    lines = []
    late = _late(notice.taken, notice.taken, now, late_after)
    if late:
        lines.append(late)
    short = record.get("short")
    if isinstance(short, str) and short.strip():
        lines.append(escape(trim(short.strip(), SHORT_MAX)))
    long = record.get("long")
    if isinstance(long, str) and long.strip():
        lines.append(code_block(trim(long.strip("\n"), LONG_MAX)))
    attachment: dict[str, Any] = {
        "color": COLORS[notice.status],
        "fallback": escape(title + (f" - {trim(short, 120)}" if isinstance(short, str) else "")),
        "title": escape(title),
        "text": "\n".join(lines),
        "footer": f"taken {utc(notice.taken)} · {SENDER} · record {str(record.get('id'))[:8]}",
        "ts": int(notice.taken),
        "mrkdwn_in": ["text", "fields"],
    }
    data = record.get("data")
    if data not in (None, {}, [], ""):
        attachment["fields"] = [
            {"title": "Data", "value": code_block(compact(data)), "short": False}
        ]
    return _payload(channel, attachment)


def _change(notice: Notice) -> str:
    """What the title says about the change this result is, if it is one."""
    if notice.verdict == RECOVERY and notice.before:
        word = "recovered from" if notice.status == OK else "no longer"
        return f" ({word} {notice.before})"
    if notice.verdict == NEW and notice.before and notice.before != OK:
        return f" (was {notice.before})"
    if notice.verdict == REPEAT and notice.since is not None:
        return f" (still {notice.status} since {utc(notice.since)})"
    return ""


# -- many results ----------------------------------------------------------------------------


def digest(
    notices: list[Notice], channel: str, late_after: float, now: float | None = None
) -> dict:
    """One webhook payload summarising `notices`: counts, then the worst first."""
    now = time.time() if now is None else now
    counts = {status: 0 for status in STATUSES}
    groups: dict[tuple[str, str], dict[str, int]] = {}
    for notice in notices:
        counts[notice.status] += 1
        nodes = groups.setdefault((notice.status, notice.check), {})
        nodes[notice.node] = nodes.get(notice.node, 0) + 1
    worst = max(counts, key=lambda s: (counts[s] > 0, _rank(s)))
    nodes = {notice.node for notice in notices}
    tally = ", ".join(
        f"{counts[s]} {s}" for s in sorted(STATUSES, key=_rank, reverse=True) if counts[s]
    )
    title = (
        f"{len(notices)} results from {len(nodes)} node{'s' if len(nodes) != 1 else ''}: {tally}"
    )
    first = min(n.taken for n in notices)
    last = max(n.taken for n in notices)
    lines = []
    late = _late(first, last, now, late_after)
    if late:
        lines.append(late)
    ordered = sorted(
        groups.items(),
        key=lambda item: (
            -SEVERITY[item[0][0]],
            item[0][0] != CRITICAL,
            -sum(item[1].values()),
            item[0][1],
        ),
    )
    for (status, check), per_node in ordered[:DIGEST_LINES]:
        lines.append(_group_line(status, check, per_node))
    if len(ordered) > DIGEST_LINES:
        rest = ordered[DIGEST_LINES:]
        hidden = sum(sum(per_node.values()) for _, per_node in rest)
        lines.append(f"… and {hidden} more results in {len(rest)} more lines")
    span = utc(first) if int(first) == int(last) else f"{utc(first)} to {utc(last)}"
    attachment = {
        "color": COLORS[worst],
        "fallback": escape(title),
        "title": escape(title),
        "text": "\n".join(lines),
        "footer": f"digest of results taken {span} · {SENDER}",
        "ts": int(last),
        "mrkdwn_in": ["text"],
    }
    return _payload(channel, attachment)


def _group_line(status: str, check: str, per_node: dict[str, int]) -> str:
    total = sum(per_node.values())
    shown = sorted(per_node)[:DIGEST_NODES]
    names = ", ".join(n if per_node[n] == 1 else f"{n} ×{per_node[n]}" for n in shown)
    more = len(per_node) - len(shown)
    if more:
        names += f" and {more} more node{'s' if more != 1 else ''}"
    return escape(f"*{status}* {check} ({total}): {names}")


def _rank(status: str) -> tuple[int, bool]:
    """Severity, CRITICAL before UNKNOWN on a tie."""
    return SEVERITY[status], status == CRITICAL


# -- pieces ----------------------------------------------------------------------------------


def _payload(channel: str, attachment: dict[str, Any]) -> dict[str, Any]:
    payload: dict[str, Any] = {"username": SENDER, "attachments": [attachment]}
    if channel:
        payload["channel"] = channel
    return payload


def _late(first: float, last: float, now: float, late_after: float) -> str | None:
    """The "Late" line, when the oldest result was taken more than `late_after` ago."""
    age = now - first
    if age <= late_after:
        return None
    taken = when(first) if int(first) == int(last) else f"between {when(first)} and {when(last)}"
    return f":hourglass: *Late:* taken {taken}, {duration(age)} before this message"


def when(moment: float) -> str:
    """A date Slack shows in the reader's own time zone (UTC where it cannot)."""
    return f"<!date^{int(moment)}^{{date_short_pretty}} {{time_secs}}|{utc(moment)}>"


def utc(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float) -> str:
    """`45 s`, `12 min`, `3.5 h`, `2.0 days`."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def trim(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how much was left out."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"… [{len(text) - limit} more characters]"


def compact(data: Any) -> str:
    """The data as compact JSON, trimmed."""
    try:
        text = encode(data).decode("utf-8", "replace")
    except (TypeError, ValueError):
        text = repr(data)
    return trim(text, DATA_MAX)


def code_block(text: str) -> str:
    """`text` in a Slack code block (a ``` inside it would close the block early)."""
    return "```" + escape(text.replace("```", "ˋˋˋ")) + "```"


def escape(text: str) -> str:
    """Slack's three control characters, escaped as its formatting rules ask."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
