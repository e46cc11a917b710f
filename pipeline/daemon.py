"""What the shipper's parts share: how they learn to stop, and how a batch is logged."""

from __future__ import annotations

import signal
import threading
from typing import Any

from accre_monitor import log


class Stopping:
    """Set by SIGTERM/SIGINT; everything waits on it instead of sleeping."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        def handler(signum: int, frame: Any) -> None:
            log.info("stopping", signal=signal.Signals(signum).name)
            self.event.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def __bool__(self) -> bool:
        return self.event.is_set()

    def wait(self, seconds: float) -> bool:
        return self.event.wait(max(seconds, 0))


def log_batch(output: str, source: str, counts: tuple, seconds: float, **extra: Any) -> None:
    delivered, retried, dead, expired = counts
    log.info(
        "batch",
        output=output,
        source=source,
        delivered=delivered,
        retried=retried,
        dead=dead,
        expired=expired,
        seconds=round(seconds, 3),
        **extra,
    )
