"""The RabbitMQ bus: a run renders its synchronous outputs itself and publishes the record
once to the broker; shipper daemons deliver it to the stores.

The record is published persistent, with publisher confirms and `mandatory`, to the durable
topic exchange with the routing key `STATUS.check_name`, message id = record id, content type
JSON, the body exactly the record's JSON (any program can publish results the same way). The
run returns once the broker confirmed, or once the record is in the local spool for the
destination `broker` (broker unreachable, slow, refusing it, or finding no queue for it),
always within `[spool] inline_budget`; the exit code is always the check's own. Records
spooled for the broker are forwarded later, oldest first: by the next run in its time left,
by `accre-pipeline replay`, and by `accre-pipeline ship` running on the node.
"""

from __future__ import annotations

import os
import time

from accre_monitor import log
from accre_monitor.outcome import RETRY
from accre_monitor.pipeline.amqp import BrokerUnavailable, PikaMissing, load_pika
from accre_monitor.pipeline.broker_backlog import BROKER, BrokerForwarder, remote_outputs
from accre_monitor.pipeline.bus import Bus, Destination, emit_synchronous, record_bytes
from accre_monitor.pipeline.interruption import interrupt_on_sigterm
from accre_monitor.pipeline.publisher import Publisher, Timeout

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["BROKER", "RabbitBus", "remote_outputs"]


class RabbitBus(Bus):
    """Synchronous outputs now; one confirmed publish for the remote ones (or the spool)."""

    def __init__(self, config: Any, destinations: list[Destination]) -> None:
        self.config = config
        self.destinations = destinations
        self.publisher: Publisher | None = None
        self.spool: Any = None

    def publish(self, record: dict[str, Any]) -> None:
        if not emit_synchronous(record, self.destinations):
            return  # no remote output wants it: nothing to ship
        body = record_bytes(record)
        if not self.config.spool["inline"]:
            self._spool(record, body, None, attempts=0)
            return
        deadline = time.monotonic() + float(self.config.spool["inline_budget"])
        try:
            load_pika()  # the run's publish path: pika without its asyncio adapter
        except PikaMissing as exc:
            self.config.problem(f"{exc}; records are kept in the spool for the broker")
            self._spool(record, body, str(exc), quiet=True)
            return
        names = list(
            dict.fromkeys(
                [
                    *remote_outputs(self.config),
                    *(d.name for d in self.destinations if not d.synchronous),
                ]
            )
        )
        self.publisher = Publisher(self.config, names)
        restore = interrupt_on_sigterm()
        published = False
        try:
            if self._has_backlog():
                # older records wait for the broker: this one goes behind them, never ahead
                self._spool(record, body, None, attempts=0)
                published = True
                self._forward_backlog(names, deadline)
                from accre_monitor.pipeline.delivery import say_if_still_queued

                say_if_still_queued(self.spool, BROKER, record["id"])
                return
            self.publisher.publish(record, body, deadline)
            published = True
            if os.path.exists(self.config.spool["path"]):  # no spool file: no backlog
                self._forward_backlog(names, deadline)
        except (BrokerUnavailable, Timeout) as exc:
            self._spool(record, body, str(exc))
        except BaseException:
            if not published:  # interrupted (SIGTERM, ^C) before the broker confirmed
                self._spool(record, body, "interrupted")
            raise
        finally:
            restore()

    def _has_backlog(self) -> bool:
        """Whether records spooled earlier still wait for the broker (no spool file: none)."""
        from accre_monitor.pipeline.spool import Spool

        if not os.path.exists(self.config.spool["path"]):
            return False
        try:
            self.spool = self.spool or Spool.from_config(self.config)
            return self.spool.has_backlog(BROKER)
        except Exception:  # an unusable spool: publish directly
            return False

    def _spool(
        self,
        record: dict[str, Any],
        body: bytes,
        error: str | None,
        attempts: int = 1,
        quiet: bool = False,
    ) -> None:
        """Keep the record for the broker; `quiet` when its problem was reported already."""
        from accre_monitor.pipeline.delivery import spool_owed
        from accre_monitor.pipeline.spool import Spool

        if self.spool is None:
            self.spool = Spool.from_config(self.config)
        owed = [(record["id"], BROKER, body, error, RETRY, None)]
        spool_owed(self.spool, owed, attempts, quiet={BROKER} if quiet else None)

    def _forward_backlog(self, names: list[str], deadline: float) -> None:
        """The broker just took a record: forward what the spool still owes it, oldest first."""
        from accre_monitor.pipeline.delivery import drain
        from accre_monitor.pipeline.spool import Spool

        try:
            self.spool = self.spool or Spool.from_config(self.config)
            if not self.spool.has_backlog(BROKER):
                return
            forwarder = BrokerForwarder(self.config, names, self.publisher)
            limit = int(self.config.spool["drain_limit"])
            for _ in drain(self.spool, forwarder, limit, deadline, due_only=False):
                pass
        except Exception as exc:  # forwarding is a bonus; it must never fail the run
            log.warning("could not forward spooled records to the broker", error=str(exc))

    def close(self) -> None:
        if self.publisher is not None:
            self.publisher.close()
        if self.spool is not None:
            self.spool.close()
