"""What the spool holds, read without touching it: for `spool_health` and `accre-pipeline status`.

The one public, read-only view of the spool: nothing here creates, repairs or writes the
spool file, so it is safe on a full disk, on a read-only file system, and while many
check processes are writing.
"""

from __future__ import annotations

from typing import Any

from accre_monitor.pipeline.spool import Spool, SpoolCorrupt
from accre_monitor.redaction import scrub
from accre_monitor.sqlite_files import set_aside_files


class SpoolReport:
    """The spool at `path`: per output `stats`, `dropped` at the cap, and what went wrong.

    `corrupt` says why the spool file cannot be read (None when it can); `set_aside` lists
    corrupt spool files moved aside and not yet removed by an operator.
    """

    __slots__ = ("path", "exists", "outputs", "dropped", "corrupt", "error", "set_aside")

    def __init__(self, path: str) -> None:
        self.path = path
        self.exists = False
        self.outputs: dict[str, dict[str, Any]] = {}
        self.dropped = 0
        self.corrupt: str | None = None
        self.error: str | None = None
        self.set_aside: list[str] = []

    def as_dict(self) -> dict[str, Any]:
        return {
            "spool": self.path,
            "outputs": self.outputs,
            "dropped": self.dropped,
            "corrupt": self.corrupt,
            "error": self.error,
            "set_aside": self.set_aside,
        }


def read_spool(settings: dict[str, Any]) -> SpoolReport:
    """A report of the spool `settings` names (the `[spool]` settings of a config)."""
    spool = Spool(settings, readonly=True)
    report = SpoolReport(spool.path)
    report.set_aside = set_aside_files(spool.path)
    report.exists = spool.exists()
    if not report.exists:
        return report
    try:
        report.outputs = spool.stats()
        report.dropped = spool.dropped()
    except SpoolCorrupt as exc:
        report.corrupt = scrub(str(exc))
    except Exception as exc:  # unreadable (permissions, I/O): itself news for spool_health
        report.error = scrub(f"{type(exc).__name__}: {exc}")
    finally:
        spool.close()
    return report
