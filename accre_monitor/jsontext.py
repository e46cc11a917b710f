"""JSON text without importing the json package: written exactly as
`json.dumps(value, ensure_ascii=False, allow_nan=False)` writes it, compact or indented, and
read back as `json.loads` reads it.

`import json` costs a run more than anything else it does for a stdout output: its decoder
brings in `re`, and `re` brings `enum`, `functools` and `collections`. The C accelerator
`_json` that json itself uses holds all that is needed: `make_encoder` writes the compact
form, `encode_basestring` the strings of the indented one, which is laid out here the way
json's own indenting encoder does it, and `make_scanner` reads.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

try:
    from _json import encode_basestring, make_encoder, make_scanner
except ImportError:  # an interpreter without the accelerator: json itself, same text
    encode_basestring = make_encoder = make_scanner = None


def dumps(
    value: Any, indent: int | None = None, default: Callable[[Any], Any] | None = None
) -> str:
    """`json.dumps(value, indent=indent, default=default, ensure_ascii=False, allow_nan=False,
    separators=(",", ": ") if indent else (",", ":"))`, and the same errors."""
    if default is None:
        default = _no_default
    if make_encoder is None:
        import json

        separators = (",", ": ") if indent else (",", ":")
        return json.dumps(
            value,
            indent=indent,
            default=default,
            ensure_ascii=False,
            allow_nan=False,
            separators=separators,
        )
    if indent is None:
        # markers (a fresh dict each time: an error leaves it dirty) catch circular references
        encode = make_encoder({}, default, encode_basestring, None, ":", ",", False, False, False)
        return "".join(encode(value, 0))
    parts: list[str] = []
    _Indented(parts, " " * indent, ": " if indent else ":", default).value(value, 0)
    return "".join(parts)


def _no_default(value: Any) -> Any:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


def _float(value: float) -> str:
    if value != value or value in (_INFINITY, -_INFINITY):
        raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
    return float.__repr__(value)


_INFINITY = float("inf")
_NAN = float("nan")


class _Indented:
    """The indented layout of json's encoder: one item per line, `": "` after each key (`":"`
    with an indent of 0), empty containers as `[]` and `{}`, subclasses of int and float as
    their plain values."""

    __slots__ = ("parts", "indent", "key_separator", "default", "markers")

    def __init__(
        self, parts: list[str], indent: str, key_separator: str, default: Callable[[Any], Any]
    ) -> None:
        self.parts = parts
        self.indent = indent
        self.key_separator = key_separator
        self.default = default
        self.markers: dict[int, Any] = {}

    def value(self, value: Any, level: int) -> None:
        if isinstance(value, str):
            self.parts.append(encode_basestring(value))
        elif value is None:
            self.parts.append("null")
        elif value is True:
            self.parts.append("true")
        elif value is False:
            self.parts.append("false")
        elif isinstance(value, int):
            self.parts.append(int.__repr__(value))
        elif isinstance(value, float):
            self.parts.append(_float(value))
        elif isinstance(value, (list, tuple)):
            self.array(value, level)
        elif isinstance(value, dict):
            self.object(value, level)
        else:
            marker = self._enter(value)
            self.value(self.default(value), level)
            del self.markers[marker]

    def array(self, items: list | tuple, level: int) -> None:
        if not items:
            self.parts.append("[]")
            return
        marker = self._enter(items)
        newline = "\n" + self.indent * (level + 1)
        opening = "[" + newline
        separator = "," + newline
        for index, item in enumerate(items):
            self.parts.append(separator if index else opening)
            self.value(item, level + 1)
        self.parts.append("\n" + self.indent * level + "]")
        del self.markers[marker]

    def object(self, mapping: dict, level: int) -> None:
        if not mapping:
            self.parts.append("{}")
            return
        marker = self._enter(mapping)
        newline = "\n" + self.indent * (level + 1)
        self.parts.append("{" + newline)
        separator = "," + newline
        first = True
        for key, item in mapping.items():
            text = _key(key)
            if first:
                first = False
            else:
                self.parts.append(separator)
            self.parts.append(encode_basestring(text) + self.key_separator)
            self.value(item, level + 1)
        self.parts.append("\n" + self.indent * level + "}")
        del self.markers[marker]

    def _enter(self, container: Any) -> int:
        marker = id(container)
        if marker in self.markers:
            raise ValueError("Circular reference detected")
        self.markers[marker] = container
        return marker


def _key(key: Any) -> str:
    """An object key as json writes it: text as it is, numbers, booleans and null as text."""
    if isinstance(key, str):
        return key
    if isinstance(key, float):
        return _float(key)
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    if isinstance(key, int):
        return int.__repr__(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {key.__class__.__name__}")


def loads(text: str) -> Any:
    """`json.loads(text)` for a str, with its errors: a JSONDecodeError (a ValueError) when
    the text is not one JSON value (only then is json imported, to raise it)."""
    if make_scanner is None:
        import json

        return json.loads(text)
    if text.startswith("\ufeff"):
        _fail("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    try:
        value, end = _scan(text, _after_space(text, 0))
    except StopIteration as stop:
        _fail("Expecting value", text, stop.value)
    end = _after_space(text, end)
    if end != len(text):
        _fail("Extra data", text, end)
    return value


class _Reading:
    """The settings json's default decoder gives its scanner: strict strings, and the
    constants NaN, Infinity and -Infinity."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": -_INFINITY, "Infinity": _INFINITY, "NaN": _NAN}.__getitem__


_scan = None if make_scanner is None else make_scanner(_Reading())


def _after_space(text: str, index: int) -> int:
    """The index of the first character at or after `index` that is not JSON white space."""
    while index < len(text) and text[index] in " \t\n\r":
        index += 1
    return index


def _fail(message: str, text: str, index: int) -> NoReturn:
    from json import JSONDecodeError

    raise JSONDecodeError(message, text, index) from None
