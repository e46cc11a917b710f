"""Grouping: many nodes failing one check at once become one Slack message, not hundreds.

Alertmanager's grouping, for one Slack output. A result that speaks (a new problem, a
change, a repeat, a recovery; every result with notify = "every") joins the group of its
check and status (a recovery joins its check's "recovered" group, kept under OK) and is
delivered at once: the record is settled, the group owes the message. A group speaks:

- first `group_wait` seconds after its first member arrived, naming every member that
  arrived meanwhile;
- then, while it changes (new members), at most once per `group_interval`;
- unchanged but still failing, the same again every `repeat_interval` (0: never): for
  grouped problems this takes the place of `renotify`.

A node leaves its group when its check speaks of another status, and joins that one. A
problem group whose members have all left ends. A recovery is said only of a problem that
was said: a node failing and recovering within `group_wait` says nothing at all. A
recovered group names the nodes recovered since its last message, and ends once
`group_interval` passed after that message with nothing more.

The groups live in the cluster state, one small document per output and check (`load_doc`,
`save_doc`: set only if unchanged), so every shipper sees the same groups. Due messages are
claimed first (compare-and-set, with a lease of a minute or so): two shippers never post
one group twice, and a shipper killed between the claim and the post leaves the claim to
expire, then another posts it (said twice at worst, never lost).
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from glob import escape as glob_escape

from accre_monitor import log
from accre_monitor.codec import encode
from accre_monitor.outcome import DELIVERED, REJECTED, StoreUnavailable, describe
from accre_monitor.outputs.notify import RECOVERY, SPEAKS
from accre_monitor.outputs.slack_format import (
    COLORS,
    SENDER,
    SHORT_MAX,
    duration,
    escape,
    trim,
    utc,
    when,
)
from accre_monitor.status import CRITICAL, OK, SEVERITY

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from accre_monitor.outcome import Outcome
    from accre_monitor.outputs.slack_format import Notice
    from accre_monitor.pipeline.state import StateStore

    Post = Callable[[bytes, float], tuple[Outcome, Outcome | None]]

PREFIX = "slack-groups/"  # document keys: PREFIX + output + "/" + check
NODES_NAMED = 10  # nodes a message names; the rest are a count
DIGEST_LINES = 20
DIGEST_NODES = 8
SAVE_ATTEMPTS = 50  # compare-and-set rounds before the groups are called busy
BACKOFF_MAX = 60.0  # seconds between two flushes after failed posts, at most

FIRST = "first"
UPDATE = "update"
REPEAT = "repeat"


# -- the rules: pure functions on one check's document ----------------------------------------


def group_status(notice: Notice) -> str:
    """The group a speaking notice joins: its status, or OK for a recovery."""
    return OK if notice.verdict == RECOVERY or notice.status == OK else notice.status


def member_of(notice: Notice, now: float) -> dict[str, Any]:
    """What a group keeps of one member: enough to name it and give it as an example."""
    short = notice.record.get("short")
    return {
        "id": notice.record["id"],
        "taken": notice.taken,
        "first": notice.taken,  # taken at its first result in this group
        "joined": now,
        "short": trim(short.strip(), SHORT_MAX) if isinstance(short, str) else "",
        "before": notice.before,
        "recovery": notice.verdict == RECOVERY,
        "said": False,
    }


def new_group(now: float) -> dict[str, Any]:
    return {"started": now, "sent": None, "members": {}, "claim": None}


def claimed(group: dict[str, Any], now: float) -> bool:
    claim = group.get("claim")
    return bool(claim) and claim["until"] > now


def ended(group: dict[str, Any], status: str, now: float, interval: float) -> bool:
    """A group with nobody left ends (a recovered group once `interval` passed after its
    last message, so that recoveries close behind it wait for that, not `group_wait`)."""
    if group["members"]:
        return False
    if status != OK or group["sent"] is None:
        return True
    return now >= group["sent"] + interval and not claimed(group, now)


def join(doc: dict[str, Any], node: str, status: str, member: dict[str, Any], now: float) -> bool:
    """Put `node` in the group `status` of this check's document, out of every other one;
    whether the document changed."""
    groups = doc["groups"]
    changed = False
    said: bool | None = None  # whether the problem it leaves was said (None: it had none)
    for other, group in list(groups.items()):
        if other == status:
            continue
        gone = group["members"].pop(node, None)
        if gone is None:
            continue
        changed = True
        if other != OK:  # said in this group or an earlier one; being posted counts too
            said = bool(said) or gone["said"] or gone.get("told", False) or claimed(group, now)
        if not group["members"] and (other != OK or group["sent"] is None):
            del groups[other]
    if status == OK and member["recovery"] and said is False:
        return changed  # the problem was never said: nor is its end
    if status != OK and said:  # a problem said under another status: its end will be
        member = {**member, "told": True}
    group = groups.get(status)
    if group is None:
        group = groups[status] = new_group(now)
    old = group["members"].get(node)
    if old is None:
        group["members"][node] = member
        return True
    if old["id"] == member["id"]:  # the same record again: nothing new
        return changed
    # a newer result of the same status: the member stays as it was said
    group["members"][node] = {
        **member,
        "first": old["first"],
        "said": old["said"],
        "told": old.get("told", False),
    }
    return True


def due_at(
    group: dict[str, Any], status: str, now: float, wait: float, interval: float, repeat: float
) -> float | None:
    """When the group's next message is due (None: none is owed)."""
    members = group["members"]
    if not members or claimed(group, now):
        return None
    if group["sent"] is None:
        return group["started"] + wait
    if any(not m["said"] for m in members.values()):
        return group["sent"] + interval
    if status != OK and repeat:
        return group["sent"] + repeat
    return None


