"""Replay: deliver what the spool owes, in order, in batches, and say how it went."""

from __future__ import annotations

import sys
import time
from typing import Any

from accre_monitor.pipeline.delivery import drain
from accre_monitor.pipeline.spool import Spool


class ReplaySummary:
    __slots__ = ("delivered", "retried", "dead", "left")

    def __init__(self) -> None:
        self.delivered = self.retried = self.dead = self.left = 0

    @property
    def complete(self) -> bool:
        return self.retried == 0 and self.dead == 0 and self.left == 0


def replay(
    spool: Spool,
    outputs: list[Any],
    due_only: bool = True,
    progress: Any = None,
    time_limit: float = 3600.0,
) -> dict[str, ReplaySummary]:
    """Deliver everything due for each output; stops an output at its first failing batch."""
    summaries: dict[str, ReplaySummary] = {}
    for output in outputs:
        summary = summaries[output.name] = ReplaySummary()
        total = spool.pending(output.name)
        deadline = time.monotonic() + time_limit
        for delivered, retried, dead in drain(spool, output, total, deadline, due_only=due_only):
            summary.delivered += delivered
            summary.retried += retried
            summary.dead += dead
            if progress:
                progress(output.name, summary.delivered + summary.retried + summary.dead, total)
        summary.left = spool.pending(output.name)
    return summaries


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
