"""The event bus: a result record is published once and every output gets it.

Each subscriber is an output behind its filter stages. The in-process bus hands the
record to synchronous outputs at once; remote outputs are delivered through a
`Deliverer` (inline with a deadline, falling back to the durable spool). A bus backed by
RabbitMQ implements the same `publish`/`close` interface.
"""

from __future__ import annotations

from accre_monitor import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Subscriber:
    """An output and the filter stages in front of it."""

    __slots__ = ("output", "stages")

    def __init__(self, output: Any, stages: list | None = None) -> None:
        self.output = output
        self.stages = stages or []

    def wants(self, record: dict[str, Any]) -> bool:
        return all(stage(record) for stage in self.stages)


class Bus:
    """What every bus does: take a record for all subscribers, and finish cleanly."""

    def publish(self, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class InProcessBus(Bus):
    """Delivers in this process: synchronous outputs now, remote ones through `deliverer`."""

    def __init__(self, subscribers: list[Subscriber], deliverer: Any = None) -> None:
        self.subscribers = subscribers
        self.deliverer = deliverer

    def publish(self, record: dict[str, Any]) -> None:
        """Hand `record` to every subscriber that wants it; one failing output spares the rest."""
        remote = []
        for subscriber in self.subscribers:
            if not subscriber.wants(record):
                continue
            output = subscriber.output
            if not output.synchronous:
                remote.append(output)
                continue
            try:
                output.emit(record)
            except Exception as exc:
                log.error("output failed", output=output.name, error=f"{type(exc).__name__}: {exc}")
        if remote:
            self.deliverer.deliver(record, remote)

    def close(self) -> None:
        if self.deliverer is not None:
            self.deliverer.close()
