"""The TOML config file: where it is looked up, what it may hold, and its defaults.

Lookup order: `--config PATH`, `$ACCRE_MONITOR_CONFIG`, `$XDG_CONFIG_HOME/accre-monitor/config.toml`
(`~/.config/...` by default), `/etc/accre-monitor/config.toml`; with none of them, the built-in
default (stdout output, nagios exit codes, no lock).
"""

from __future__ import annotations

import os

from accre_monitor import log
from accre_monitor.errors import ConfigError
from accre_monitor.status import EXITCODE_MAPS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SYSTEM_CONFIG = "/etc/accre-monitor/config.toml"
DEFAULT_TIMEOUT = 30.0

# key -> (accepted types, default, description used in messages)
MONITORING_KEYS: dict[str, tuple[tuple[type, ...], Any]] = {
    "system": ((str,), "nagios"),
    "outputs": ((list,), ["stdout"]),
    "auditor": ((bool,), False),
    "lockdir": ((str,), None),
    "check_modules": ((list,), []),
    "timeout": ((int, float), DEFAULT_TIMEOUT),
    "node": ((str,), None),
}

# Sections other modules read; their keys are checked by their owners.
OTHER_SECTIONS = ("outputs", "spool")

SECRET_WORDS = ("password", "api_key", "apikey", "token", "secret", "webhook")


class Config:
    """The validated config: `[monitoring]` keys as attributes, other sections in `sections`."""

    __slots__ = ("path", "sections", *MONITORING_KEYS)

    def __init__(self, path: str | None = None, data: dict[str, Any] | None = None) -> None:
        self.path = path
        data = data or {}
        monitoring = data.get("monitoring", {})
        for key, (_types, default) in MONITORING_KEYS.items():
            value = monitoring.get(key, default)
            setattr(self, key, list(value) if isinstance(value, list) else value)
        self.sections: dict[str, Any] = {k: v for k, v in data.items() if k != "monitoring"}

    def section(self, name: str) -> dict[str, Any]:
        """A top-level section (e.g. `spool`), empty when absent."""
        value = self.sections.get(name, {})
        return value if isinstance(value, dict) else {}

    def output_section(self, name: str) -> dict[str, Any]:
        """The `[outputs.NAME]` table, empty when absent."""
        value = self.section("outputs").get(name, {})
        return value if isinstance(value, dict) else {}


def find_config_path(explicit: str | None = None) -> str | None:
    """The config file to read, or None for the built-in default."""
    if explicit:
        return explicit
    from_env = os.environ.get("ACCRE_MONITOR_CONFIG")
    if from_env:
        return from_env
    config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(
        os.path.expanduser("~"), ".config"
    )
    for candidate in (os.path.join(config_home, "accre-monitor", "config.toml"), SYSTEM_CONFIG):
        if os.path.isfile(candidate):
            return candidate
    return None


def load_config(explicit: str | None = None) -> Config:
    """Find, read and validate the config; raise ConfigError with one clear line."""
    from accre_monitor import config_cache

    path = find_config_path(explicit)
    if path is None:
        return Config()
    try:
        info = os.stat(path)
        if os.access(path, os.R_OK):
            data = config_cache.load(path, info)
        else:  # a copy must not outlive this user's right to read the file
            config_cache.forget(path)
            data = None
        if data is None:
            data = parse(path)
            config_cache.save(path, info, data)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    validate(data, path)
    if _holds_secrets(data) and info.st_mode & 0o004:
        log.warning(
            "config file holds secrets and is readable by every user; chmod o-r it "
            "or move the secrets to the environment",
            file=path,
        )
    return Config(path, data)


def parse(path: str) -> dict[str, Any]:
    """The TOML file as a dict, or ConfigError (OSError for an unreadable file)."""
    with open(path, "rb") as handle:
        raw = handle.read()
    import tomllib

    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"invalid config file {path}: {exc}") from None


def validate(data: dict[str, Any], path: str) -> None:
    """Raise ConfigError on a wrong type or value; report unknown keys on stderr."""
    for section in data:
        if section != "monitoring" and section not in OTHER_SECTIONS:
            log.warning("unknown config section", section=section, file=path)
    monitoring = data.get("monitoring", {})
    if not isinstance(monitoring, dict):
        raise ConfigError(f"invalid config file {path}: [monitoring] must be a table")
    for key, value in monitoring.items():
        if key not in MONITORING_KEYS:
            log.warning("unknown config key", key=f"monitoring.{key}", file=path)
            continue
        types = MONITORING_KEYS[key][0]
        if not isinstance(value, types) or (bool in types) != isinstance(value, bool):
            expected = " or ".join(t.__name__ for t in types)
            raise ConfigError(
                f"invalid config file {path}: monitoring.{key} must be {expected}, "
                f"not {type(value).__name__}"
            )
    for key in ("outputs", "check_modules"):
        if not all(isinstance(item, str) for item in monitoring.get(key, [])):
            raise ConfigError(f"invalid config file {path}: monitoring.{key} must list strings")
    system = monitoring.get("system", "nagios")
    if system not in EXITCODE_MAPS:
        known = ", ".join(sorted(EXITCODE_MAPS))
        raise ConfigError(
            f"invalid config file {path}: unknown monitoring.system {system!r} (known: {known})"
        )
    if monitoring.get("timeout", DEFAULT_TIMEOUT) < 0:
        raise ConfigError(f"invalid config file {path}: monitoring.timeout must be >= 0")


def _holds_secrets(data: Any) -> bool:
    if isinstance(data, dict):
        return any(
            (
                isinstance(key, str)
                and any(word in key.lower() for word in SECRET_WORDS)
                and isinstance(value, str)
                and value
            )
            or _holds_secrets(value)
            for key, value in data.items()
        )
    return False