def kind_of(group: dict[str, Any]) -> str:
    if group["sent"] is None:
        return FIRST
    if any(not m["said"] for m in group["members"].values()):
        return UPDATE
    return REPEAT


def settle_sent(group: dict[str, Any], status: str, nodes: list[str], now: float) -> None:
    """The message naming `nodes` went out: they are said (a recovered group forgets them)."""
    group["sent"] = now
    group["claim"] = None
    members = group["members"]
    for node in nodes:
        if node not in members:
            continue
        if status == OK:
            del members[node]
        else:
            members[node]["said"] = True


# -- the messages -----------------------------------------------------------------------------


class Due:
    """One group's message, claimed: what it says and whom it names."""

    __slots__ = ("key", "check", "status", "kind", "members", "total", "since")

    def __init__(
        self, key: str, check: str, status: str, group: dict[str, Any], total: int
    ) -> None:
        self.key = key
        self.check = check
        self.status = status
        self.kind = kind_of(group)
        self.members: dict[str, dict[str, Any]] = dict(group["members"])
        self.total = max(total, len(self.members))
        self.since = min(m["first"] for m in self.members.values())

    @property
    def nodes(self) -> list[str]:
        return sorted(self.members)

    @property
    def new(self) -> list[str]:
        return sorted(n for n, m in self.members.items() if not m["said"])

    @property
    def recovered(self) -> bool:
        return self.status == OK and any(m["recovery"] for m in self.members.values())

    @property
    def word(self) -> str:
        return "recovered" if self.recovered else self.status

    def headline(self) -> str:
        """`ib_link CRITICAL on 37 of 1200 nodes`, and what kind of message it is."""
        return f"{self.check} {self.word} {self.extent()}"

    def extent(self) -> str:
        """`on 37 of 1200 nodes (3 new)`: how many nodes, and what changed."""
        text = f"on {len(self.members)} of {self.total} {nodes_word(self.total)}"
        if self.recovered:
            before = sorted({m["before"] for m in self.members.values() if m["before"]})
            if before:
                text += f" (from {', '.join(before)})"
        elif self.kind == UPDATE and self.status != OK:
            text += f" ({len(self.new)} new)"
        elif self.kind == REPEAT:
            text += f" (still, since {utc(self.since)})"
        return text

    def color(self) -> str:
        return COLORS[OK if self.status == OK else self.status]

    def lines(self, late_after: float) -> list[str]:
        lines = []
        if self.kind != REPEAT:  # of the results this message is the first to tell
            late = late_line([self.members[node] for node in self.new], late_after)
            if late:
                lines.append(late)
        if self.kind == UPDATE and self.status != OK:
            lines.append(f"*New:* {escape(named(self.new, NODES_NAMED))}")
        lines.append(f"*Nodes:* {escape(named(self.nodes, NODES_NAMED))}")
        example = (self.new if self.kind == UPDATE else []) or self.nodes
        for node in example:
            short = self.members[node]["short"]
            if short:
                lines.append(f"*{escape(node)}:* {escape(short)}")
                break
        return lines

    def span(self) -> tuple[float, float]:
        taken = [m["taken"] for m in self.members.values()]
        return min(taken), max(taken)


