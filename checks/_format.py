"""Helpers the built-in checks share for their statuses and texts (not a check module: the
leading `_` hides it)."""

from __future__ import annotations

from accre_monitor.status import CRITICAL, OK, WARNING

TYPE_CHECKING = False
if TYPE_CHECKING:
    from accre_monitor.range import Range


def level(value: float, warning: Range, critical: Range) -> str:
    """The status a value earns against a pair of thresholds: critical first, then warning."""
    if critical.alerts(value):
        return CRITICAL
    if warning.alerts(value):
        return WARNING
    return OK


def fmt_percent(value: float | None) -> str:
    """`41.3`, or `41` for a whole number; `n/a` for None."""
    if value is None:
        return "n/a"
    return f"{value:.1f}".rstrip("0").rstrip(".")


def fmt_bytes(value: int) -> str:
    """Human-readable binary size: `512 B`, `1.5 GiB`."""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(size) < 1024 or unit == "PiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
