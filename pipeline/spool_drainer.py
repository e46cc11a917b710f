"""The node's spool, drained continuously: each output gets what the spool owes it as its
entries come due (with `[spool] inline = false` this is all the delivering a node does).
"""

from __future__ import annotations

import time
from typing import Any

from accre_monitor import log
from accre_monitor.pipeline.daemon import Stopping, log_batch
from accre_monitor.pipeline.delivery import drain
from accre_monitor.pipeline.ship_metrics import NO_METRICS, ShipMetrics
from accre_monitor.pipeline.spool import Spool

FLUSH_EVERY = 1.0  # seconds between two calls of an output's `flush_due` (grouped messages)


class SpoolDrainer:
    """Delivers what the local spool owes each output, as entries come due."""

    def __init__(
        self,
        config: Any,
        outputs: dict[str, Any],
        stopping: Stopping,
        metrics: ShipMetrics = NO_METRICS,
    ) -> None:
        self.config = config
        self.outputs = outputs
        self.stopping = stopping
        self.metrics = metrics
        self.spool = Spool.from_config(config)
        self.poll = float(config.bus["batch_wait"])
        self.flushed: dict[str, float] = {}

    def run(self) -> None:
        while not self.stopping:
            busy = False
            for name, output in self.outputs.items():
                if self.stopping:
                    break
                self._flush(name, output)
                try:
                    if not self.spool.exists():
                        continue
                    started = time.monotonic()
                    for settled in drain(
                        self.spool, output, 100_000, time.monotonic() + 60, due_only=True
                    ):
                        busy = True
                        seconds = time.monotonic() - started
                        log_batch(name, "spool", settled, seconds, self.metrics)
                        started = time.monotonic()
                        if self.stopping:
                            break
                except Exception as exc:  # a broken spool or output must not end the daemon
                    log.error("cannot drain the spool", output=name, error=str(exc))
            if not busy:
                self.stopping.wait(self._idle())
        self.spool.close()

    def _flush(self, name: str, output: Any) -> None:
        """Let the output post what fell due with time (grouped messages), about once a
        second, in this thread (the one that delivers its batches)."""
        flush = getattr(output, "flush_due", None)
        if flush is None or time.monotonic() - self.flushed.get(name, 0.0) < FLUSH_EVERY:
            return
        self.flushed[name] = time.monotonic()
        try:
            flush()
        except Exception as exc:  # the output keeps what it owes; the daemon goes on
            log.error("cannot post what fell due", output=name, error=str(exc))

    def _idle(self) -> float:
        """How long to wait for work: `batch_wait`, or until the next flush is due."""
        if not self.flushed:
            return self.poll
        due = min(self.flushed.values()) + FLUSH_EVERY - time.monotonic()
        return min(self.poll, max(due, 0.05))