def nodes_word(count: int) -> str:
    return "node" if count == 1 else "nodes"


def named(nodes: list[str], limit: int) -> str:
    """The first `limit` nodes by name, and the rest as a count."""
    text = ", ".join(nodes[:limit])
    more = len(nodes) - limit
    return text + (f" and {more} more" if more > 0 else "")


def late_line(members: list[dict[str, Any]], late_after: float) -> str | None:
    """The "Late" line, when results reached the output more than `late_after` after they
    were taken (they waited in a spool or a backlog; waiting in the group is not late)."""
    late = [m for m in members if m["joined"] - m["taken"] > late_after]
    if not late:
        return None
    first = min(m["taken"] for m in late)
    last = max(m["taken"] for m in late)
    taken = when(first) if int(first) == int(last) else f"between {when(first)} and {when(last)}"
    delay = max(m["joined"] - m["taken"] for m in late)
    which = "taken" if len(late) == len(members) else f"{len(late)} of these results taken"
    return f":hourglass: *Late:* {which} {taken}, up to {duration(delay)} before they arrived"


def group_message(due: Due, channel: str, late_after: float) -> dict[str, Any]:
    """The webhook payload for one group."""
    title = due.headline()
    first, last = due.span()
    span = utc(first) if int(first) == int(last) else f"{utc(first)} to {utc(last)}"
    attachment = {
        "color": due.color(),
        "fallback": escape(title),
        "title": escape(title),
        "text": "\n".join(due.lines(late_after)),
        "footer": f"results taken {span} · {SENDER}",
        "ts": int(last),
        "mrkdwn_in": ["text"],
    }
    return payload(channel, attachment)


def groups_digest(dues: list[Due], channel: str) -> dict[str, Any]:
    """One payload for many groups due at once: one line per group, the worst first."""
    ordered = sorted(dues, key=lambda d: (-severity(d.status), d.check))
    tally: dict[str, int] = {}
    for due in ordered:
        tally[due.word] = tally.get(due.word, 0) + 1
    title = f"{len(dues)} groups of results: " + ", ".join(f"{n} {w}" for w, n in tally.items())
    lines = [
        f"*{d.word}* {escape(d.check)} {escape(d.extent())}: "
        + escape(named(d.nodes, DIGEST_NODES))
        for d in ordered[:DIGEST_LINES]
    ]
    if len(ordered) > DIGEST_LINES:
        lines.append(f"… and {len(ordered) - DIGEST_LINES} more groups")
    first = min(d.span()[0] for d in dues)
    last = max(d.span()[1] for d in dues)
    span = utc(first) if int(first) == int(last) else f"{utc(first)} to {utc(last)}"
    worst = ordered[0]
    attachment = {
        "color": worst.color(),
        "fallback": escape(title),
        "title": escape(title),
        "text": "\n".join(lines),
        "footer": f"digest of groups, results taken {span} · {SENDER}",
        "ts": int(last),
        "mrkdwn_in": ["text"],
    }
    return payload(channel, attachment)


def severity(status: str) -> int:
    """Severity, CRITICAL before UNKNOWN on a tie."""
    return 2 * SEVERITY[status] + (status == CRITICAL)


def payload(channel: str, attachment: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"username": SENDER, "attachments": [attachment]}
    if channel:
        body["channel"] = channel
    return body


# -- the groups of one output, in the cluster state -------------------------------------------


