"""The options a check declares: `@monitor_command(options=[Option(...), ...])`.

The built-in checks and a site's checks declare their options the same way. A declared check
is called with every option parsed (the default for one not given) and never with options it
cannot use: an unknown name, a value that does not parse, or an option given without a value
(a bare `--warning`, or an empty NRPE argument, must not switch alerting off) gives an UNKNOWN
result naming the option, without calling the check. `accre-monitor CHECK -h` lists them.

Values arrive from JSON (any JSON type) or from the command line, where
`interpret_string_value` has already turned `'3'` into 3 and `'a,b'` into `['a', 'b']`.

Built-in checks import this module on every run: no typing, re, functools or dataclasses.
"""

from __future__ import annotations

from accre_monitor.range import INF, SYNTAX, Range
from accre_monitor.status import UNKNOWN

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class OptionError(ValueError):
    """An option value a check cannot use; the message names the option.

    Raised by a declared check itself (say, for two options that contradict each other), it
    gives the same UNKNOWN result as a value refused before the check runs.
    """


class Threshold(Range):
    """A threshold option's value: a Range, which also keeps the value as it was given
    (`80`, or the range's text), for the check's data."""

    __slots__ = ("given",)

    def __init__(self, spec: Any, given: Any = None) -> None:
        super().__init__(spec)
        self.given = str(self) if given is None else given

    @property
    def range(self) -> Range:
        """A plain Range (without `given`)."""
        return Range(self)


class Option:
    """One option of a check: its name, type, default, help line and bounds.

    `type` is what the value must be, and what the check gets:

    - `str`: one string; `int`, `float`: a finite number within `minimum` and `maximum`
      (numeric strings accepted); `bool`: a flag (a bare `--verbose` is true).
    - `list`: a list of strings (`--mounts /,/home`; one value is a list of one).
    - `Range`: a threshold, a Nagios range (`10`, `10:`, `~:10`, `10:20`, `@10:20`), where a
      plain number N means `0:N` as on any plugin's command line; or one of
      `Range.alert_above`, `alert_below`, `alert_at_or_above`, `alert_at_or_below` to give a
      plain number that meaning. `minimum` and `maximum` bound plain numbers. The check gets a
      `Range` (whose `given` attribute is the value as given).
    - `[T]`: a list of values of type T (one value is a list of one).
    - any other callable: called with the value; a ValueError or TypeError it raises refuses
      the value with its message.

    `default` is a value as `--options` JSON would give it (`80`, `"/scratch"`, `["a", "b"]`)
    and is parsed like a given one; None means no default (the check gets None). An option that
    takes a value and is given without one (`--warning` alone, `--warning ""`, JSON null) is
    refused: it never falls back to the default.
    """

    __slots__ = ("name", "type", "default", "help", "required", "metavar", "value", "_parse")

    def __init__(
        self,
        name: str,
        type: Any = str,
        default: Any = None,
        help: str = "",
        *,
        required: bool = False,
        metavar: str | None = None,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"option name {name!r} is not a Python identifier")
        self.name = name
        self.type = type
        self.default = default
        self.help = help
        self.required = required
        self._parse = _parser(name, type, minimum, maximum)
        self.metavar = _metavar(type) if metavar is None else metavar
        if default is None:
            self.value = False if type is bool else None
        else:
            self.value = self.parse(default)  # a bad default fails when the check is declared

    def parse(self, value: Any) -> Any:
        """The value the check gets, or an OptionError naming the option."""
        if self.type is not bool and (value is None or value == ""):
            raise OptionError(f"option {self.name} needs a value")
        return self._parse(value)

    def takes_value(self) -> bool:
        return self.type is not bool

    def invocation(self) -> str:
        """`-w, --warning PCT`, `--mounts PATHS`, `--verbose`: how it is given."""
        short = {"warning": "-w, ", "critical": "-c, "}.get(self.name, "")
        text = f"{short}--{self.name}"
        return f"{text} {self.metavar}" if self.takes_value() and self.metavar else text

    def describe(self) -> str:
        """The help line with its default: `WARNING at PCT percent (default: 80)`."""
        text = self.help
        if self.required:
            note = "required"
        elif self.default is None or self.default is False:
            note = ""
        elif isinstance(self.default, (list, tuple)):
            note = "default: " + ",".join(str(item) for item in self.default)
        elif self.default is True:
            note = "default: true"
        else:
            note = f"default: {self.default}"
        return f"{text} ({note})" if note and text else text or (f"({note})" if note else "")

    def __repr__(self) -> str:
        return f"Option({self.name!r}, {self.type!r}, {self.default!r})"


