"""A reader of Nagios plugin output, written from the monitoring-plugins development guidelines.

Independent of accre_monitor's renderer, so tests can hold its output to the grammar:

    TEXT OUTPUT | OPTIONAL PERFDATA
    LONG TEXT LINE 1
    ...

PERFDATA is a space-separated list of `'label'=value[UOM];[warn];[crit];[min];[max]`:
the quotes around the label are optional, required when it holds a space, `=` or `'`,
and `''` inside them is one `'`; value, min and max are in the class [-0-9.]; UOM is
none, s, ms, us, %, B, KB, MB, GB, TB or c; warn and crit are ranges `[@]start:end`
(start `~` or a number, which may be left out with its colon; end empty or a number);
trailing empty fields may be dropped.
"""

import re
from dataclasses import dataclass

NUMBER = r"-?[0-9.]+"
UOM = r"(?:s|ms|us|%|B|KB|MB|GB|TB|c)?"
RANGE = rf"@?(?:(?:~|{NUMBER})?:)?(?:{NUMBER})?"
VALUE_FIELDS = re.compile(
    rf"^(?P<value>{NUMBER})(?P<uom>{UOM})"
    rf"(?:;(?P<warn>{RANGE})(?:;(?P<crit>{RANGE})"
    rf"(?:;(?P<min>{NUMBER})?(?:;(?P<max>{NUMBER})?)?)?)?)?$"
)


class GrammarError(AssertionError):
    """The text breaks the guidelines' grammar."""


@dataclass
class Metric:
    label: str
    value: float
    uom: str
    warn: str | None
    crit: str | None
    min: float | None
    max: float | None


@dataclass
class PluginOutput:
    text: str
    perfdata: list[Metric]
    long_lines: list[str]

    def metric(self, label: str) -> Metric:
        found = [m for m in self.perfdata if m.label == label]
        if len(found) != 1:
            raise AssertionError(f"{len(found)} metrics labelled {label!r} in {self.perfdata}")
        return found[0]


def parse_plugin_output(output: str) -> PluginOutput:
    """The first line's text and performance data, and the long text lines below it."""
    first, *rest = output.rstrip("\n").split("\n")
    text, bar, perf = first.partition("|")
    return PluginOutput(text.rstrip(), parse_perfdata(perf.strip()) if bar else [], rest)


def parse_perfdata(text: str) -> list[Metric]:
    metrics = []
    position = 0
    while position < len(text):
        if text[position] == " ":
            position += 1
            continue
        label, position = _label(text, position)
        if text[position : position + 1] != "=":
            raise GrammarError(f"no '=' after label {label!r} in {text!r}")
        end = text.find(" ", position + 1)
        end = len(text) if end < 0 else end
        metrics.append(_fields(label, text[position + 1 : end]))
        position = end
    return metrics


def _label(text: str, position: int) -> tuple[str, int]:
    if text[position] == "'":
        chars = []
        position += 1
        while True:
            if position >= len(text):
                raise GrammarError(f"unterminated quoted label in {text!r}")
            if text[position] == "'":
                if text[position + 1 : position + 2] == "'":
                    chars.append("'")
                    position += 2
                    continue
                return "".join(chars), position + 1
            chars.append(text[position])
            position += 1
    end = text.find("=", position)
    if end < 0:
        raise GrammarError(f"no '=' in {text[position:]!r}")
    label = text[position:end]
    if not label or " " in label or "'" in label:
        raise GrammarError(f"label {label!r} needs quotes or is empty")
    return label, end


def _fields(label: str, text: str) -> Metric:
    match = VALUE_FIELDS.match(text)
    if match is None:
        raise GrammarError(f"{label!r}: {text!r} is not value[UOM];warn;crit;min;max")
    for key in ("warn", "crit"):
        if match[key] is not None and match[key] != "":
            _check_range(label, match[key])

    def number(key: str) -> float | None:
        return float(match[key]) if match[key] else None

    return Metric(
        label,
        float(match["value"]),
        match["uom"],
        match["warn"] or None,
        match["crit"] or None,
        number("min"),
        number("max"),
    )


def _check_range(label: str, text: str) -> None:
    """start <= end, as the guidelines require."""
    body = text.removeprefix("@")
    if ":" not in body:
        start, end = "0", body
    else:
        start, _, end = body.partition(":")
    if start in ("~", "") or end == "":
        return
    if float(start) > float(end):
        raise GrammarError(f"{label!r}: range {text!r} has start > end")


def alerts(range_text: str, value: float) -> bool:
    """Whether `value` alerts against a range, by the guidelines' table (not accre_monitor's)."""
    inside = range_text.startswith("@")
    body = range_text.removeprefix("@")
    start_text, _, end_text = body.rpartition(":") if ":" in body else ("0", "", body)
    start = float("-inf") if start_text == "~" else float(start_text or 0)
    end = float(end_text) if end_text else float("inf")
    within = start <= value <= end
    return within if inside else not within
