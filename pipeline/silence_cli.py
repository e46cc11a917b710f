"""`accre-pipeline silence add|list|remove`: silences, kept in the cluster state.

A silenced record is still stored everywhere and still reaches NSCA; only notifying outputs
(Slack) keep quiet about it. A silence names nodes and checks by glob (`gpu*`, `ib_*`), starts
now or at `--begin`, and ends after `--expire` seconds, at `--until`, or with the next OK of
the checks it covers (`--on-resolve`); the store drops it once it is over. Times are ISO 8601
(`2026-12-05T18:00`, `2026-12-05 18:00:00+01:00`, `2026-12-05`): local time when they carry no
UTC offset.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from typing import Any

import argh
import orjson

from accre_monitor import log
from accre_monitor.errors import UserError
from accre_monitor.pipeline.state import Silence
from accre_monitor.pipeline.state_cli import load_config, opened_state
from accre_monitor.record import iso_now, new_id

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, option: str) -> float:
    """Epoch seconds of an ISO 8601 time; local time when it has no UTC offset."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(
            f"{option} {text!r} is not an ISO 8601 time "
            "(2026-12-05T18:00, or 2026-12-05T18:00+01:00 with a UTC offset)"
        ) from None
    return moment.timestamp()  # a naive moment is local time


def parse_seconds(text: str) -> float:
    """A duration: seconds, or a number followed by s, m, h or d (`90`, `30m`, `2h`, `1d`)."""
    value = text.strip().lower()
    scale = UNITS.get(value[-1:])
    if scale is not None:
        value = value[:-1]
    try:
        seconds = float(value) * (scale or 1)
    except ValueError:
        raise UserError(f"--expire {text!r} is not a number of seconds (or 30m, 2h, 1d)") from None
    if not 0 < seconds < 10 * 365 * 86400:
        raise UserError(f"--expire {text!r} must be more than 0 and less than ten years")
    return seconds


def build_silence(
    node: str | None,
    check: str | None,
    begin: str | None,
    expire: str | None,
    until: str | None,
    on_resolve: bool,
    comment: str | None,
    now: float,
) -> Silence:
    """The silence the options describe, or a UserError saying in one line what is wrong."""
    ends = [name for name, given in (("--expire", expire), ("--until", until)) if given]
    ends += ["--on-resolve"] if on_resolve else []
    if len(ends) != 1:
        raise UserError(
            "say when the silence ends with exactly one of --expire SECONDS, --until TIME, "
            f"--on-resolve (given: {', '.join(ends) or 'none'})"
        )
    if not comment or not comment.strip():
        raise UserError("a silence needs --comment TEXT: why, and who to ask")
    if node is None and check is None:
        raise UserError(
            "name what to silence with --node GLOB and/or --check GLOB (everything: --node '*')"
        )
    for option, value in (("--node", node), ("--check", check)):
        if value is not None and not value.strip():
            raise UserError(f"{option} must not be empty")
    start = parse_time(begin, "--begin") if begin else now
    end: float | None = None
    if expire:
        end = start + parse_seconds(expire)
    elif until:
        end = parse_time(until, "--until")
        if end <= start:
            raise UserError(f"--until {until} is not after the silence begins ({iso_now(start)})")
    if end is not None and end <= now:
        raise UserError("that silence would be over already")
    return Silence(
        id=new_id(),
        node=(node or "*").strip(),
        check=(check or "*").strip(),
        begin=start,
        end=end,
        on_resolve=on_resolve,
        comment=comment.strip(),
        created=now,
    )


@argh.arg("--node", help="nodes to silence (a glob: gpu*, cn[0-9]*; '*' for every node)")
@argh.arg("--check", help="checks to silence (a glob: ib_*)")
@argh.arg("--begin", help="when it starts (ISO 8601; local time without an offset; default now)")
@argh.arg("--expire", help="it ends this many seconds after it begins (or 30m, 2h, 1d)")
@argh.arg("--until", help="it ends at this time (ISO 8601)")
@argh.arg("--on-resolve", help="it ends with the next OK of a check it covers")
@argh.arg("--comment", help="why, and who to ask (required)")
def add(
    *,
    node: str | None = None,
    check: str | None = None,
    begin: str | None = None,
    expire: str | None = None,
    until: str | None = None,
    on_resolve: bool = False,
    comment: str | None = None,
) -> None:
    """Silence notifications (Slack) for matching nodes and checks; print the silence's id.
    Exactly one of --expire, --until, --on-resolve; a comment is required."""
    silence = build_silence(node, check, begin, expire, until, on_resolve, comment, time.time())
    config = load_config()
    with opened_state(config) as store:
        store.add_silence(silence)
        if not store.entries(node=silence.node, check=silence.check):
            log.warning(
                "the silence covers nothing in the state yet (a typo in a glob?)",
                node=silence.node,
                check=silence.check,
            )
    print(silence.id)


def as_json(silence: Silence) -> dict[str, Any]:
    """A silence as `silence list --json` gives it (times ISO 8601, local with an offset)."""
    return {
        "id": silence.id,
        "node": silence.node,
        "check": silence.check,
        "begin": iso_now(silence.begin),
        "end": iso_now(silence.end) if silence.end is not None else None,
        "on_resolve": silence.on_resolve,
        "comment": silence.comment,
    }


def moment(epoch: float) -> str:
    """A moment as the tables show it: local time to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def ending(silence: Silence) -> str:
    """When a silence ends, as `silence list` shows it."""
    if silence.end is not None:
        return moment(silence.end)
    return "on resolve" if silence.on_resolve else "when removed"


@argh.named("list")
@argh.arg("--json", help="one JSON object per silence")
def list_(*, json: bool = False) -> None:
    """The silences not over yet (also those still to begin), oldest first."""
    config = load_config()
    with opened_state(config) as store:
        silences = store.silences()
    if json:
        payload = [as_json(s) for s in silences]
        sys.stdout.write(orjson.dumps(payload, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    if not silences:
        print("no silences")
        return
    rows = [(s.id, s.node, s.check, moment(s.begin), ending(s), s.comment) for s in silences]
    header = ("id", "node", "check", "begin", "end", "comment")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]))


@argh.arg("silence_id", metavar="ID", help="the silence's id (or a prefix naming only it)")
def remove(silence_id: str) -> None:
    """End a silence now."""
    config = load_config()
    with opened_state(config) as store:
        chosen = resolve_id(store.silences(), silence_id.strip())
        if not store.remove_silence(chosen):
            raise UserError(f"no silence {silence_id}")
    print(f"silence {chosen} removed")


def resolve_id(silences: list[Silence], wanted: str) -> str:
    """The id `wanted` names: itself, or the one silence whose id starts with it."""
    if not wanted:
        raise UserError("which silence? give its ID (silence list shows them)")
    if any(s.id == wanted for s in silences):
        return wanted
    matching = [s.id for s in silences if s.id.startswith(wanted)]
    if len(matching) > 1:
        raise UserError(f"{wanted} names {len(matching)} silences: give more of the id")
    if not matching:
        raise UserError(f"no silence {wanted} (silence list shows them)")
    return matching[0]


COMMANDS = [add, list_, remove]
