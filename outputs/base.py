"""What every output is: a name, its checked settings, and either `emit` (synchronous) or
`deliver` (remote, in batches, one Outcome per record: `RemoteOutput`, in
accre_monitor.outputs.remote, which a stdout run never imports).
"""

from __future__ import annotations

from accre_monitor import log
from accre_monitor.errors import ConfigError
from accre_monitor.outputs import FILTER_KEYS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def write_stdout(text: str) -> None:
    """Write `text` to stdout as UTF-8, whatever the locale says: a result must reach Nagios
    even under `LANG=C` or a Latin-1 terminal (NRPE reads bytes, not characters)."""
    import sys

    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # replaced by a text-only stream (tests, embedding programs)
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    buffer.write(text.encode("utf-8", "replace"))


class Output:
    """Base class. Subclasses set `synchronous` and `settings_keys`, and implement their half.

    `section` is the config section the settings come from (`[outputs.SECTION]`; the
    output's own name unless it shares another's settings) and names the environment
    variables of its secrets; `source` is the config file, for messages; `state_dir` is
    where an output may keep local state of its own (the spool's directory); `state` is the
    `[state]` section (where the cluster state lives), for outputs that read it.
    """

    synchronous = True
    # settings this output understands, beyond the filter keys: name -> default
    settings_keys: dict[str, Any] = {}

    def __init__(
        self,
        name: str,
        settings: dict[str, Any] | None = None,
        *,
        section: str | None = None,
        source: str | None = None,
        state_dir: str | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.section = section or name
        self.state_dir = state_dir
        self.state_settings = state
        settings = dict(settings or {})
        for key in settings:
            if key not in self.settings_keys and key not in FILTER_KEYS:
                log.warning("unknown config key", key=f"outputs.{self.section}.{key}", file=source)
        self.settings = {**self.settings_keys, **settings}

    def emit(self, record: dict[str, Any]) -> None:
        """Render one record now (synchronous outputs)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the output holds; called once when the run or the replay ends."""

    def problems(self) -> list[str]:
        """What keeps this output from working on this node, one line each, for spool_health
        (a synchronous output that writes a file says whether it can)."""
        return []

    # -- settings, checked with one clear line each ---------------------------------------

    def _bad(self, key: str, why: str) -> ConfigError:
        return ConfigError(f"outputs.{self.section}.{key} {why}", key)

    def setting_seconds(self, key: str, *, maximum: float, zero: bool = False) -> float:
        """A finite number of seconds above 0 (at least 0 with `zero`), at most `maximum`."""
        from accre_monitor.settings import seconds

        return float(self._checked(key, seconds(None, maximum=maximum, zero=zero)))

    def setting_int(self, key: str, minimum: int, maximum: int) -> int:
        """An integer from `minimum` to `maximum`."""
        from accre_monitor.settings import integer

        return self._checked(key, integer(None, minimum, maximum))

    def _checked(self, key: str, setting: Any) -> Any:
        from accre_monitor.settings import describe

        value = self.settings.get(key)
        if not setting.check(value):
            raise self._bad(key, f"must be {setting.expected}, not {describe(value, key)}")
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

    def setting_file(self, key: str) -> str | None:
        """An optional path to a readable file (a CA certificate, say)."""
        value = self.settings.get(key) or None
        if value is None:
            return None
        import os

        if not isinstance(value, str) or not os.path.isfile(value):
            raise self._bad(key, f"must name a readable file ({value!r} is not one)")
        return value

    def secret(self, key: str) -> str | None:
        """A secret from the config, or from `ACCRE_MONITOR_<SECTION>_<KEY>` in the environment.

        The environment wins, so a config file can be shared without its secrets.
        """
        import os

        from accre_monitor.redaction import is_secret_key, remember

        variable = f"ACCRE_MONITOR_{self.section}_{key}".upper().replace("-", "_")
        value = os.environ.get(variable) or self.settings.get(key) or None
        if is_secret_key(key):
            remember(value)  # never shown from now on, whatever message quotes it
        if value is not None and not isinstance(value, str):
            shown = "" if is_secret_key(key) else f", not {value!r}"
            raise self._bad(key, f"must be a string{shown}")
        return value


def describe_error(exc: BaseException) -> str:
    """`Type: message`, for spool entries and logs, without any secret the process knows."""
    from accre_monitor.outcome import describe

    return describe(exc)