class CheckOptions:
    """The options one check declares, and its label for the short text of a refusal."""

    __slots__ = ("check", "label", "options")

    def __init__(self, check: str, options: Any, label: str | None) -> None:
        options = list(options)
        names: dict[str, Option] = {}
        for option in options:
            if not isinstance(option, Option):
                raise TypeError(f"check {check}: options are Option(...), not {option!r}")
            if option.name in names:
                raise ValueError(f"check {check}: option {option.name} is declared twice")
            names[option.name] = option
        self.check = check
        self.label = label or check.upper()
        self.options = names

    def parse(self, opts: Any) -> dict[str, Any]:
        """Every declared option's value, or an OptionError saying what is wrong."""
        if opts is None:
            opts = {}
        if not isinstance(opts, dict):
            raise OptionError(f"options must be a mapping, not {type(opts).__name__}")
        unknown = [str(key) for key in opts if key not in self.options]
        if unknown:
            raise OptionError(self._unknown(unknown))
        parsed = {}
        for name, option in self.options.items():
            if name in opts:
                parsed[name] = option.parse(opts[name])
            elif option.required:
                raise OptionError(f"option {name} is required")
            else:
                value = option.value
                parsed[name] = list(value) if isinstance(value, list) else value
        return parsed

    def _unknown(self, unknown: list[str]) -> str:
        from accre_monitor.options import GLOBAL_OPTIONS, VERSION_FLAG

        for name in unknown:
            if f"--{name}" == VERSION_FLAG:
                return f"{VERSION_FLAG} is an accre-monitor option: run accre-monitor --version"
            if f"--{name}" in GLOBAL_OPTIONS:
                return (
                    f"--{name} is an accre-monitor option: it goes before the check name "
                    f"(accre-monitor --{name} ... {self.check})"
                )
        return (
            f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(sorted(unknown))} "
            f"(known: {', '.join(self.options) or 'none'})"
        )

    def refusal(self, error: Exception) -> tuple:
        """The UNKNOWN result for options refused: `LOAD UNKNOWN - option warning: ...`."""
        return UNKNOWN, {"error": str(error)}, f"{self.label} UNKNOWN - {error}", None


def declare(func: Callable, options: Any, label: str | None) -> Callable:
    """`func` behind its declared options: called with them parsed, or not at all."""
    spec = CheckOptions(func.__name__, options, label)

    def check(opts: Any) -> Any:
        try:
            return func(spec.parse(opts))
        except OptionError as err:
            return spec.refusal(err)

    check.__name__ = func.__name__
    check.__qualname__ = func.__qualname__
    check.__module__ = func.__module__
    check.__doc__ = func.__doc__
    check.__wrapped__ = func  # type: ignore[attr-defined]
    check.__monitor_options__ = spec  # type: ignore[attr-defined]
    return check


def declared_options(func: Any) -> CheckOptions | None:
    """A check's declared options, None for a check that declares none."""
    return getattr(func, "__monitor_options__", None)


# The types


def _parser(name: str, kind: Any, minimum: float | None, maximum: float | None) -> Callable:
    """The function that turns a given value (never None) into what the check gets."""
    if kind is str:
        return lambda value: _text(name, value)
    if kind is int or kind is float:
        return lambda value: _number(name, value, kind is int, minimum, maximum)
    if kind is bool:
        return lambda value: _flag(name, value)
    if kind is list:
        return lambda value: [_item_text(name, item) for item in _as_list(value)]
    if kind is Range or getattr(kind, "__self__", None) is Range:
        return lambda value: threshold_value(name, value, kind, minimum=minimum, maximum=maximum)
    if isinstance(kind, list) and len(kind) == 1:
        item = _parser(name, kind[0], minimum, maximum)
        return lambda value: [item(part) for part in _as_list(value)]
    if callable(kind):
        return lambda value: _custom(name, kind, value)
    raise TypeError(f"option {name}: type {kind!r} is not a type or a function")


def _metavar(kind: Any) -> str:
    if kind is str:
        return "TEXT"
    if kind is int:
        return "N"
    if kind is float:
        return "NUMBER"
    if kind is list:
        return "TEXT,..."
    if kind is Range or getattr(kind, "__self__", None) is Range:
        return "RANGE"
    if isinstance(kind, list) and len(kind) == 1:
        return f"{_metavar(kind[0])},..."
    return "VALUE"


def _custom(name: str, kind: Callable, value: Any) -> Any:
    try:
        return kind(value)
    except OptionError:
        raise
    except (ValueError, TypeError) as err:
        raise OptionError(f"option {name}: {err}") from None


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _text(name: str, value: Any) -> str:
    """One non-empty string; a number is taken as its text (the command line made it one)."""
    if isinstance(value, (list, tuple)):
        raise OptionError(
            f"option {name} takes one value, not a list {value!r} "
            "(a value with a comma must be passed as JSON with --options)"
        )
    return _item_text(name, value)


