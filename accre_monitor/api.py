"""`complete_check`: the end of every check run, for the CLI and for stand-alone scripts."""

from __future__ import annotations

import sys

from accre_monitor.status import EXITCODE_MAPS, UNKNOWN

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn


def publish(config: Any, record: dict[str, Any], bus: Any) -> int:
    """Send `record` to every output on `bus` and return the exit code for its status.

    Nothing that happens to the outputs changes the exit code: output failures are
    logged on stderr by the bus.
    """
    try:
        bus.publish(record)
    finally:
        bus.close()
        try:
            sys.stdout.flush()
        except (BrokenPipeError, OSError) as exc:
            from accre_monitor import log

            log.error("cannot write to stdout", error=str(exc))
    return EXITCODE_MAPS[config.system][record["status"]]


def complete_check(
    name: str,
    check_retval: Any,
    outputs: list[str] | None = None,
    runtime: float | None = None,
) -> NoReturn:
    """Build the result record from a check's return value, deliver it, and exit.

    `outputs` overrides the configured outputs. A return value that is not a valid
    result becomes an UNKNOWN record saying why. The exit code is the configured
    monitoring system's code for the status.
    """
    from accre_monitor.cli import report_unknown
    from accre_monitor.config import load_config
    from accre_monitor.errors import UserError
    from accre_monitor.pipeline.wiring import build_bus
    from accre_monitor.record import record_from_return

    config = None
    try:
        config = load_config()
        bus = build_bus(config, outputs)
    except UserError as exc:
        report_unknown(str(exc), config, None)
        sys.exit(EXITCODE_MAPS[config.system if config else "nagios"][UNKNOWN])
    record = record_from_return(name, check_retval, runtime=runtime, node=config.node)
    sys.exit(publish(config, record, bus))
