"""The node's spool, drained continuously: each output gets what the spool owes it as its
entries come due (with `[spool] inline = false` this is all the delivering a node does).
"""

from __future__ import annotations

import time
from typing import Any

from accre_monitor import log
from accre_monitor.pipeline.daemon import Stopping, log_batch
from accre_monitor.pipeline.delivery import drain
from accre_monitor.pipeline.spool import Spool


class SpoolDrainer:
    """Delivers what the local spool owes each output, as entries come due."""

    def __init__(self, config: Any, outputs: dict[str, Any], stopping: Stopping) -> None:
        self.config = config
        self.outputs = outputs
        self.stopping = stopping
        self.spool = Spool.from_config(config)
        self.poll = float(config.bus["batch_wait"])

    def run(self) -> None:
        while not self.stopping:
            busy = False
            for name, output in self.outputs.items():
                if self.stopping:
                    break
                try:
                    if not self.spool.exists():
                        continue
                    started = time.monotonic()
                    for counts in drain(
                        self.spool, output, 100_000, time.monotonic() + 60, due_only=True
                    ):
                        busy = True
                        log_batch(name, "spool", counts, time.monotonic() - started)
                        started = time.monotonic()
                        if self.stopping:
                            break
                except Exception as exc:  # a broken spool or output must not end the daemon
                    log.error("cannot drain the spool", output=name, error=str(exc))
            if not busy:
                self.stopping.wait(self.poll)
        self.spool.close()
