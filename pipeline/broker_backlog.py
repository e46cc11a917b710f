"""Forwarding the records spooled for the broker (destination `broker` in the spool), oldest
first: the drain and replay machinery takes the forwarder like any store's output.
"""

from __future__ import annotations

import time

from accre_monitor.outcome import DELIVERED, RETRY, Outcome, StoreUnavailable
from accre_monitor.pipeline.amqp import BrokerUnavailable
from accre_monitor.pipeline.bus import record_bytes
from accre_monitor.pipeline.publisher import Publisher, Timeout

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

BROKER = "broker"  # the spool's name for records owed to the broker


class BrokerForwarder:
    """Delivers records spooled for the broker, as an output would (the drain and replay
    machinery takes it like any store): one Outcome per record, oldest first."""

    name = BROKER
    ordered = True
    single_consumer = False

    def __init__(self, config: Any, outputs: list[str], publisher: Publisher | None = None):
        self.publisher = publisher or Publisher(config, outputs)
        self.timeout = float(config.bus["connect_timeout"]) * 2
        self.batch_size = 500

    def deliver(self, records: list[dict[str, Any]], timeout: float) -> list[Outcome]:
        deadline = time.monotonic() + timeout
        outcomes: list[Outcome] = []
        for index, record in enumerate(records):
            try:
                self.publisher.publish(record, record_bytes(record), deadline)
            except (BrokerUnavailable, Timeout) as exc:
                if index == 0:
                    raise StoreUnavailable(str(exc)) from None
                outcomes += [Outcome(RETRY, str(exc))] * (len(records) - index)
                break
            outcomes.append(Outcome(DELIVERED))
        return outcomes

    def close(self) -> None:
        self.publisher.close()


def remote_outputs(config: Any) -> list[str]:
    """Every remote output the config defines: what the broker's topology is declared for."""
    from accre_monitor.outputs import is_known_output, is_synchronous

    return [n for n in config.defined_outputs() if is_known_output(n) and not is_synchronous(n)]
