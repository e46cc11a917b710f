"""`nagios-stdout` and `nagios-base64-stdout`: plugin output Nagios understands.

First line `SHORT | PAYLOAD`, then the long text. Nagios cuts plugin text at the first
`|`, so a `|` inside the short or long text is written as `/`. The payload is the
single-line JSON record (`payload = "json"`, the default), the same base64-encoded
(`nagios-base64-stdout`), or performance data that graphing tools read
(`payload = "perfdata"`, nagios-stdout only: base64 exists to carry the whole record,
and base64-encoded performance data would be read by nothing).
"""

from __future__ import annotations

from accre_monitor.outputs.base import Output, write_stdout
from accre_monitor.record import to_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PAYLOADS = ("json", "perfdata")


def short_text(record: dict[str, Any]) -> str:
    """The check's own short text, or `NAME STATUS` when it gave none; always one line."""
    short = record.get("short") or f"{record['name']} {record['status']}"
    return " ".join(short.replace("|", "/").split())


def render(record: dict[str, Any], encode_base64: bool = False, payload: str = "json") -> str:
    if payload == "perfdata":
        from accre_monitor.perfdata import render as perfdata

        text = perfdata(record)
    else:
        text = to_json(record)
        if encode_base64:
            import base64

            text = base64.b64encode(text.encode()).decode("ascii")
    lines = [f"{short_text(record)} | {text}" if text else short_text(record)]
    long = record.get("long")
    if long:
        lines.append(long.replace("|", "/").rstrip("\n"))
    return "\n".join(lines) + "\n"


class NagiosOutput(Output):
    settings_keys: dict[str, Any] = {"payload": "json"}

    def __init__(self, name: str, settings: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(name, settings, **kw)
        self.payload = self.settings["payload"]
        if self.payload not in PAYLOADS:
            raise self._bad("payload", 'must be "json" or "perfdata"')

    def emit(self, record: dict[str, Any]) -> None:
        write_stdout(render(record, payload=self.payload))


class NagiosBase64Output(Output):
    def emit(self, record: dict[str, Any]) -> None:
        write_stdout(render(record, encode_base64=True))
