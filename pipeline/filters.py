"""Filter stages: small predicates on a record, composed in a list in front of an output.

Each stage is a plain callable `record -> bool`, testable alone. An output's config
section puts them there: `min_severity = "WARNING"`, `checks = ["disk*"]`,
`exclude_checks = ["auditor*"]`.
"""

from collections.abc import Callable, Iterable
from fnmatch import fnmatchcase
from typing import Any

from accre_monitor.errors import ConfigError
from accre_monitor.status import SEVERITY, normalize_status

Stage = Callable[[dict[str, Any]], bool]


def min_severity(level: str) -> Stage:
    """Pass records at or above `level` (UNKNOWN ranks with CRITICAL)."""
    threshold = SEVERITY[normalize_status(level)]

    def at_or_above(record: dict[str, Any]) -> bool:
        return SEVERITY.get(record["status"], SEVERITY["UNKNOWN"]) >= threshold

    at_or_above.__name__ = f"min_severity_{level.lower()}"
    return at_or_above


def check_names(patterns: Iterable[str]) -> Stage:
    """Pass records whose check name matches one of the shell-style `patterns`."""
    patterns = tuple(patterns)

    def matches(record: dict[str, Any]) -> bool:
        return any(fnmatchcase(record["name"], pattern) for pattern in patterns)

    return matches


def exclude_check_names(patterns: Iterable[str]) -> Stage:
    """Drop records whose check name matches one of `patterns`."""
    included = check_names(patterns)
    return lambda record: not included(record)


def passes(stages: Iterable[Stage], record: dict[str, Any]) -> bool:
    return all(stage(record) for stage in stages)


def stages_from_settings(output: str, settings: dict[str, Any]) -> list[Stage]:
    """The filter stages an `[outputs.NAME]` section asks for."""
    stages: list[Stage] = []
    if "min_severity" in settings:
        try:
            stages.append(min_severity(settings["min_severity"]))
        except (ValueError, AttributeError):
            raise ConfigError(
                f"outputs.{output}.min_severity must be OK, WARNING, CRITICAL or UNKNOWN"
            ) from None
    for key, make in (("checks", check_names), ("exclude_checks", exclude_check_names)):
        if key in settings:
            patterns = settings[key]
            patterns = [patterns] if isinstance(patterns, str) else patterns
            if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
                raise ConfigError(f"outputs.{output}.{key} must be a list of name patterns")
            stages.append(make(patterns))
    return stages
