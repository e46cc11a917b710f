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


DELIVERED = "delivered"  # stored now, or already there (a redelivery of the same id)
RETRY = "retry"  # not stored, worth trying again later (unreachable, timeout, 429, 5xx)
REJECTED = "rejected"  # the store refuses this record for good (e.g. a malformed document)


class Outcome:
    """What happened to one record of a batch."""

    __slots__ = ("state", "error")

    def __init__(self, state: str, error: str | None = None) -> None:
        self.state = state
        self.error = error

    def __repr__(self) -> str:
        return f"Outcome({self.state!r}, {self.error!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Outcome) and (self.state, self.error) == (other.state, other.error)


class RemoteOutput(Output):
    """An output that ships records to a store, in batches, idempotently by record `id`.

    `deliver(records, timeout)` returns one Outcome per record, in order. It may raise
    instead when the whole batch failed (store unreachable): every record is then retried.
    It must return or raise within about `timeout` seconds.
    """

    synchronous = False
    # the default deadline of inline delivery from the CLI, overridable per output
    settings_keys: dict[str, Any] = {"timeout": 2.0, "batch_size": 500}

    def deliver(self, records: list[dict[str, Any]], timeout: float) -> list[Outcome]:
        raise NotImplementedError

    def close(self) -> None:
        """Release connections; called once when the run or the replay ends."""

    def secret(self, key: str) -> str | None:
        """A secret from the config, or from `ACCRE_MONITOR_<OUTPUT>_<KEY>` in the environment.

        The environment wins, so a config file can be shared without its secrets.
        """
        import os

        variable = f"ACCRE_MONITOR_{self.name}_{key}".upper().replace("-", "_")
        return os.environ.get(variable) or self.settings.get(key) or None

    # -- settings, checked with one clear line each ---------------------------------------

    def _bad(self, key: str, why: str) -> ConfigError:
        return ConfigError(f"outputs.{self.name}.{key} {why}")

    def setting_seconds(self, key: str) -> float:
        value = self.settings.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise self._bad(key, "must be a positive number of seconds")
        return float(value)

    def setting_int(self, key: str, minimum: int) -> int:
        value = self.settings.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self._bad(key, f"must be an integer >= {minimum}")
        return value

    def setting_text(self, key: str, empty: bool = False) -> str:
        value = self.settings.get(key)
        if not isinstance(value, str) or (not empty and not value.strip()):
            raise self._bad(key, "must be a string" if empty else "must be a non-empty string")
        return value

    def setting_flag(self, key: str) -> bool:
        value = self.settings.get(key)
        if not isinstance(value, bool):
            raise self._bad(key, "must be true or false")
        return value


def redact_url(url: str) -> str:
    """The URL without its password (`scheme://user:***@host`), safe for messages and logs."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    if parts.password is None and parts.username is None:
        return url
    user = f"{parts.username}:***" if parts.password is not None else "***"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


def describe_error(exc: BaseException) -> str:
    """`Type: message`, for spool entries and logs."""
    text = str(exc).strip() or "no details"
    return f"{type(exc).__name__}: {text}"
