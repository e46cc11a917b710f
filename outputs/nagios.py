"""`nagios-stdout` and `nagios-base64-stdout`: plugin output Nagios understands.

First line `SHORT | {single-line JSON record}` (the JSON base64-encoded in the second
form), then the long text. Nagios cuts plugin text at the first `|`, so a `|` inside
the short or long text is written as `/`.
"""

from __future__ import annotations

import sys

from accre_monitor.outputs.base import Output
from accre_monitor.record import to_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def short_text(record: dict[str, Any]) -> str:
    """The check's own short text, or `NAME STATUS` when it gave none; always one line."""
    short = record.get("short") or f"{record['name']} {record['status']}"
    return " ".join(short.replace("|", "/").split())


def render(record: dict[str, Any], encode_base64: bool = False) -> str:
    payload = to_json(record)
    if encode_base64:
        import base64

        payload = base64.b64encode(payload.encode()).decode("ascii")
    lines = [f"{short_text(record)} | {payload}"]
    long = record.get("long")
    if long:
        lines.append(long.replace("|", "/").rstrip("\n"))
    return "\n".join(lines) + "\n"


class NagiosOutput(Output):
    def emit(self, record: dict[str, Any]) -> None:
        sys.stdout.write(render(record))


class NagiosBase64Output(Output):
    def emit(self, record: dict[str, Any]) -> None:
        sys.stdout.write(render(record, encode_base64=True))
