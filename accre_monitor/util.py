"""Small helpers shared by checks and the command line."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any


def import_module(name: str) -> ModuleType:
    """The module of the absolute dotted `name`, imported if need be.

    `importlib.import_module` without importing importlib, and warnings with it, on every run.
    """
    import sys

    __import__(name)
    return sys.modules[name]


def interpret_string_value(value: str | None) -> Any:
    """Turn a command-line string into the value it spells.

    `'3'` -> 3, `'2.5'` -> 2.5, `'1,2,3'` -> [1, 2, 3] (each element interpreted),
    `'a,b'` -> ['a', 'b']; anything else stays a string and `None` stays `None`.
    """
    if value is None:
        return None
    if "," in value:
        return [_scalar(part) for part in value.split(",")]
    return _scalar(value)


def _scalar(text: str) -> int | float | str:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    # 'nan' and 'inf' parse as floats but are words to a user, and are not valid JSON.
    return number if number == number and number not in (float("inf"), float("-inf")) else text
