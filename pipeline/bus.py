"""The event bus: a result record is published once and every output behind it gets it.

Each destination is an output behind its filter stages. Synchronous outputs (stdout and
friends) render at once, in the check's process, whatever the bus. Remote outputs go through
the bus's `Deliverer`: on the in-process bus, the inline deliverer (each store tried now with
a deadline, the spool taking what failed) or, with `[spool] inline = false`, the spool alone
(a shipper delivers). The RabbitMQ bus publishes the record once to the broker instead.
"""

from __future__ import annotations

from accre_monitor import log

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol

    from accre_monitor.pipeline.filters import Stage

    class Deliverer(Protocol):
        """What delivers a record to the remote destinations that want it."""

        def deliver(self, record: dict[str, Any], destinations: list[Destination]) -> None: ...

        def close(self) -> None: ...


def record_bytes(record: dict[str, Any]) -> bytes:
    """The record's compact JSON through the standard library's encoder: a run that spools,
    publishes or delivers one record need not pay for importing orjson."""
    from accre_monitor.record import to_json

    try:
        return to_json(record).encode()
    except (TypeError, ValueError):  # not from a check of ours: the pipeline's codec
        from accre_monitor.codec import encode

        return encode(record)


class Destination:
    """An output (by name) and the filter stages in front of it.

    A remote output is built only when something delivers to it: a run that just spools
    never imports a store's client, and a bad setting surfaces as a delivery problem
    (`build()` raises ConfigError), never as a failure of the check.
    """

    __slots__ = ("name", "stages", "synchronous", "_factory", "_output")

    def __init__(
        self,
        name: str,
        stages: list[Stage] | None = None,
        *,
        synchronous: bool,
        factory: Callable[[], Any] | None = None,
        output: Any = None,
    ) -> None:
        self.name = name
        self.stages = list(stages or [])
        self.synchronous = synchronous
        self._factory = factory
        self._output = output

    def wants(self, record: dict[str, Any]) -> bool:
        return all(stage.matches(record) for stage in self.stages)

    def build(self) -> Any:
        """The output instance (built once); ConfigError when its settings are wrong."""
        if self._output is None:
            if self._factory is None:
                raise RuntimeError(f"destination {self.name} has no output")
            self._output = self._factory()
        return self._output

    @property
    def built(self) -> Any:
        """The output if it was built, else None."""
        return self._output


class Bus:
    """What every bus does: take a record for all destinations, and finish cleanly."""

    def publish(self, record: dict[str, Any]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def emit_synchronous(record: dict[str, Any], destinations: list[Destination]) -> list[Destination]:
    """Render `record` on the synchronous destinations that want it (one failing spares the
    rest); return the remote destinations that want it."""
    remote = []
    for destination in destinations:
        if not destination.wants(record):
            continue
        if not destination.synchronous:
            remote.append(destination)
            continue
        output = destination.build()
        try:
            output.emit(record)
        except Exception as exc:
            log.error("output failed", output=output.name, error=f"{type(exc).__name__}: {exc}")
    return remote


class InProcessBus(Bus):
    """Delivers in this process: synchronous outputs now, remote ones through `deliverer`."""

    def __init__(self, destinations: list[Destination], deliverer: Deliverer | None = None):
        self.destinations = destinations
        self.deliverer = deliverer

    def publish(self, record: dict[str, Any]) -> None:
        remote = emit_synchronous(record, self.destinations)
        if remote and self.deliverer is not None:
            self.deliverer.deliver(record, remote)

    def close(self) -> None:
        if self.deliverer is not None:
            self.deliverer.close()
