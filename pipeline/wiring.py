"""Building the bus a run publishes to, from the config and the chosen outputs."""

from __future__ import annotations

from accre_monitor.config import Config
from accre_monitor.pipeline.bus import InProcessBus, Subscriber

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def build_subscribers(config: Config, output_names: list[str]) -> list[Subscriber]:
    """One subscriber per output name, each behind the filters its section asks for."""
    from accre_monitor.outputs import create_output

    subscribers = []
    for name in dict.fromkeys(output_names):
        settings = config.output_section(name)
        stages: list[Any] = []
        if any(key in settings for key in ("min_severity", "checks", "exclude_checks")):
            from accre_monitor.pipeline.filters import stages_from_settings

            stages = stages_from_settings(name, settings)
        output = create_output(name, settings)
        stages = list(getattr(output, "default_stages", [])) + stages
        subscribers.append(Subscriber(output, stages))
    return subscribers


def build_bus(config: Config, output_names: list[str] | None = None) -> InProcessBus:
    """The bus for one run: `output_names` overrides the configured outputs."""
    subscribers = build_subscribers(config, output_names or config.outputs)
    deliverer = None
    if any(not s.output.synchronous for s in subscribers):
        from accre_monitor.pipeline.delivery import InlineDeliverer

        deliverer = InlineDeliverer(config)
    return InProcessBus(subscribers, deliverer)
