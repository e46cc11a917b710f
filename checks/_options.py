"""Option parsing shared by the built-in checks (not a check module: the leading `_` hides it).

Options arrive as a dict, either from JSON (any JSON type) or from the command line,
where `interpret_string_value` has already turned `'3'` into 3 and `'a,b'` into
`['a', 'b']`, and a bare `--flag` into None. These helpers turn that into the values
a check needs, or raise `OptionError` with a message fit for the short text, which
`bad_options` turns into an UNKNOWN result: a check never raises for bad input.

A None value (a bare `--warning`, or JSON null) means "not given": the default applies.
"""

from __future__ import annotations

from accre_monitor.range import INF, SYNTAX, Range
from accre_monitor.status import CRITICAL, OK, UNKNOWN, WARNING, normalize_status

# `typing` costs more to import than loadavg takes to run: annotations only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class OptionError(ValueError):
    """An option value the check cannot use; the message names the option."""


def bad_options(label: str, error: Exception) -> tuple:
    """The UNKNOWN result for bad options, e.g. `DISK UNKNOWN - option warning: ...`."""
    return UNKNOWN, {"error": str(error)}, f"{label} UNKNOWN - {error}", None


def check_known(opts: Any, known: tuple[str, ...]) -> dict[str, Any]:
    """`opts` as a dict, refusing names the check does not know (a typo must not pass silently)."""
    if opts is None:
        return {}
    if not isinstance(opts, dict):
        raise OptionError(f"options must be a mapping, not {type(opts).__name__}")
    unknown = sorted(str(key) for key in opts if key not in known)
    if unknown:
        raise OptionError(
            f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            f"(known: {', '.join(known)})"
        )
    return opts