class Groups:
    """The groups of one Slack output: `join` as records speak, `flush` as messages fall due.

    `open_store` opens the cluster state when it is first needed; `post(body, deadline)`
    sends one message and answers (its outcome, the outcome of every later one or None).
    """

    def __init__(
        self,
        output: str,
        *,
        wait: float,
        interval: float,
        repeat: float,
        open_store: Callable[[], StateStore],
        channel: str = "",
        late_after: float = 120.0,
        digest_threshold: int = 0,
        claim_seconds: float = 60.0,
    ) -> None:
        self.output = output
        self.wait = wait
        self.interval = interval
        self.repeat = repeat
        self.channel = channel
        self.late_after = late_after
        self.digest_threshold = digest_threshold
        self.claim_seconds = claim_seconds
        self.holder = uuid.uuid4().hex  # whose claim it is
        self._open_store = open_store
        self._store: StateStore | None = None
        self._flushing = threading.Lock()
        self._failures = 0
        self._quiet_until = 0.0  # after failed posts: no flush before this (`now`'s clock)

    def __repr__(self) -> str:
        return f"Groups({self.output!r}, wait={self.wait:g}, interval={self.interval:g})"

    @property
    def prefix(self) -> str:
        return f"{PREFIX}{self.output}/"

    def key(self, check: str) -> str:
        return self.prefix + check

    # -- joining ------------------------------------------------------------------------

    def join(self, notices: list[Notice], now: float | None = None) -> None:
        """Put each speaking notice in its group; StoreUnavailable when the state cannot
        keep them (the records then wait, and their checks with them)."""
        now = time.time() if now is None else now
        by_check: dict[str, list[Notice]] = {}
        for notice in notices:
            if notice.verdict in SPEAKS:
                by_check.setdefault(notice.check, []).append(notice)
        for check, members in by_check.items():
            key = self.key(check)

            def change(doc: dict[str, Any], members: list[Notice] = members) -> bool:
                changed = False
                for notice in members:
                    status = group_status(notice)
                    changed |= join(doc, notice.node, status, member_of(notice, now), now)
                return changed

            self._update(key, check, change)

    def _update(self, key: str, check: str, change: Callable[[dict[str, Any]], bool]) -> bool:
        """Apply `change` to the document `key` and save it if unchanged meanwhile (else
        read it again and redo); whether it was saved. `change` answers whether it changed
        anything; a document left with no group is deleted."""
        for _ in range(SAVE_ATTEMPTS):
            doc, version = self._store_call("load_doc", key)
            if doc is None:
                doc = {"output": self.output, "check": check, "groups": {}}
            if not change(doc):
                return False
            value = doc if doc["groups"] else None
            if value is None and version == 0:
                return True
            if self._store_call("save_doc", key, value, version):
                return True
        raise StoreUnavailable(f"{self.output}: the notification groups of {check} stay busy")

    # -- flushing -----------------------------------------------------------------------

    def flush(self, post: Post, deadline: float, now: float | None = None) -> int:
        """Post the messages that are due (several groups at once as one digest when there
        are more than `digest_threshold`); how many messages went out. A message that cannot
        go out now keeps its group due."""
        now = time.time() if now is None else now
        if now < self._quiet_until or not self._flushing.acquire(blocking=False):
            return 0
        try:
            dues = self._claim_due(now)
            if not dues:
                return 0
            return self._post_all(dues, post, deadline, now)
        except StoreUnavailable as exc:
            log.warning("cannot read the notification groups", output=self.output, error=str(exc))
            return 0
        finally:
            self._flushing.release()

    def _claim_due(self, now: float) -> list[Due]:
        """Claim every group whose message is due (ending those that ended), each document
        in one compare-and-set: a group another process claimed or changed meanwhile is
        left for the next flush."""
        dues: list[Due] = []
        totals: dict[str, int] = {}
        for key in self._store_call("doc_keys", self.prefix):
            doc, version = self._store_call("load_doc", key)
            if not doc:
                continue
            check = doc["check"]
            claims: list[str] = []
            changed = not doc["groups"]  # (an empty document is removed)
            for status, group in list(doc["groups"].items()):
                if ended(group, status, now, self.interval):
                    del doc["groups"][status]
                    changed = True
                    continue
                due = due_at(group, status, now, self.wait, self.interval, self.repeat)
                if due is not None and due <= now:
                    group["claim"] = {"by": self.holder, "until": now + self.claim_seconds}
                    claims.append(status)
                    changed = True
            if not changed:
                continue
            if not self._store_call("save_doc", key, doc if doc["groups"] else None, version):
                continue
            for status in claims:
                if check not in totals:
                    totals[check] = self._total(check)
                dues.append(Due(key, check, status, doc["groups"][status], totals[check]))
        return dues

    def _post_all(self, dues: list[Due], post: Post, deadline: float, now: float) -> int:
        if self.digest_threshold and len(dues) > self.digest_threshold:
            messages = [(groups_digest(dues, self.channel), dues)]
        else:
            messages = [(group_message(d, self.channel, self.late_after), [d]) for d in dues]
        posted = 0
        for position, (body, members) in enumerate(messages):
            outcome, _ = post(encode(body), deadline)
            if outcome.state == DELIVERED:
                posted += 1
            elif outcome.state == REJECTED:  # Slack refuses this message: never again
                log.error(
                    "Slack refused a group's message", output=self.output, error=outcome.error
                )
            else:  # not now: it and the rest stay due
                self._release([d for _, group in messages[position:] for d in group], now)
                self._back_off(outcome, now)
                break
            self._settle(members, now)
        else:
            self._failures = 0
        return posted

    def _back_off(self, outcome: Outcome, now: float) -> None:
        self._failures += 1
        wait = min(2.0 ** (self._failures - 1), BACKOFF_MAX)
        self._quiet_until = now + max(wait, outcome.retry_after or 0.0)
        log.warning(
            "a group's message could not be posted; it stays due",
            output=self.output,
            error=outcome.error,
            retry_in=round(self._quiet_until - now, 1),
        )

    def _settle(self, dues: list[Due], now: float) -> None:
        for due in dues:

            def change(doc: dict[str, Any], due: Due = due) -> bool:
                group = doc["groups"].get(due.status)
                if group is None:
                    return False
                settle_sent(group, due.status, due.nodes, now)
                if ended(group, due.status, now, self.interval) and due.status != OK:
                    del doc["groups"][due.status]
                return True

            self._settle_one(due, change)

    def _release(self, dues: list[Due], now: float) -> None:
        for due in dues:

            def change(doc: dict[str, Any], due: Due = due) -> bool:
                group = doc["groups"].get(due.status)
                if group is None or not group.get("claim"):
                    return False
                if group["claim"]["by"] != self.holder:
                    return False
                group["claim"] = None
                return True

            self._settle_one(due, change)

    def _settle_one(self, due: Due, change: Callable[[dict[str, Any]], bool]) -> None:
        try:
            self._update(due.key, due.check, change)
        except StoreUnavailable as exc:  # the claim expires by itself
            log.warning("cannot record a group's message", output=self.output, error=str(exc))

    # -- the state --------------------------------------------------------------------------

    def _total(self, check: str) -> int:
        """How many nodes the state knows for `check`."""
        store = self.store()
        count = getattr(store, "count_check", None)
        try:
            if count is not None:
                return int(count(check))
            return len(store.entries(check=glob_escape(check)))
        except Exception as exc:  # noqa: BLE001 - the message goes out without the total
            log.warning("cannot count the nodes of a check", check=check, error=describe(exc))
            return 0

    def store(self) -> StateStore:
        if self._store is None:
            self._store = self._open_store()
        return self._store

    def _store_call(self, method: str, *args: Any) -> Any:
        """A call to the state; whatever fails there is the store's failure."""
        try:
            return getattr(self.store(), method)(*args)
        except StoreUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - SQLite's, Redis's or the network's
            raise StoreUnavailable(f"{self.output}: the cluster state: {describe(exc)}") from None

    def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            with contextlib.suppress(Exception):  # a store already gone: nothing to release
                store.close()
