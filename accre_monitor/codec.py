"""Records as bytes, for the spool, the broker and the stores: orjson, exact in every case.

orjson is fast but narrower than JSON: it refuses to write an integer beyond 64 bits and
reads one back as a float (`2**70 + 12345` would arrive as `1.1805916207174113e+21`).
A record must be the same on every path (delivered inline, or spooled and replayed), so
such records go through the standard library instead, both ways.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

# 2**63 has 19 digits: a shorter run of digits always fits orjson's 64-bit integers.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")


def encode(record: Any) -> bytes:
    """Compact JSON bytes of `record`."""
    try:
        return orjson.dumps(record)
    except TypeError:  # an integer beyond 64 bits, or a string that is not valid UTF-8
        import json

        text = json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode("utf-8", "replace")


def decode(payload: bytes | str) -> Any:
    """The value of JSON `payload`; integers of any size come back as integers."""
    if _may_hold_big_integer(payload):
        import json

        return json.loads(payload)
    return orjson.loads(payload)


def _may_hold_big_integer(payload: bytes | str) -> bool:
    """Whether `payload` has a run of 19 or more digits (it may be an integer orjson
    cannot hold). Rare, and a false alarm (a long number inside a string) only costs a
    second, exact parse."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8", "surrogatepass")
    return _LONG_DIGITS.search(payload) is not None