def as_list(value: Any) -> list[Any]:
    """A list-valued option: None -> [], a scalar -> [scalar], a list stays a list."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def number(
    opts: dict[str, Any],
    key: str,
    default: float | None = None,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    integer: bool = False,
    required: bool = False,
) -> Any:
    """A finite number (int when `integer`), within [minimum, maximum]; the default when unset.

    Numeric strings are accepted (JSON callers sometimes quote numbers); booleans are not.
    """
    value = opts.get(key)
    if value is None:
        if required:
            raise OptionError(f"option {key} is required")
        return default
    parsed = _to_number(value)
    if parsed is None or (integer and parsed != int(parsed)):
        raise OptionError(
            f"option {key} must be {_describe(integer, minimum, maximum)}, not {value!r}"
        )
    if integer:
        parsed = int(parsed)
    if (minimum is not None and parsed < minimum) or (maximum is not None and parsed > maximum):
        raise OptionError(
            f"option {key} must be {_describe(integer, minimum, maximum)}, not {value!r}"
        )
    return parsed


def _to_number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value and value not in (INF, -INF):  # finite
        return int(value) if value.is_integer() else value
    return None


def _describe(integer: bool, minimum: float | None, maximum: float | None) -> str:
    kind = "an integer" if integer else "a number"
    if minimum is not None and maximum is not None:
        return f"{kind} from {minimum:g} to {maximum:g}"
    if minimum is not None:
        return f"{kind} >= {minimum:g}"
    if maximum is not None:
        return f"{kind} <= {maximum:g}"
    return kind


class Threshold:
    """A threshold option: the Range the check alerts on, and the value as given, for the data."""

    __slots__ = ("range", "given")

    def __init__(self, range_: Range, given: int | float | str) -> None:
        self.range = range_
        self.given = given

    def alerts(self, value: float) -> bool:
        return self.range.alerts(value)

    def __repr__(self) -> str:
        return f"Threshold({self.range!r}, {self.given!r})"


def level(value: float, warning: Threshold, critical: Threshold) -> str:
    """The status a value earns against a pair of thresholds: critical first, then warning."""
    if critical.alerts(value):
        return CRITICAL
    if warning.alerts(value):
        return WARNING
    return OK


def threshold(
    opts: dict[str, Any],
    key: str,
    default: float | None,
    plain: Callable[[float], Range],
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> Threshold | None:
    """A threshold: a plain number in the check's own meaning, or a Nagios range.

    `plain` turns a number into the Range it means for this check (Range.alert_above for
    "above N", ...), so existing command lines keep working; numbers, numeric strings
    included, must lie within [minimum, maximum]. Any other text is a range of the
    monitoring-plugins syntax (`10`, `10:`, `~:10`, `10:20`, `@10:20`), taken as written.
    None when unset and without a default.
    """
    value = opts.get(key)
    if value is None:
        if default is None:
            return None
        value = default
    return threshold_value(key, value, plain, minimum=minimum, maximum=maximum)


def threshold_value(
    key: str,
    value: Any,
    plain: Callable[[float], Range],
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> Threshold:
    """One threshold value (see `threshold`); `key` names the option in messages."""
    if isinstance(value, Range):
        return Threshold(value, str(value))
    parsed = _to_number(value)
    expected = f"{_describe(False, minimum, maximum)} or a range ({SYNTAX})"
    if parsed is not None:
        if (minimum is not None and parsed < minimum) or (maximum is not None and parsed > maximum):
            raise OptionError(f"option {key} must be {expected}, not {value!r}")
        try:
            return Threshold(plain(parsed), parsed)
        except ValueError as err:  # a meaning no range can express, e.g. 0:N for N < 0
            raise OptionError(f"option {key}: {err}") from None
    if isinstance(value, str):
        try:
            parsed_range = Range(value)
        except ValueError as err:
            # Text with a colon was meant as a range: say what is wrong with it.
            if ":" in value:
                raise OptionError(f"option {key}: {err}") from None
            raise OptionError(f"option {key} must be {expected}, not {value!r}") from None
        return Threshold(parsed_range, str(parsed_range))
    raise OptionError(f"option {key} must be {expected}, not {value!r}")


def text(opts: dict[str, Any], key: str, default: str | None = None, *, required: bool = False):
    """A single non-empty string (a list, e.g. from a comma on the command line, is refused)."""
    value = opts.get(key)
    if value is None:
        if required:
            raise OptionError(f"option {key} is required")
        return default
    if isinstance(value, (list, tuple)):
        raise OptionError(
            f"option {key} takes one value, not a list {value!r} "
            "(a value with a comma must be passed as JSON with --options)"
        )
    if not isinstance(value, str) or not value:
        raise OptionError(f"option {key} must be a non-empty string, not {value!r}")
    return value


def strings(opts: dict[str, Any], key: str) -> list[str]:
    """A list of non-empty strings (a scalar is a list of one); numbers are taken as their text."""
    result = []
    for item in as_list(opts.get(key)):
        if isinstance(item, bool) or not isinstance(item, (str, int, float)) or item == "":
            raise OptionError(f"option {key} must be a string or a list of strings, not {item!r}")
        result.append(item if isinstance(item, str) else str(item))
    return result


_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n"}


def flag(opts: dict[str, Any], key: str) -> bool:
    """A boolean: absent -> False, bare `--flag` (None) -> True, or a JSON/str/0-1 boolean."""
    if key not in opts:
        return False
    value = opts[key]
    if value is None or value is True or value is False:
        return value is not False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise OptionError(f"option {key} must be true or false, not {value!r}")


def status_option(opts: dict[str, Any], key: str, default: str) -> str:
    """A status name (OK, WARNING, CRITICAL, UNKNOWN), case-insensitive."""
    value = opts.get(key)
    if value is None:
        return default
    try:
        return normalize_status(value)
    except ValueError:
        raise OptionError(
            f"option {key} must be OK, WARNING, CRITICAL or UNKNOWN, not {value!r}"
        ) from None


def fmt_percent(value: float | None) -> str:
    """`41.3`, or `41` for a whole number; `n/a` for None."""
    if value is None:
        return "n/a"
    return f"{value:.1f}".rstrip("0").rstrip(".")


def fmt_bytes(value: int) -> str:
    """Human-readable binary size: `512 B`, `1.5 GiB`."""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(size) < 1024 or unit == "PiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