def _item_text(name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or value == "":
        raise OptionError(f"option {name} must be a non-empty string, not {value!r}")
    return value if isinstance(value, str) else str(value)


def _number(
    name: str, value: Any, integer: bool, minimum: float | None, maximum: float | None
) -> int | float:
    """A finite number (int when `integer`) within [minimum, maximum]; booleans are not."""
    parsed = to_number(value)
    if (
        parsed is None
        or (integer and parsed != int(parsed))
        or (minimum is not None and parsed < minimum)
        or (maximum is not None and parsed > maximum)
    ):
        raise OptionError(
            f"option {name} must be {_describe(integer, minimum, maximum)}, not {value!r}"
        )
    return int(parsed) if integer else parsed


_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n"}


def _flag(name: str, value: Any) -> bool:
    """A bare `--flag` (None) is true; else a JSON/str/0-1 boolean."""
    if value is None or value is True or value is False:
        return value is not False
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise OptionError(f"option {name} must be true or false, not {value!r}")


def to_number(value: Any) -> float | int | None:
    """A finite number from a number or numeric text; None for anything else (booleans too)."""
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


def threshold_value(
    name: str,
    value: Any,
    plain: Callable[[float], Range] = Range,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
) -> Threshold:
    """One threshold: a plain number in the check's own meaning, or a Nagios range as written.

    `plain` turns a number into the Range it means for the check (`Range.alert_above` for
    "above N", ...; `Range` itself for the plugins' `0:N`); numbers, numeric strings included,
    must lie within [minimum, maximum]. Any other text is a range of the monitoring-plugins
    syntax (`10`, `10:`, `~:10`, `10:20`, `@10:20`), taken as written.
    """
    if isinstance(value, Range):
        return value if isinstance(value, Threshold) else Threshold(value)
    parsed = to_number(value)
    expected = f"{_describe(False, minimum, maximum)} or a range ({SYNTAX})"
    if parsed is not None:
        if (minimum is not None and parsed < minimum) or (maximum is not None and parsed > maximum):
            raise OptionError(f"option {name} must be {expected}, not {value!r}")
        try:
            return Threshold(plain(parsed), parsed)
        except ValueError as err:  # a meaning no range can express, e.g. 0:N for N < 0
            raise OptionError(f"option {name}: {err}") from None
    if isinstance(value, str):
        try:
            parsed_range = Range(value)
        except ValueError as err:
            # Text with a colon was meant as a range: say what is wrong with it.
            if ":" in value:
                raise OptionError(f"option {name}: {err}") from None
            raise OptionError(f"option {name} must be {expected}, not {value!r}") from None
        return Threshold(parsed_range)
    raise OptionError(f"option {name} must be {expected}, not {value!r}")


# Help


def help_text(name: str, func: Any) -> str:
    """`accre-monitor CHECK -h`: the docstring's summary, the declared options, the rest."""
    import inspect

    doc = inspect.cleandoc(func.__doc__ or "(no description)") if func else "(not importable)"
    spec = declared_options(func)
    if spec is None:
        return f"usage: accre-monitor [OPTIONS] {name} [--key value ...]\n\n{doc}\n"
    summary, _, rest = doc.partition("\n\n")
    parts = [
        f"usage: accre-monitor [OPTIONS] {name} [CHECK OPTIONS]",
        summary,
        _options_block(spec),
    ]
    if rest.strip():
        parts.append(rest.strip())
    return "\n\n".join(parts) + "\n"


def _options_block(spec: CheckOptions, width: int = 79) -> str:
    import textwrap

    if not spec.options:
        return "options: none"
    rows = [(option.invocation(), option.describe()) for option in spec.options.values()]
    column = min(max(len(invocation) for invocation, _ in rows), 26)
    lines = ["options:"]
    for invocation, text in rows:
        # the default note is never split: "(default:" at a line's end reads badly
        note = text.rfind("(default: ")
        if note >= 0:
            text = text[:note] + text[note:].replace(" ", "\xa0")
        wrapped = [
            line.replace("\xa0", " ") for line in textwrap.wrap(text, width - column - 4)
        ] or [""]
        if len(invocation) > column:
            lines.append(f"  {invocation}")
        else:
            lines.append(f"  {invocation:<{column}}  {wrapped.pop(0)}".rstrip())
        lines += [f"  {'':<{column}}  {line}" for line in wrapped]
    return "\n".join(lines)
