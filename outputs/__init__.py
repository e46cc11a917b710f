"""Outputs: one module per output, registered here by name.

A synchronous output renders a record now, in the check's process (stdout and friends).
A remote output delivers batches of records to a store and says, per record, how it went.
Other packages can add outputs through the entry-point group `accre_monitor.outputs`
(name = "module:Class").
"""

from __future__ import annotations

import importlib

from accre_monitor.errors import UserError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# output name -> "module:class"; modules are imported only when their output is used.
OUTPUTS: dict[str, str] = {
    "stdout": "accre_monitor.outputs.stdout:StdoutOutput",
    "nagios-stdout": "accre_monitor.outputs.nagios:NagiosOutput",
    "nagios-base64-stdout": "accre_monitor.outputs.nagios:NagiosBase64Output",
    "elasticsearch": "accre_monitor.outputs.elasticsearch:ElasticsearchOutput",
    "redis": "accre_monitor.outputs.redis:RedisOutput",
    "couch": "accre_monitor.outputs.couch:CouchOutput",
}

ENTRY_POINT_GROUP = "accre_monitor.outputs"


def output_class(name: str) -> type:
    """The class behind an output name, or a UserError listing the known names."""
    target = OUTPUTS.get(name) or _from_entry_points(name)
    if target is None:
        known = ", ".join(sorted(OUTPUTS))
        raise UserError(f"unknown output {name!r} (known outputs: {known})")
    module_name, _, class_name = target.partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def create_output(name: str, settings: dict[str, Any]) -> Any:
    """An output instance configured from its `[outputs.NAME]` settings."""
    return output_class(name)(name, settings)


def _from_entry_points(name: str) -> str | None:
    from importlib.metadata import entry_points

    for entry_point in entry_points(group=ENTRY_POINT_GROUP, name=name):
        return entry_point.value
    return None
