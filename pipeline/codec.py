"""Records on the wire and on disk: orjson, with the standard library as a fallback.

orjson refuses a few things json accepts (an integer beyond 64 bits); a record that
reached the pipeline was already valid JSON, so it is never refused here.
"""

from __future__ import annotations

from typing import Any

import orjson


def encode(record: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(record)
    except TypeError:
        import json

        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def decode(payload: bytes | str) -> dict[str, Any]:
    return orjson.loads(payload)
