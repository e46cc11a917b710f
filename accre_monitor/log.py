"""Logging to stderr through structlog, configured on first use.

structlog costs more to import than a whole check run, so it is only loaded when
something is actually logged: a healthy run with stdout outputs never pays for it.
Set `ACCRE_MONITOR_LOG_FORMAT=json` for one JSON object per line (with its `timestamp`).
A daemon calls `with_timestamps()` to start its plain-text lines with the time as well.
Every line, in either format, goes through accre_monitor.redaction: no password or token
reaches stderr.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_logger: Any = None
_timestamps = False
_PROGRAM = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
if not _PROGRAM.startswith("accre-"):
    _PROGRAM = "accre-monitor"


class _Stderr:
    """Whatever sys.stderr is at the time of writing (tests and daemons swap it)."""

    def write(self, text: str) -> None:
        sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _scrub(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """The event and every value of a log line without secrets."""
    from accre_monitor.redaction import scrub_all

    return scrub_all(event_dict)


def _render_line(_logger: Any, method: str, event_dict: dict[str, Any]) -> str:
    """One readable line: `accre-monitor: warning: message (key='value' ...)`, after the time
    (`2025-04-17T10:00:00.123456Z accre-pipeline: ...`) when timestamps are on."""
    stamp = event_dict.pop("timestamp", None)
    event = event_dict.pop("event", "")
    level = event_dict.pop("level", method)
    extra = " ".join(f"{key}={value!r}" for key, value in event_dict.items())
    line = f"{_PROGRAM}: {level}: {event}" + (f" ({extra})" if extra else "")
    return f"{stamp} {line}" if stamp else line


def with_timestamps() -> None:
    """Start every plain-text line with its time, in UTC (ISO 8601), as JSON lines do: for
    daemons, whose lines are read long after. Nothing is imported until something is logged."""
    global _timestamps, _logger
    _timestamps = True
    _logger = None  # configured again, with the time stamper, on the next line


def configure(fmt: str | None = None) -> Any:
    """Configure structlog for stderr and return the bound logger."""
    global _logger
    import structlog

    fmt = fmt or os.environ.get("ACCRE_MONITOR_LOG_FORMAT", "console")
    processors: list[Any] = [structlog.processors.add_log_level]
    if fmt == "json":
        processors += [
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.dict_tracebacks,
            _scrub,
            structlog.processors.JSONRenderer(),
        ]
    else:
        if _timestamps:
            processors.append(structlog.processors.TimeStamper(fmt="iso", utc=True))
        processors += [_scrub, _render_line]
    structlog.configure(
        processors=processors,
        logger_factory=structlog.PrintLoggerFactory(_Stderr()),
        cache_logger_on_first_use=False,
    )
    _logger = structlog.get_logger().bind()
    return _logger


def _get() -> Any:
    return _logger if _logger is not None else configure()


def debug(event: str, **kw: Any) -> None:
    if os.environ.get("ACCRE_MONITOR_DEBUG"):
        _get().debug(event, **kw)


def info(event: str, **kw: Any) -> None:
    _get().info(event, **kw)


def warning(event: str, **kw: Any) -> None:
    _get().warning(event, **kw)


def error(event: str, **kw: Any) -> None:
    _get().error(event, **kw)
