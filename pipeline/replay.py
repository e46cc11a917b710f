"""Replay: deliver what the spool owes, in order, in batches, and say how it went."""

from __future__ import annotations

import sys
import time
from typing import Any

from accre_monitor.pipeline.delivery import drain
from accre_monitor.pipeline.spool import Spool


class ReplaySummary:
    """What a replay did for one output, and what it left: entries still spooled, how many of
    them are backing off, and when the first of those is due (epoch seconds)."""

    __slots__ = ("delivered", "retried", "dead", "expired", "left", "backing_off", "next_due")

    def __init__(self) -> None:
        self.delivered = self.retried = self.dead = self.expired = self.left = 0
        self.backing_off = 0
        self.next_due: float | None = None

    @property
    def complete(self) -> bool:
        return self.retried == 0 and self.dead == 0 and self.left == 0


def replay(
    spool: Spool,
    outputs: list[Any],
    due_only: bool = False,
    progress: Any = None,
    time_limit: float = 3600.0,
) -> dict[str, ReplaySummary]:
    """Deliver what each output is owed (every entry, or with `due_only` only those whose
    backoff has passed); stops an output at its first batch that delivers nothing."""
    summaries: dict[str, ReplaySummary] = {}
    for output in outputs:
        summary = summaries[output.name] = ReplaySummary()
        total = spool.pending(output.name)
        deadline = time.monotonic() + time_limit
        for batch in drain(spool, output, total, deadline, due_only=due_only):
            summary.delivered += batch.delivered
            summary.retried += batch.retried
            summary.dead += batch.dead
            summary.expired += batch.expired
            if progress:
                done = summary.delivered + summary.retried + summary.dead + summary.expired
                progress(output.name, done, total)
        row = spool.stats().get(output.name)
        if row:
            summary.left = row["spooled"]
            summary.backing_off = row["spooled"] - row["due"]
            summary.next_due = row["next_due"]
    return summaries


def describe(name: str, summary: ReplaySummary, now: float | None = None) -> str:
    """One line a person reads: what was delivered, what failed, what is left and until when."""
    parts = [f"delivered {summary.delivered}"]
    if summary.retried:
        parts.append(f"failed {summary.retried} (kept, retried later)")
    if summary.dead:
        parts.append(f"dead-lettered {summary.dead}")
    if summary.expired:
        parts.append(f"expired {summary.expired}")
    parts.append(f"still spooled {summary.left}")
    if summary.backing_off and summary.next_due is not None:
        wait = max(0.0, summary.next_due - (time.time() if now is None else now))
        parts.append(f"{summary.backing_off} backing off, the first due in {wait:.0f} s")
    return f"{name}: " + ", ".join(parts)


def terminal_progress(stream: Any = None) -> Any:
    """A one-line progress bar on a terminal; nothing when stderr is not one."""
    stream = stream or sys.stderr
    if not stream.isatty():
        return None

    def show(output: str, done: int, total: int) -> None:
        width = 30
        filled = int(width * done / total) if total else width
        stream.write(f"\r{output:<16} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            stream.write("\n")
        stream.flush()

    return show
