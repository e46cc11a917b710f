"""`accre-pipeline overview`: the cluster state as an operator reads it.

Counts per status first, then every check that needs a look (not OK, stale, or silenced),
worst first. `state_json` builds the same view as plain data, one object per node and check,
for `--json` and for a status page.

A check is *stale* when its latest record says results stopped coming (the watchdog's stale
or keepalive record) or when its `ttl` has run out with no newer result (a stale record is
owed: the watchdog has not acted yet, or no shipper runs it). The silences shown are those
active now, whatever the entry was marked with when its record was taken.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import argh
import orjson

from accre_monitor.dates import epoch_seconds
from accre_monitor.pipeline.state import Entry, Silence, StateStore, covering
from accre_monitor.pipeline.state_cli import load_config, opened_state, sqlite_missing, where
from accre_monitor.record import iso_now
from accre_monitor.status import CRITICAL, OK, SEVERITY, STATUSES


def overdue(entry: Entry, back: float, now: float) -> bool:
    """Whether the entry's ttl ran out with no newer result (a node that came back gets a
    full ttl from then, as the watchdog gives it)."""
    due = entry.due
    if due is None:
        return False
    return max(due, back + entry.ttl) <= now


def entry_json(entry: Entry, silences: list[Silence], back: float, now: float) -> dict[str, Any]:
    """One node and check as `overview --json` gives it."""
    return {
        "node": entry.node,
        "check": entry.check,
        "status": entry.status,
        "since": iso_now(entry.since),
        "date": iso_now(entry.date),
        "occurrences": entry.occurrences,
        "watermark": entry.watermark,
        "stale": entry.stale or overdue(entry, back, now),
        "silenced": covering(silences, entry.node, entry.check, now),
        "ttl": entry.ttl,
        "short": entry.record.get("short"),
    }


def state_json(
    store: StateStore, node: str | None = None, check: str | None = None, now: float | None = None
) -> list[dict[str, Any]]:
    """Every node and check in the state (matching the globs), by node and check."""
    now = time.time() if now is None else now
    silences = store.silences(now)
    backs = {n.name: n.back for n in store.nodes()}
    return [
        entry_json(entry, silences, backs.get(entry.node, 0.0), now)
        for entry in sorted(store.entries(node=node, check=check), key=lambda e: e.key)
    ]


def counts(items: list[dict[str, Any]]) -> dict[str, int]:
    """How many are in each status, stale, and silenced."""
    result = dict.fromkeys(STATUSES, 0)
    for item in items:
        result[item["status"]] = result.get(item["status"], 0) + 1
    result["stale"] = sum(1 for item in items if item["stale"])
    result["silenced"] = sum(1 for item in items if item["silenced"])
    return result


def needs_a_look(item: dict[str, Any]) -> bool:
    return item["status"] != OK or item["stale"] or bool(item["silenced"])


def worst_first(item: dict[str, Any]) -> tuple[Any, ...]:
    """CRITICAL, UNKNOWN, WARNING, then OK; stale first; the longest-standing first."""
    status = item["status"]
    return (
        -SEVERITY.get(status, 0),
        status != CRITICAL,
        not item["stale"],
        epoch_seconds(item["since"]),
        item["node"],
        item["check"],
    )


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def duration(seconds: float) -> str:
    """`45s`, `12m`, `3.5h`, `2.1d`: how long, as the table shows it."""
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _ago(iso: str, now: float) -> str:
    return duration(now - epoch_seconds(iso))


def _silence_cell(ids: list[str], silences: dict[str, Silence]) -> str:
    if not ids:
        return "-"
    first = silences.get(ids[0])
    cell = f"{ids[0][:8]} {first.comment}" if first is not None else ids[0][:8]
    return cell + (f" (+{len(ids) - 1} more)" if len(ids) > 1 else "")


def render(
    items: list[dict[str, Any]], silences: list[Silence], location: str, now: float
) -> list[str]:
    """The overview's lines: where, the counts, then what needs a look, worst first."""
    nodes = {item["node"] for item in items}
    tally = counts(items)
    lines = [
        f"state: {location}: {plural(len(items), 'check')} on {plural(len(nodes), 'node')}",
        "   ".join(f"{key} {value}" for key, value in tally.items()),
    ]
    shown = sorted((item for item in items if needs_a_look(item)), key=worst_first)
    if not shown:
        lines.append("every check is OK, fresh and not silenced")
        return lines
    by_id = {s.id: s for s in silences}
    header = ("node", "check", "status", "since", "occurrences", "last", "silence")
    rows = [
        (
            item["node"],
            item["check"],
            item["status"] + (" stale" if item["stale"] else ""),
            _ago(item["since"], now),
            str(item["occurrences"]),
            _ago(item["date"], now),
            _silence_cell(item["silenced"], by_id),
        )
        for item in shown
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines.append("")
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return lines


def _nothing(location: str, node: str | None, check: str | None, total: int) -> str:
    if not total:
        return f"the state is empty: no result has been taken into it yet ({location})"
    globs = " ".join(f"--{k} {v}" for k, v in (("node", node), ("check", check)) if v)
    return f"nothing in the state matches {globs} ({plural(total, 'check')} in {location})"


@argh.arg("--json", help="one JSON object per node and check (every one, not only problems)")
@argh.arg("--node", help="only nodes matching this glob")
@argh.arg("--check", help="only checks matching this glob")
def overview(*, json: bool = False, node: str | None = None, check: str | None = None) -> None:
    """The cluster state: counts per status, then every check not OK, stale or silenced,
    worst first, with since when, occurrences, the last result's age and its silence."""
    config = load_config()
    location = where(config)
    now = time.time()
    if sqlite_missing(config):  # never create the file just to say it is empty
        items: list[dict[str, Any]] = []
        total = 0
    else:
        with opened_state(config) as store:
            items = state_json(store, node, check, now)
            silences = store.silences(now) if items and not json else []
            total = len(items) or (len(store.entries()) if node or check else 0)
    if json:
        sys.stdout.write(orjson.dumps(items, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if not items:
        print(_nothing(location, node, check, total))
        return
    print("\n".join(render(items, silences, location, now)))
