"""Filter stages: small values in front of an output that say which records it takes.

A stage answers `matches(record)`, and also names the topic-exchange binding keys
(`STATUS.check_name`) that select the same records, so that on the RabbitMQ bus the broker
does the filtering; a stage that cannot be expressed as keys (a shell pattern, an exclusion)
answers None there, and the shipper still applies `matches` to what arrives. An output's
config section puts them there: `min_severity = "WARNING"`, `checks = ["disk*"]`,
`exclude_checks = ["auditor*"]`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from accre_monitor.errors import ConfigError
from accre_monitor.settings import FILTER_KEYS  # noqa: F401 - re-exported
from accre_monitor.status import SEVERITY, STATUSES, UNKNOWN, normalize_status

_GLOB_CHARS = frozenset("*?[]#")


class Stage(Protocol):
    def matches(self, record: dict[str, Any]) -> bool: ...

    def binding_keys(self) -> list[str] | None: ...


class MinSeverity:
    """Records at or above `level` (UNKNOWN ranks with CRITICAL)."""

    __slots__ = ("level", "statuses")

    def __init__(self, level: str) -> None:
        self.level = normalize_status(level)
        threshold = SEVERITY[self.level]
        self.statuses = tuple(s for s in STATUSES if SEVERITY[s] >= threshold)

    def matches(self, record: dict[str, Any]) -> bool:
        return SEVERITY.get(record.get("status"), SEVERITY[UNKNOWN]) >= SEVERITY[self.level]

    def binding_keys(self) -> list[str]:
        return [f"{status}.#" for status in self.statuses]

    def __repr__(self) -> str:
        return f"MinSeverity({self.level!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MinSeverity) and other.level == self.level

    __hash__ = None  # type: ignore[assignment]


class CheckNames:
    """Records whose check name matches one of the shell-style `patterns`."""

    __slots__ = ("patterns",)

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)

    def matches(self, record: dict[str, Any]) -> bool:
        from fnmatch import fnmatchcase  # fnmatch costs `re`: only where patterns are used

        name = record.get("name")
        return isinstance(name, str) and any(fnmatchcase(name, p) for p in self.patterns)

    def literal_names(self) -> list[str] | None:
        """The names, when every pattern is a plain name; None when one is a pattern."""
        if any(_GLOB_CHARS & set(p) or not p for p in self.patterns):
            return None
        return list(dict.fromkeys(self.patterns))

    def binding_keys(self) -> list[str] | None:
        names = self.literal_names()
        return None if names is None else [f"*.{name}" for name in names]

    def __repr__(self) -> str:
        return f"CheckNames({list(self.patterns)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CheckNames) and other.patterns == self.patterns

    __hash__ = None  # type: ignore[assignment]


class ExcludeCheckNames:
    """Records whose check name matches none of `patterns` (never expressible as keys)."""

    __slots__ = ("included",)

    def __init__(self, patterns: Iterable[str]) -> None:
        self.included = CheckNames(patterns)

    def matches(self, record: dict[str, Any]) -> bool:
        return not self.included.matches(record)

    def binding_keys(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"ExcludeCheckNames({list(self.included.patterns)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExcludeCheckNames) and other.included == self.included

    __hash__ = None  # type: ignore[assignment]


def all_match(stages: Iterable[Stage], record: dict[str, Any]) -> bool:
    return all(stage.matches(record) for stage in stages)


def binding_keys(stages: Iterable[Stage]) -> list[str]:
    """The binding keys that select what every stage passes (or a superset of it, when a
    stage cannot be expressed as keys: the shipper filters those records with `matches`).

    No stages: `#`, everything. `min_severity = "WARNING"` with `checks = ["disk_usage"]`:
    `WARNING.disk_usage`, `CRITICAL.disk_usage`, `UNKNOWN.disk_usage`.
    """
    statuses: list[str] | None = None
    names: list[str] | None = None
    for stage in stages:
        if isinstance(stage, MinSeverity):
            kept = [s for s in stage.statuses if statuses is None or s in statuses]
            statuses = kept
        elif isinstance(stage, CheckNames) and stage.literal_names() is not None:
            literal = stage.literal_names() or []
            names = [n for n in literal if names is None or n in names]
    if statuses is None and names is None:
        return ["#"]
    if statuses == [] or names == []:
        return []
    if names is None:
        return [f"{status}.#" for status in statuses or []]
    return [f"{status}.{name}" for status in (statuses or ["*"]) for name in names]


def stages_from_settings(output: str, settings: dict[str, Any]) -> list[Stage]:
    """The filter stages an `[outputs.NAME]` section asks for; ConfigError naming the key."""
    stages: list[Stage] = []
    if settings.get("min_severity") is not None:
        try:
            stages.append(MinSeverity(settings["min_severity"]))
        except ValueError:
            raise ConfigError(
                f"outputs.{output}.min_severity must be OK, WARNING, CRITICAL or UNKNOWN"
            ) from None
    for key, make in (("checks", CheckNames), ("exclude_checks", ExcludeCheckNames)):
        if key in settings:
            patterns = settings[key]
            patterns = [patterns] if isinstance(patterns, str) else patterns
            if not isinstance(patterns, list) or not all(
                isinstance(p, str) and p for p in patterns
            ):
                raise ConfigError(f"outputs.{output}.{key} must be a list of check name patterns")
            stages.append(make(patterns))
    return stages
