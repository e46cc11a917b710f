"""Building the bus a run publishes to, from the config and the chosen outputs.

`[bus] kind` chooses the bus: `inprocess` (the default) or `rabbitmq`. Problems of a
delivery setting (an output's bad setting, a bad filter, a missing client package) are
reported once and never stop the run; only an unknown output name is the caller's error.
"""

from __future__ import annotations

from accre_monitor.config import Config
from accre_monitor.errors import ConfigError, UserError
from accre_monitor.outputs import FILTER_KEYS
from accre_monitor.pipeline.bus import Bus, Destination, InProcessBus

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def filter_stages(name: str, config: Config) -> list[Any]:
    """The filter stages in front of output `name`: its preset ones, then its section's.

    A bad filter setting is reported and left out (the output then takes more records,
    never fewer: nothing is lost). An output that notifies on change gets no severity stage:
    it must see every status to notice recoveries, and applies the level itself.
    """
    from accre_monitor.outputs import preset_filters, section_of, severity_in_output

    section = section_of(name)
    layers = [(name, preset_filters(name)), (section, config.output_section(section))]
    if severity_in_output(name, layers[1][1]):
        layers = [(label, _without(settings, "min_severity")) for label, settings in layers]
    if not any(key in settings for _, settings in layers for key in FILTER_KEYS):
        return []
    from accre_monitor.pipeline.filters import stages_from_settings

    stages: list[Any] = []
    for label, settings in layers:
        for key in FILTER_KEYS:
            if key not in settings:
                continue
            try:
                stages += stages_from_settings(label, {key: settings[key]})
            except ConfigError as exc:
                config.problem(f"{exc}; the filter is left out")
    return stages


def _without(settings: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k != key}


def destination(name: str, config: Config) -> Destination:
    """Output `name` behind its filter stages; UserError for an unknown output."""
    from accre_monitor.outputs import (
        build_output,
        is_known_output,
        is_synchronous,
        unknown_output_error,
    )

    if not is_known_output(name):
        raise UserError(unknown_output_error(name))
    stages = filter_stages(name, config)
    if not is_synchronous(name):
        return Destination(
            name, stages, synchronous=False, factory=lambda: build_output(name, config)
        )
    try:
        output = build_output(name, config)
    except ConfigError as exc:
        # a synchronous output always renders: with the default of each bad setting
        output = _with_defaults(name, config, exc)
    return Destination(name, stages, synchronous=True, output=output)


def _with_defaults(name: str, config: Config, error: ConfigError) -> Any:
    """Output `name` built with the default in place of each bad setting (only those: a bad
    `stale_after` must not send the file to the default path), else all defaults."""
    from accre_monitor.outputs import create_output, section_of

    section = section_of(name)
    settings = dict(config.output_section(section))
    for _ in range(len(settings) + 1):
        key = error.key
        config.problem(f"{error}; using its default" if key in settings else f"{error}")
        if key not in settings:
            break
        del settings[key]
        try:
            return create_output(name, settings, section=section, source=config.path)
        except ConfigError as exc:
            error = exc
    config.problem(f"output {name}: using the defaults")
    return create_output(name, {}, source=config.path)


def build_destinations(config: Config, output_names: list[str] | None = None) -> list[Destination]:
    """The run's destinations; the cluster state first when the config keeps it (records
    reach the state before any output that decides from it), unless `output_names`
    overrides the configured outputs."""
    names = output_names or config.outputs
    if not output_names and config.keeps_state:
        names = ["state", *names]
    return [destination(name, config) for name in dict.fromkeys(names)]


def build_bus(config: Config, output_names: list[str] | None = None) -> Bus:
    """The bus for one run: `output_names` overrides the configured outputs."""
    destinations = build_destinations(config, output_names)
    remote = any(not d.synchronous for d in destinations)
    if remote and config.bus["kind"] == "rabbitmq":
        from accre_monitor.pipeline.rabbitmq_bus import RabbitBus

        return RabbitBus(config, destinations)
    deliverer = None
    if remote:
        from accre_monitor.pipeline.delivery import InlineDeliverer, SpoolingDeliverer

        deliverer = InlineDeliverer(config) if config.spool["inline"] else SpoolingDeliverer(config)
    return InProcessBus(destinations, deliverer)
