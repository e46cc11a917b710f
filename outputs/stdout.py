"""`stdout`: the record as indented JSON, the default when nothing else is configured."""

from __future__ import annotations

from accre_monitor.outputs.base import Output, write_stdout
from accre_monitor.record import to_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class StdoutOutput(Output):
    def emit(self, record: dict[str, Any]) -> None:
        write_stdout(to_json(record, indent=2) + "\n")
