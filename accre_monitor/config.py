"""The TOML config file: where it is looked up, what it may hold, and its defaults.

Lookup order: `--config PATH`, `$ACCRE_MONITOR_CONFIG`, `$XDG_CONFIG_HOME/accre-monitor/config.toml`
(`~/.config/...` by default), `/etc/accre-monitor/config.toml`; with none of them, the built-in
default (stdout output, nagios exit codes, no lock).

A check that needs the configuration (where the spool is, which outputs are set up) must
see the one its run uses, `accre-monitor --config site.toml` included, not whatever the
default lookup finds: `run_config()` gives it, in the forked check process as well.
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
MAX_TIMEOUT = 86400.0  # a day: beyond it a check is not being monitored any more

# key -> (accepted types, default, description used in messages)
MONITORING_KEYS: dict[str, tuple[tuple[type, ...], Any]] = {
    "system": ((str,), "nagios"),
    "outputs": ((list,), ["stdout"]),
    "auditor": ((bool,), False),
    "lockdir": ((str,), None),
    "check_modules": ((list,), []),
    "timeout": ((int, float), DEFAULT_TIMEOUT),
    "node": ((str,), None),
    "ttl": ((int, float), 0),
}
MAX_TTL = 30 * 86400.0

# Sections checked here (monitoring), in accre_monitor.sections (spool, bus), or by each
# output when it is built (outputs).
OTHER_SECTIONS = ("outputs", "spool", "bus", "state", "checks", "serve")
# `[checks.NAME]` keys: what one check's records carry beyond the global defaults
CHECK_KEYS = ("ttl",)


class Config:
    """The validated config: `[monitoring]` keys as attributes, other sections in `sections`.

    `spool` and `bus` are those sections checked, with defaults; `problems` lists what is
    wrong with delivery settings (each already reported once on stderr): they never change a
    check's verdict, and `spool_health` shows them.
    """

    __slots__ = (
        "path",
        "sections",
        "_spool",
        "_bus",
        "_state",
        "_serve",
        "problems",
        *MONITORING_KEYS,
    )

    def __init__(self, path: str | None = None, data: dict[str, Any] | None = None) -> None:
        self.path = path
        data = data or {}
        if data:
            from accre_monitor import redaction

            redaction.watch(data)  # its secrets are kept out of every message from now on
        monitoring = data.get("monitoring", {})
        for key, (_types, default) in MONITORING_KEYS.items():
            value = monitoring.get(key, default)
            setattr(self, key, list(value) if isinstance(value, list) else value)
        self.sections: dict[str, Any] = {k: v for k, v in data.items() if k != "monitoring"}
        self.problems: list[str] = []
        self._spool: dict[str, Any] | None = None
        self._bus: dict[str, Any] | None = None
        self._state: dict[str, Any] | None = None
        self._serve: dict[str, Any] | None = None
        # checked now when present, so that their problems are reported on every run;
        # absent, their defaults are worked out only if a run needs them
        if "spool" in self.sections:
            self._spool = self.spool
        if "bus" in self.sections:
            self._bus = self.bus
        if "state" in self.sections:
            self._state = self.state

    @property
    def spool(self) -> dict[str, Any]:
        """The `[spool]` settings, checked, with defaults."""
        if self._spool is None:
            from accre_monitor.sections import spool_section

            self._spool = self._checked("spool", spool_section)
        return self._spool

    @property
    def bus(self) -> dict[str, Any]:
        """The `[bus]` settings, checked, with defaults."""
        if self._bus is None:
            from accre_monitor.sections import bus_section

            self._bus = self._checked("bus", bus_section)
        return self._bus

    @property
    def state(self) -> dict[str, Any]:
        """The `[state]` settings, checked, with defaults (`url`: state.db beside the spool)."""
        if self._state is None:
            from accre_monitor.sections import state_section

            spool_path = self.spool["path"]
            self._state = self._checked(
                "state", lambda values, source: state_section(values, source, spool_path)
            )
        return self._state

    @property
    def serve(self) -> dict[str, Any]:
        """The `[serve]` settings (the status page), checked, with defaults; read only by
        `accre-pipeline serve`."""
        if self._serve is None:
            from accre_monitor.sections import serve_section

            self._serve = self._checked("serve", serve_section)
        return self._serve

    def check_ttl(self, name: str) -> float:
        """Seconds after a result of check `name` without a newer one before it is stale
        (`[checks.NAME] ttl`, else `[monitoring] ttl`; 0: never)."""
        table = self.section("checks").get(name)
        if isinstance(table, dict) and "ttl" in table:
            return float(table["ttl"])
        return float(self.ttl)

    @property
    def keeps_state(self) -> bool:
        """Whether records go through the cluster state: a `[state]` section, a freshness
        ttl, or an output that decides from the state (a notifier, `min_occurrences`)."""
        if "state" in self.sections or self.ttl:
            return True
        if any(isinstance(t, dict) and t.get("ttl") for t in self.section("checks").values()):
            return True
        from accre_monitor.outputs import reads_state, section_of

        return any(
            reads_state(name, self.output_section(section_of(name)))
            for name in self._named_outputs()
        )

    def _checked(self, name: str, check: Any) -> dict[str, Any]:
        settings, unknown, problems = check(self.sections.get(name), self.path)
        for key in unknown:
            log.warning("unknown config key", key=f"{name}.{key}", file=self.path)
        for problem in problems:
            self.problem(f"{problem}; using the default")
        return settings

    def problem(self, message: str) -> None:
        """Report a delivery-side configuration problem once, and keep it for spool_health."""
        from accre_monitor.redaction import scrub

        message = scrub(message)
        if message not in self.problems:
            self.problems.append(message)
            where = f"config file {self.path}" if self.path else "built-in config"
            log.error(f"invalid {where}: {message}")

    def section(self, name: str) -> dict[str, Any]:
        """A top-level section (e.g. `spool`), empty when absent."""
        value = self.sections.get(name, {})
        return value if isinstance(value, dict) else {}

    def output_section(self, name: str) -> dict[str, Any]:
        """The `[outputs.NAME]` table, empty when absent."""
        value = self.section("outputs").get(name, {})
        return value if isinstance(value, dict) else {}

    def defined_outputs(self) -> list[str]:
        """Every output this config names: the cluster state first when it is kept, then
        `monitoring.outputs`, then `[outputs.*]` sections."""
        named = self._named_outputs()
        return ["state", *named] if self.keeps_state else named

    def _named_outputs(self) -> list[str]:
        return list(dict.fromkeys([*self.outputs, *self.section("outputs")]))


_current: Config | None = None


def set_run_config(config: Config | None) -> None:
    """Make `config` what `run_config()` answers (the command line does this before a check)."""
    global _current
    _current = config


def run_config() -> Config:
    """The configuration of the current run; outside a run, the one the default lookup finds."""
    if _current is None:
        return load_config()
    return _current


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
    path = find_config_path(explicit)
    if path is None:
        return Config()
    from accre_monitor import config_cache

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
    timeout = monitoring.get("timeout", DEFAULT_TIMEOUT)
    if not 0 <= timeout <= MAX_TIMEOUT:  # nan and inf too
        raise ConfigError(
            f"invalid config file {path}: monitoring.timeout must be a number of seconds "
            f"from 0 (no limit) to {MAX_TIMEOUT:g}, not {timeout!r}"
        )
    ttl = monitoring.get("ttl", 0)
    if not 0 <= ttl <= MAX_TTL:
        raise ConfigError(
            f"invalid config file {path}: monitoring.ttl must be a number of seconds "
            f"from 0 (off) to {MAX_TTL:g}, not {ttl!r}"
        )
    _check_checks(data.get("checks", {}), path)
    outputs = data.get("outputs", {})
    if not isinstance(outputs, dict) or not all(isinstance(v, dict) for v in outputs.values()):
        raise ConfigError(f"invalid config file {path}: [outputs.NAME] sections must be tables")
    _check_output_names(monitoring.get("outputs", []), outputs, path)


def _check_checks(checks: Any, path: str) -> None:
    """`[checks.NAME]` tables: known keys, `ttl` a number of seconds (0: off)."""
    if not isinstance(checks, dict) or not all(isinstance(v, dict) for v in checks.values()):
        raise ConfigError(f"invalid config file {path}: [checks.NAME] sections must be tables")
    for name, table in checks.items():
        for key, value in table.items():
            if key not in CHECK_KEYS:
                log.warning("unknown config key", key=f"checks.{name}.{key}", file=path)
                continue
            number = isinstance(value, int | float) and not isinstance(value, bool)
            if not number or not 0 <= value <= MAX_TTL:
                raise ConfigError(
                    f"invalid config file {path}: checks.{name}.ttl must be a number of "
                    f"seconds from 0 (off) to {MAX_TTL:g}, not {value!r}"
                )


def _check_output_names(used: list[str], sections: dict[str, Any], path: str) -> None:
    """An output the run uses must exist (UNKNOWN otherwise); a section for no known output is
    worth a warning."""
    from accre_monitor.outputs import is_known_output

    for name in used:
        if not is_known_output(name):
            from accre_monitor.outputs import unknown_output_error

            raise ConfigError(f"invalid config file {path}: {unknown_output_error(name)}")
    from accre_monitor.outputs import is_known_section

    for name in sections:
        if not is_known_section(name):
            log.warning(
                "config section for an unknown output", section=f"outputs.{name}", file=path
            )


def _holds_secrets(data: Any) -> bool:
    """Whether a key named like a secret has a value, or a URL carries a password."""
    from accre_monitor.redaction import is_secret_key, split_credentials

    if isinstance(data, dict):
        return any(
            (
                isinstance(key, str)
                and is_secret_key(key)
                and isinstance(value, (str, int, float))
                and not isinstance(value, bool)
                and value != ""
            )
            or _holds_secrets(value)
            for key, value in data.items()
        )
    if isinstance(data, list):
        return any(_holds_secrets(item) for item in data)
    return isinstance(data, str) and split_credentials(data)[2] is not None
