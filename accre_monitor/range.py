"""Nagios threshold ranges: `10`, `10:`, `~:10`, `10:20`, `@10:20`.

The syntax of the monitoring-plugins development guidelines: `[@]start:end`, both ends
inclusive. A value alerts when it lies outside the range, or inside it with `@`. `start`
and the colon may be left out when start is 0 (`10` is `0:10`), an empty end is +infinity
(`10:`), and `~` as start is -infinity (`~:10`). So:

  10      alerts below 0 or above 10        10:20   alerts below 10 or above 20
  10:     alerts below 10                   @10:20  alerts from 10 to 20, both included
  ~:10    alerts above 10

Parsed by hand: this runs in every check, and `re` costs more than the whole parse.
"""

from __future__ import annotations

INF = float("inf")

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SYNTAX = "10, 10:, ~:10, 10:20 or @10:20"


class Range:
    """A threshold range; `alerts(value)` says whether a value crosses it.

    `Range("@10:20")`, `Range(10)` (a number means `0:N`, as on a Nagios command line),
    or from bounds with `Range.between` and the named forms `alert_above` and friends.
    """

    __slots__ = ("start", "end", "inside")

    def __init__(self, spec: str | int | float | Range) -> None:
        if isinstance(spec, Range):
            self.start, self.end, self.inside = spec.start, spec.end, spec.inside
            return
        if isinstance(spec, bool) or not isinstance(spec, (str, int, float)):
            raise TypeError(f"a range is text or a number, not {type(spec).__name__}")
        self.start, self.end, self.inside = _parse(spec if isinstance(spec, str) else str(spec))

    @classmethod
    def between(cls, start: float = 0, end: float = INF, *, inside: bool = False) -> Range:
        """The range from `start` to `end` (alerting inside it when `inside`)."""
        if not start <= end:  # also refuses NaN
            raise ValueError(f"range start {start} is greater than its end {end}")
        new = cls.__new__(cls)
        new.start, new.end, new.inside = start, end, inside
        return new

    @classmethod
    def alert_above(cls, limit: float) -> Range:
        """Alerts when a value is above `limit` (`~:limit`)."""
        return cls.between(-INF, limit)

    @classmethod
    def alert_below(cls, limit: float) -> Range:
        """Alerts when a value is below `limit` (`limit:`)."""
        return cls.between(limit, INF)

    @classmethod
    def alert_at_or_above(cls, limit: float) -> Range:
        """Alerts when a value reaches `limit` or more (`@limit:`)."""
        return cls.between(limit, INF, inside=True)

    @classmethod
    def alert_at_or_below(cls, limit: float) -> Range:
        """Alerts when a value is `limit` or less (`@~:limit`)."""
        return cls.between(-INF, limit, inside=True)

    def alerts(self, value: float) -> bool:
        """True when `value` crosses the threshold: outside the range, or inside with `@`."""
        within = self.start <= value <= self.end
        return within if self.inside else not within

    def __str__(self) -> str:
        prefix = "@" if self.inside else ""
        end = "" if self.end == INF else format_number(self.end)
        if self.start == 0 and end and not self.inside:  # `@10` is valid, `@0:10` clearer
            return end
        start = "~" if self.start == -INF else format_number(self.start)
        return f"{prefix}{start}:{end}"

    def __repr__(self) -> str:
        return f"Range({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Range):
            return NotImplemented
        return (self.start, self.end, self.inside) == (other.start, other.end, other.inside)

    def __hash__(self) -> int:
        return hash((self.start, self.end, self.inside))


def _parse(text: str) -> tuple[float, float, bool]:
    spec = text.strip()
    inside = spec.startswith("@")
    body = spec[1:] if inside else spec
    if not body:
        raise ValueError(f"empty range {text!r} (expected {SYNTAX})")
    start_text, colon, end_text = body.partition(":")
    if not colon:
        start, end = 0, _bound(start_text, text)
    else:
        # An empty start is 0, as in the monitoring-plugins C library.
        start = -INF if start_text == "~" else _bound(start_text, text) if start_text else 0
        end = _bound(end_text, text) if end_text else INF
    if start > end:
        raise ValueError(f"invalid range {text!r}: start is greater than end")
    return start, end, inside


def _bound(part: str, text: str) -> Any:
    """One end of a range: a finite number (`inf` and `nan` are words to a user)."""
    try:
        return int(part)
    except ValueError:
        pass
    try:
        value = float(part)
    except ValueError:
        value = INF  # refused just below, with the same message as inf and nan
    if value != value or value in (INF, -INF):
        what = "" if part == text.strip().lstrip("@") else f": {part!r} is not a number"
        raise ValueError(f"invalid range {text!r}{what} (expected {SYNTAX})")
    return value


def format_number(value: float) -> str:
    """A number as plugins write it: digits, `-` and `.` only (no exponent), `3` for 3.0."""
    if isinstance(value, int):
        return str(value)
    if value.is_integer():
        return str(int(value))
    text = repr(value)
    if "e" in text or "E" in text:
        text = f"{value:.20f}".rstrip("0").rstrip(".")
    return text
