"""The `state` destination: every record goes through the cluster state.

On the in-process bus the run hands each record to it first (before the other remote
outputs); on the RabbitMQ bus it is the queue `PREFIX.state`, bound to every record and
consumed by every shipper (the store serialises the updates). Like any remote output its
records are retried, spooled and dead-lettered by the one delivery policy: a state store
that is down holds records back, never loses them. A record the state cannot take (no
node, a date that is not ISO 8601) is refused alone.

Taking a record twice changes nothing, and an older record never rewinds the state: so it
needs no order, and a notifier may take a record itself first (state first, then
notification) whichever of the two comes first.
"""

from __future__ import annotations

from accre_monitor.outcome import DELIVERED, REJECTED, Outcome
from accre_monitor.outputs.remote import RemoteOutput
from accre_monitor.pipeline.state import is_real

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class StateOutput(RemoteOutput):
    settings_keys: dict[str, Any] = {"timeout": 5.0, "batch_size": 500}

    def __init__(self, name: str, settings: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(name, settings, **kw)
        self.state_store()  # now: a URL it cannot use is a configuration problem, said once

    def __repr__(self) -> str:
        return f"StateOutput({self.state_store()!r})"

    def write_batch(self, items: list[dict[str, Any]], timeout: float) -> list[Outcome]:
        return [
            Outcome(REJECTED, f"the state cannot take it: {taken.problem}")
            if taken.problem is not None
            # a record the watchdog made was taken before it was published: meeting it
            # again from the bus is how it flows, not a redelivery
            else Outcome(
                DELIVERED, duplicate=not taken.applied and taken.current and is_real(taken.record)
            )
            for taken in self.state_store().take(items)
        ]
