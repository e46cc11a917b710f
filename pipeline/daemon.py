"""What the shipper's parts share: how they learn to stop, and how a batch is logged."""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

from accre_monitor import log
from accre_monitor.pipeline.ship_metrics import NO_METRICS, ShipMetrics

TYPE_CHECKING = False
if TYPE_CHECKING:
    from accre_monitor.pipeline.delivery import Settled


class Stopping:
    """Set by SIGTERM/SIGINT; everything waits on it instead of sleeping.

    The signal handler only writes the signal's number to a pipe: it runs in the main
    thread between two bytecodes, possibly while that thread holds the lock of a log line
    being written or of the event, and taking either again there would hang the shipper for
    good. A thread of its own reads the pipe, logs and sets the event."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> None:
        read_end, write_end = os.pipe()

        def handler(signum: int, frame: Any) -> None:
            os.write(write_end, bytes((signum,)))  # no lock taken: see the docstring

        threading.Thread(target=self._watch, args=(read_end,), name="signals", daemon=True).start()
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def _watch(self, read_end: int) -> None:
        while True:
            signum = os.read(read_end, 1)[0]
            log.info("stopping", signal=signal.Signals(signum).name)
            self.event.set()

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
