"""What every output is: a name, its settings, and either `emit` (synchronous) or `deliver`."""

from __future__ import annotations

from accre_monitor import log
from accre_monitor.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Keys any output section may hold: filter stages put in front of the output.
FILTER_KEYS = ("min_severity", "checks", "exclude_checks")


class Output:
    """Base class. Subclasses set `synchronous` and `settings_keys`, and implement their half."""

    synchronous = True
    # settings this output understands, beyond the filter keys: name -> default
    settings_keys: dict[str, Any] = {}

    def __init__(self, name: str, settings: dict[str, Any] | None = None) -> None:
        self.name = name
        settings = dict(settings or {})
        for key in settings:
            if key not in self.settings_keys and key not in FILTER_KEYS:
                log.warning("unknown config key", key=f"outputs.{name}.{key}")
        self.settings = {**self.settings_keys, **settings}

    def require(self, key: str) -> Any:
        value = self.settings.get(key)
        if value in (None, "", []):
            raise ConfigError(f"output {self.name} needs outputs.{self.name}.{key} in the config")
        return value

    def emit(self, record: dict[str, Any]) -> None:
        """Render one record now (synchronous outputs)."""
        raise NotImplementedError
