"""Checking one config section against its spec: one clear line per bad value.

A spec maps each key to a `Setting`: its default and what it must be. `check_section`
returns the settings with defaults filled in, the unknown keys, and the problems found;
a bad value is replaced by its default, so a caller that must go on (delivery settings
never change a check's verdict) can, and one that must not raises.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class Setting:
    """A key's default and its check: `check(value)` returns an error text or None."""

    __slots__ = ("default", "check", "expected")

    def __init__(self, default: Any, expected: str, check: Callable[[Any], bool]) -> None:
        self.default = default
        self.expected = expected
        self.check = check


def _number(value: Any) -> bool:
    """A finite int or float (not a bool: TOML's `true` is no number of seconds)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value == value  # not nan
        and value not in (float("inf"), float("-inf"))
    )


def _count(number: float) -> str:
    """`86400`, `65535`, `0.5`, `100000000` as a message shows a bound."""
    return f"{number:g}" if number < 1e6 else str(int(number))


def seconds(default: float, *, maximum: float, zero: bool = False) -> Setting:
    """A finite number of seconds, above 0 (or at least 0 with `zero`) and at most `maximum`:
    a value past what a timer, `poll` or a sleep can take never reaches them."""
    top = _count(maximum)
    if zero:
        return Setting(
            default,
            f"a number of seconds from 0 to {top}",
            lambda v: _number(v) and 0 <= v <= maximum,
        )
    return Setting(
        default,
        f"a number of seconds above 0 and at most {top}",
        lambda v: _number(v) and 0 < v <= maximum,
    )


def integer(default: int | None, minimum: int, maximum: int) -> Setting:
    """An integer from `minimum` to `maximum` (a float such as `5.0` is refused)."""
    return Setting(
        default,
        f"an integer from {_count(minimum)} to {_count(maximum)}",
        lambda v: isinstance(v, int) and not isinstance(v, bool) and minimum <= v <= maximum,
    )


def text(default: str | None, *, empty: bool = False) -> Setting:
    return Setting(
        default,
        "a string" if empty else "a non-empty string",
        lambda v: isinstance(v, str) and (empty or bool(v.strip())),
    )


def choice(default: str, *choices: str) -> Setting:
    quoted = " or ".join(f'"{c}"' for c in choices)
    return Setting(default, quoted, lambda v: v in choices)


def flag(default: bool) -> Setting:
    return Setting(default, "true or false", lambda v: isinstance(v, bool))


def texts(default: list[str] | None) -> Setting:
    """A string or a non-empty list of non-empty strings."""
    return Setting(
        default,
        "a string or a list of strings",
        lambda v: (
            (isinstance(v, str) and bool(v))
            or (isinstance(v, list) and bool(v) and all(isinstance(i, str) and i for i in v))
        ),
    )


def describe(value: Any, key: str = "") -> str:
    """A value as a message shows it: short, and never a secret. The value of a key named
    like a secret (`password`, `api_key`, `webhook_url`) is never shown at all; a text is
    shown without the password of a URL in it, or any other secret the process knows."""
    from accre_monitor.redaction import is_secret_key, scrub

    if is_secret_key(key) and value is not None:
        return f"{_a(value)} (the value is not shown: it is a secret)"
    if isinstance(value, (bool, int, float)) or value is None:
        return scrub(repr(value))
    if isinstance(value, str):
        value = scrub(value)
        return repr(value if len(value) <= 40 else value[:37] + "...")
    return _a(value)


def _a(value: Any) -> str:
    """`a list`, `an int`: what a value is, without showing it."""
    name = type(value).__name__
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def check_section(
    section: str, spec: dict[str, Setting], values: Any, source: str | None = None
) -> tuple[dict[str, Any], list[str], list[str]]:
    """(settings with defaults, unknown keys, problems) for the `[section]` table `values`.

    A problem reads `spool.backoff_base must be a number of seconds > 0, not 'x'`; the
    caller adds what happens next (an error, or "using the default").
    """
    settings = {key: setting.default for key, setting in spec.items()}
    if values is None:
        return settings, [], []
    if not isinstance(values, dict):
        return settings, [], [f"[{section}] must be a table, not {describe(values)}"]
    unknown = [key for key in values if key not in spec]
    problems = []
    for key, value in values.items():
        setting = spec.get(key)
        if setting is None:
            continue
        if setting.check(value):
            settings[key] = value
        else:
            problems.append(
                f"{section}.{key} must be {setting.expected}, not {describe(value, key)}"
            )
    return settings, unknown, problems
