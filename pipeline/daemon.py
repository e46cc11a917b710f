"""What the shipper's parts share: how they learn to stop, and how a batch is logged."""

from __future__ import annotations

import signal
import threading
from typing import Any

from accre_monitor import log
from accre_monitor.pipeline.ship_metrics import NO_METRICS, ShipMetrics

TYPE_CHECKING = False
if TYPE_CHECKING:
    from accre_monitor.pipeline.delivery import Settled


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


def log_batch(
    output: str,
    source: str,
    settled: Settled,
    seconds: float,
    metrics: ShipMetrics = NO_METRICS,
    **extra: Any,
) -> None:
    """The one line every settled batch gets, and what the metrics learn from it."""
    log.info(
        "batch",
        output=output,
        source=source,
        delivered=settled.delivered,
        retried=settled.retried,
        dead=settled.dead,
        expired=settled.expired,
        seconds=round(seconds, 3),
        **extra,
    )
    metrics.batch(output, source, settled, seconds)
