"""Outputs: one module per output, registered here by name.

A synchronous output renders a record now, in the check's process (stdout and friends).
A remote output delivers batches of records to a store and says, per record, how it went.
Other packages can add outputs through the entry-point group `accre_monitor.outputs`
(name = "module:Class").

Everything outside `outputs/` reaches outputs through this registry: `build_output` turns an
output name and the config into a configured instance, or a ConfigError saying which setting
is wrong or which client package is missing.
"""

from __future__ import annotations

from accre_monitor.errors import ConfigError, UserError
from accre_monitor.util import import_module

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# output name -> "module:class"; modules are imported only when their output is used.
OUTPUTS: dict[str, str] = {
    "stdout": "accre_monitor.outputs.stdout:StdoutOutput",
    "nagios-stdout": "accre_monitor.outputs.nagios:NagiosOutput",
    "nagios-base64-stdout": "accre_monitor.outputs.nagios:NagiosBase64Output",
    "prometheus-textfile": "accre_monitor.outputs.prometheus_textfile:PrometheusTextfileOutput",
    "elasticsearch": "accre_monitor.outputs.elasticsearch:ElasticsearchOutput",
    "redis": "accre_monitor.outputs.redis:RedisOutput",
    "couch": "accre_monitor.outputs.couch:CouchOutput",
    "nagios-nsca": "accre_monitor.outputs.nsca:NscaOutput",
    "slack-all": "accre_monitor.outputs.slack:SlackOutput",
    "slack-warning": "accre_monitor.outputs.slack:SlackOutput",
    "slack-critical": "accre_monitor.outputs.slack:SlackOutput",
    # the cluster state, as a destination: every record goes through it (pipeline/state.py)
    "state": "accre_monitor.pipeline.state_output:StateOutput",
}
STATE = "state"

# Outputs known to render in the check's process, without importing their module.
SYNCHRONOUS = frozenset({"stdout", "nagios-stdout", "nagios-base64-stdout", "prometheus-textfile"})

# Outputs that share another output's `[outputs.SECTION]` settings, behind filter settings
# of their own: name -> (section, filter settings).
PRESETS: dict[str, tuple[str, dict[str, Any]]] = {
    "slack-all": ("slack", {}),
    "slack-warning": ("slack", {"min_severity": "WARNING"}),
    "slack-critical": ("slack", {"min_severity": "CRITICAL"}),
}

# Keys any `[outputs.NAME]` section may hold: the filter stages put in front of the output.
FILTER_KEYS = ("min_severity", "checks", "exclude_checks", "min_occurrences")

# Sections whose outputs can notify on change (`notify = "change"`): such an output must see
# every status to notice a recovery, so it applies its severity filter itself.
NOTIFY_ON_CHANGE = frozenset({"slack"})

ENTRY_POINT_GROUP = "accre_monitor.outputs"


def is_known_output(name: str) -> bool:
    return name in OUTPUTS or _from_entry_points(name) is not None


def is_known_section(name: str) -> bool:
    """Whether `[outputs.NAME]` configures some output (its own, or several presets')."""
    return is_known_output(name) or any(section == name for section, _ in PRESETS.values())


def unknown_output_error(name: str) -> str:
    return f"unknown output {name!r} (known outputs: {', '.join(sorted(OUTPUTS))})"


def section_of(name: str) -> str:
    """The `[outputs.X]` section an output reads its settings from."""
    preset = PRESETS.get(name)
    return preset[0] if preset else name


def preset_filters(name: str) -> dict[str, Any]:
    """The filter settings an output always has in front of it (none for most)."""
    preset = PRESETS.get(name)
    return dict(preset[1]) if preset else {}


def severity_in_output(name: str, settings: dict[str, Any]) -> bool:
    """Whether output `name`, with its section's `settings`, applies its severity filter
    itself instead of a filter stage (it notifies on change, and must see recoveries)."""
    return section_of(name) in NOTIFY_ON_CHANGE and settings.get("notify") == "change"


def reads_state(name: str, settings: dict[str, Any]) -> bool:
    """Whether output `name` decides from the cluster state: a notifier (Slack), or an
    output with `min_occurrences`."""
    return section_of(name) in NOTIFY_ON_CHANGE or bool(settings.get("min_occurrences"))


def is_synchronous(name: str) -> bool:
    """Whether the output renders in the check's process (known without building it)."""
    if name in SYNCHRONOUS:
        return True
    if name in OUTPUTS:
        return False
    return bool(getattr(output_class(name), "synchronous", False))


def output_class(name: str) -> type:
    """The class behind an output name, or a UserError listing the known names."""
    target = OUTPUTS.get(name) or _from_entry_points(name)
    if target is None:
        raise UserError(unknown_output_error(name))
    module_name, _, class_name = target.partition(":")
    return getattr(import_module(module_name), class_name)


def create_output(
    name: str,
    settings: dict[str, Any],
    *,
    section: str | None = None,
    source: str | None = None,
    state_dir: str | None = None,
    state: dict[str, Any] | None = None,
) -> Any:
    """An output configured from `settings`; ConfigError for a bad setting or a missing package."""
    cls = output_class(name)
    missing = missing_packages(cls)
    if missing:
        module, extra = missing[0]
        raise ConfigError(
            f"output {name} needs the {module} package: pip install 'accre-monitor[{extra}]'"
        )
    return cls(
        name,
        settings,
        section=section or section_of(name),
        source=source,
        state_dir=state_dir,
        state=state,
    )


def build_output(name: str, config: Any) -> Any:
    """The output `name` configured from `[outputs.SECTION]` of `config`; its local state (if
    it keeps any) lives next to the spool."""
    section = section_of(name)
    state_dir = state = None
    if not is_synchronous(name):  # (the spool's settings are not worked out for stdout runs)
        import os

        state_dir = os.path.dirname(config.spool["path"])
        state = config.state
    settings = config.output_section(section) if name != STATE else {}
    return create_output(
        name, settings, section=section, source=config.path, state_dir=state_dir, state=state
    )


def missing_packages(cls: type) -> list[tuple[str, str]]:
    """The (module, extra) client packages of an output class that are not installed."""
    requires = getattr(cls, "requires", ())
    if not requires:  # stdout and friends: no importlib.util on their runs
        return []
    from importlib.util import find_spec

    missing = []
    for module, extra in requires:
        try:
            found = find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append((module, extra))
    return missing


def _from_entry_points(name: str) -> str | None:
    if name in OUTPUTS:
        return OUTPUTS[name]
    from importlib.metadata import entry_points

    for entry_point in entry_points(group=ENTRY_POINT_GROUP, name=name):
        return entry_point.value
    return None
