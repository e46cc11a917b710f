"""The result record: what one run of one check produced, in the shape every output receives.

`{"id", "node", "date", "name", "status", "data", "runtime"}` plus `"short"`, `"long"` and
`"perf"` when the check gave them. `id` makes every delivery idempotent downstream.

A check returns `(status, data[, short[, long[, perf]]])`. `perf` holds hints for the
performance data derived from `data` (units, the thresholds used, list item labels):
`{"$": {"labels": ["load1", "load5", "load15"]}, "load1": {"warn": Range("~:4")}}`;
accre_monitor/perfdata.py documents the paths and hint keys.
"""

from __future__ import annotations

import os
import time

# Imported before a check's process is forked: in the child, an import costs several times more.
from accre_monitor.perfdata import normalize_hints
from accre_monitor.status import UNKNOWN, normalize_status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    Record = dict[str, Any]


# Deepest nesting of lists and dicts accepted in a check's data: orjson, which carries the
# record through the pipeline, refuses more than 254 levels, and the record adds its own.
MAX_DEPTH = 200


class BadReturn(Exception):
    """A check returned something that is not a valid result."""


def new_id() -> str:
    """A random (version 4) UUID, without importing the uuid module on the hot path."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def iso_now(timestamp: float | None = None) -> str:
    """Local time, ISO 8601, milliseconds and UTC offset: `2026-11-24T08:55:32.123+01:00`."""
    timestamp = time.time() if timestamp is None else timestamp
    local = time.localtime(timestamp)
    offset = local.tm_gmtoff or 0
    sign = "+" if offset >= 0 else "-"
    hours, minutes = divmod(abs(offset) // 60, 60)
    millis = int(timestamp % 1 * 1000)
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{millis:03d}{sign}{hours:02d}:{minutes:02d}"
    )


def short_hostname() -> str:
    return os.uname().nodename.split(".")[0]


def to_json(value: Any, indent: int | None = None) -> str:
    """Strict JSON text (no NaN, string keys only), the way every output will see the data."""
    import json

    return json.dumps(
        value,
        indent=indent,
        ensure_ascii=False,
        allow_nan=False,
        separators=(",", ": ") if indent else (",", ":"),
        default=_refuse,
    )


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def normalize_return(retval: Any) -> tuple[str, Any, str | None, str | None, dict | None]:
    """Validate a check's return value: (status, data[, short[, long[, perf]]]), plain JSON."""
    if not isinstance(retval, (tuple, list)) or not 2 <= len(retval) <= 5:
        kind = f"a {len(retval)}-tuple" if isinstance(retval, tuple) else type(retval).__name__
        raise BadReturn(f"check returned {kind}; expected (status, data[, short[, long[, perf]]])")
    status, data, short, long, perf = (*retval, None, None, None)[:5]
    try:
        status = normalize_status(status)
    except ValueError as exc:
        raise BadReturn(f"check returned an {exc}") from None
    for label, text in (("short", short), ("long", long)):
        if text is not None and not isinstance(text, str):
            raise BadReturn(f"check returned a {label} text of type {type(text).__name__}")
    try:
        data = _plain(data, 1)
        to_json(data)
    except (TypeError, ValueError, RecursionError) as exc:
        raise BadReturn(f"check returned data that cannot be serialized: {exc}") from None
    short = None if short is None else clean_text(short)
    long = None if long is None else clean_text(long)
    if perf is not None:
        try:
            perf = normalize_hints(perf)
        except (TypeError, ValueError) as exc:
            raise BadReturn(f"check returned bad performance data hints: {exc}") from None
    return status, data, short, long, perf


def _plain(value: Any, depth: int) -> Any:
    """`value` as the JSON round trip will give it back: tuples become lists, text valid Unicode.

    Keys must be strings (json.dumps would silently turn 1 into "1"), and nesting stops at
    MAX_DEPTH so that every output can encode the record.
    """
    if isinstance(value, str):
        return clean_text(value)
    if not isinstance(value, (list, tuple, dict)):
        return value
    if depth > MAX_DEPTH:
        raise BadReturn(f"check returned data nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        plain = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"dict key {key!r} is {type(key).__name__}, not str")
            plain[clean_text(key)] = _plain(item, depth + 1)
        return plain
    return [_plain(item, depth + 1) for item in value]


def clean_text(text: str) -> str:
    """`text` with lone surrogates (undecodable bytes of a file name) replaced by U+FFFD.

    Such text cannot be encoded as UTF-8, so it would break every output of the record.
    """
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= char <= "\udfff" else char for char in text)
    return text


def safe_repr(value: Any, limit: int = 1000) -> str:
    """A bounded repr for error reports; never raises, whatever the value (deep, huge, odd)."""
    import reprlib

    shortener = reprlib.Repr()
    shortener.maxstring = shortener.maxother = 200
    shortener.maxlist = shortener.maxtuple = shortener.maxdict = 20
    try:
        text = shortener.repr(value)
    except Exception:  # noqa: BLE001 - a repr of the check's own making may fail any way
        text = f"<{type(value).__name__} object, repr failed>"
    return text[:limit]


def build_record(
    name: str,
    status: str,
    data: Any,
    short: str | None = None,
    long: str | None = None,
    perf: dict[str, Any] | None = None,
    *,
    runtime: float | None = None,
    node: str | None = None,
    date: str | None = None,
) -> Record:
    """Assemble a record from an already validated result."""
    record: Record = {
        "id": new_id(),
        "node": node or short_hostname(),
        "date": date or iso_now(),
        "name": name,
        "status": status,
        "data": data,
        "runtime": round(runtime, 6) if runtime is not None else None,
    }
    if short is not None:
        record["short"] = short
    if long is not None:
        record["long"] = long
    if perf is not None:
        record["perf"] = perf
    return record


def failure_result(message: str, details: dict[str, Any], long: str | None = None) -> tuple:
    """The (status, data, short, long, perf) of a check that could not produce its own result."""
    return UNKNOWN, {"error": message, **details}, f"UNKNOWN: {message}", long, None


def exception_result(exc: BaseException, traceback_text: str | None = None) -> tuple:
    """UNKNOWN carrying the exception type and message; the traceback goes in the long text."""
    try:
        text = clean_text(str(exc))
    except Exception:  # noqa: BLE001 - an exception's own __str__ may fail
        text = "<message unavailable: str() failed>"
    return failure_result(
        f"check raised {type(exc).__name__}: {text}",
        {"exception": type(exc).__name__, "message": text},
        None if traceback_text is None else clean_text(traceback_text),
    )


def record_from_return(
    name: str, retval: Any, runtime: float | None = None, node: str | None = None
) -> Record:
    """A record from a raw return value; anything invalid becomes an UNKNOWN record saying why."""
    try:
        result = normalize_return(retval)
    except BadReturn as exc:
        result = failure_result(str(exc), {"returned": safe_repr(retval)})
    return build_record(name, *result, runtime=runtime, node=node)
