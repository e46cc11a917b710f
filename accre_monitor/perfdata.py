"""Performance data, the part of a Nagios plugin's output after `|` that graphing tools read.

Each number in a record's data becomes one item `'label'=value[UOM];warn;crit;min;max`
(the monitoring-plugins development guidelines). The label is the number's path in the
data: object keys joined with `.`, list items by position (`0`, `1`, ...) or by the names
the check gives; a number as the whole data is labelled with the check's name. Booleans,
strings and nulls are not numbers and give no item.

A check describes its numbers with optional hints, the 5th element of its return value,
kept in the record as `perf`: `{path: hint}`. A path is a label as above, where `*`
stands for any one part (`mounts.*.used_percent`); `$` is the data itself. A hint holds
any of:

  uom     unit: "", "s", "ms", "us", "%", "B", "KB", "MB", "GB", "TB" or "c"
  warn    the warning threshold used: a Range, range text or number ("~:10", "@80:")
  crit    the critical threshold used, likewise
  min     the least value possible, a number
  max     the greatest value possible, a number
  labels  for a list: its items' labels, by position (["load1", "load5", "load15"]),
          or the key of its objects whose value names each item ("mount")
  omit    true: no items from this path and below (settings, pids, epoch times)
"""

from __future__ import annotations

from accre_monitor.range import Range, format_number

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ROOT = "$"  # the path of the data itself
UNITS = ("", "s", "ms", "us", "%", "B", "KB", "MB", "GB", "TB", "c")
HINT_KEYS = ("uom", "warn", "crit", "min", "max", "labels", "omit")


# -- hints, as a check returns them -> plain JSON for the record ---------------------------


def normalize_hints(perf: Any) -> dict[str, dict[str, Any]]:
    """A check's hints as plain JSON (ranges as their text); ValueError says what is wrong."""
    if not isinstance(perf, dict):
        raise ValueError(f"hints must be a mapping of label paths, not {type(perf).__name__}")
    result = {}
    for path, hint in perf.items():
        if not isinstance(path, str):
            raise ValueError(f"hint path {path!r} is not a string")
        if not isinstance(hint, dict):
            raise ValueError(f"hint for {path!r} must be a mapping, not {type(hint).__name__}")
        unknown = sorted(str(key) for key in hint if key not in HINT_KEYS)
        if unknown:
            raise ValueError(
                f"hint for {path!r} has unknown keys {', '.join(unknown)} "
                f"(known: {', '.join(HINT_KEYS)})"
            )
        result[path] = {
            key: _normalize_value(path, key, value)
            for key, value in hint.items()
            if value is not None
        }
    return result


def _normalize_value(path: str, key: str, value: Any) -> Any:
    where = f"hint {key} for {path!r}"
    if key in ("warn", "crit"):
        if isinstance(value, (Range, str)) or _is_number(value):
            return str(Range(value))
        raise ValueError(f"{where} must be a range, not {value!r}")
    if key in ("min", "max"):
        if _is_number(value) and value == value and value not in (float("inf"), float("-inf")):
            return value
        raise ValueError(f"{where} must be a finite number, not {value!r}")
    if key == "uom":
        if value in UNITS:
            return value
        raise ValueError(f"{where} must be one of {', '.join(map(repr, UNITS))}, not {value!r}")
    if key == "labels":
        if isinstance(value, str) or (
            isinstance(value, list) and all(isinstance(item, str) for item in value)
        ):
            return value
        raise ValueError(f"{where} must be a key name or a list of labels, not {value!r}")
    if isinstance(value, bool):  # omit
        return value
    raise ValueError(f"{where} must be true or false, not {value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- rendering ------------------------------------------------------------------------------


def render(record: dict[str, Any]) -> str:
    """The record's performance data: space-separated items, '' when the data holds no number."""
    return " ".join(
        item(label, value, hint) for label, value, hint in metrics(record.get("data"), record)
    )


def metrics(data: Any, record: dict[str, Any]) -> list[tuple[str, Any, dict[str, Any]]]:
    """(label, number, hint) for every number in `data`, in order; a repeated label is skipped."""
    hints: dict[str, dict[str, Any]] = record.get("perf") or {}
    patterns = [(path.split("."), hint) for path, hint in hints.items() if "*" in path]
    found: list[tuple[str, Any, dict[str, Any]]] = []
    seen: set[str] = set()

    def hint_for(path: tuple[str, ...]) -> dict[str, Any]:
        exact = hints.get(".".join(path) if path else ROOT)
        if exact is not None:
            return exact
        for segments, hint in patterns:
            if len(segments) == len(path) and all(
                want in ("*", got) for want, got in zip(segments, path, strict=True)
            ):
                return hint
        return {}

    def walk(value: Any, path: tuple[str, ...]) -> None:
        hint = hint_for(path)
        if hint.get("omit"):
            return
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, (*path, str(key)))
        elif isinstance(value, list):
            names = hint.get("labels")
            for index, item in enumerate(value):
                walk(item, (*path, _item_label(names, index, item)))
        elif _is_number(value):
            label = ".".join(path) or str(record.get("name") or "value")
            if label not in seen:
                seen.add(label)
                found.append((label, value, hint))

    walk(data, ())
    return found


def _item_label(names: Any, index: int, item: Any) -> str:
    """A list item's label: its name from `labels`, the value of the naming key, or its index."""
    if isinstance(names, list) and index < len(names):
        return names[index]
    if isinstance(names, str) and isinstance(item, dict):
        name = item.get(names)
        if isinstance(name, str) and name:
            return name
        if _is_number(name):
            return format_number(name)
    return str(index)


def item(label: str, value: Any, hint: dict[str, Any]) -> str:
    """One `'label'=value[UOM];warn;crit;min;max`, trailing empty fields dropped."""
    fields = [
        format_number(value) + hint.get("uom", ""),
        hint.get("warn", ""),
        hint.get("crit", ""),
        _number_field(hint.get("min")),
        _number_field(hint.get("max")),
    ]
    while fields[-1] == "":
        fields.pop()
    return f"{quote_label(label)}={';'.join(fields)}"


def _number_field(value: Any) -> str:
    return "" if value is None else format_number(value)


def quote_label(label: str) -> str:
    """The label, single-quoted when it holds a space, `=` or `'` (a `'` written twice).

    A `|` becomes `/` and other white space a plain space: Nagios cuts its output at
    the first `|`, and an item ends at white space.
    """
    label = "".join("/" if char == "|" else " " if char.isspace() else char for char in label)
    if " " in label or "=" in label or "'" in label:
        return "'" + label.replace("'", "''") + "'"
    return label
