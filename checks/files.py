"""File checks."""

import os
import time

from accre_monitor import Option, Range, monitor_command
from accre_monitor.status import CRITICAL, OK, UNKNOWN, WARNING, normalize_status


def _status(value) -> str:
    """A status name (OK, WARNING, CRITICAL, UNKNOWN), case-insensitive."""
    try:
        return normalize_status(value)
    except ValueError:
        raise ValueError(f"must be OK, WARNING, CRITICAL or UNKNOWN, not {value!r}") from None


def _seconds(name: str, default: int, level: str) -> Option:
    help_line = f"{level} when the file is older than SECS seconds"
    return Option(name, Range.alert_above, default, help_line, metavar="SECS", minimum=0)


OPTIONS = [
    Option("path", str, help="the file to check (symlinks are followed)", required=True),
    _seconds("warning", 300, "WARNING"),
    _seconds("critical", 900, "CRITICAL"),
    Option(
        "missing",
        _status,
        "CRITICAL",
        "the status when the file does not exist: OK, WARNING, CRITICAL or UNKNOWN",
        metavar="STATUS",
    ),
]


@monitor_command(label="FILE_AGE", options=OPTIONS)
def file_age(opts: dict) -> tuple:
    """Age of a file (a heartbeat another job touches) from its modification time.

    The age is now minus the modification time; "older than" is strict (>). A
    modification time in the future gives a negative age, which is OK and said so.
    A threshold may also be a Nagios range of seconds: `A:B` alerts outside A to B
    (bounds included), `A:` below A, `~:B` above B (the same as B), `@A:B` from A to
    B. So `--warning 0:300` also warns about a modification time in the future.

    Status: CRITICAL/WARNING/OK from the age; the `missing` status when the file (or a
    directory on its path) does not exist; UNKNOWN when it cannot be examined (e.g.
    permission denied) or bad option values are given.

    Data: {"path", "exists", "age_seconds", "mtime" (epoch seconds), "warning", "critical"
    (as given)}; age_seconds and mtime are null when the file is missing. Performance
    data: age_seconds, with its thresholds.
    """
    path, warning, critical = opts["path"], opts["warning"], opts["critical"]
    missing = opts["missing"]

    data = {
        "path": path,
        "exists": False,
        "age_seconds": None,
        "mtime": None,
        "warning": warning.given,
        "critical": critical.given,
    }
    perf = {
        "age_seconds": {"uom": "s", "warn": warning.range, "crit": critical.range},
        **{key: {"omit": True} for key in ("mtime", "warning", "critical")},
    }
    try:
        mtime = os.stat(path).st_mtime
    except (FileNotFoundError, NotADirectoryError):
        return missing, data, f"FILE_AGE {missing} - {path} does not exist", None, perf
    except OSError as err:
        data["error"] = err.strerror or str(err)
        short = f"FILE_AGE UNKNOWN - cannot stat {path}: {data['error']}"
        return UNKNOWN, data, short, None, perf

    age = time.time() - mtime
    data.update(exists=True, age_seconds=round(age, 3), mtime=mtime)
    if critical.alerts(age):
        status, bound = CRITICAL, f" ({_crossed(critical.range, age)})"
    elif warning.alerts(age):
        status, bound = WARNING, f" ({_crossed(warning.range, age)})"
    else:
        status, bound = OK, ""
    if age < 0:
        age_text = f"modified {_duration(-age)} in the future"
    else:
        age_text = f"modified {_duration(age)} ago"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(mtime))
    short = f"FILE_AGE {status} - {path} {age_text}{bound}"
    return status, data, short, f"mtime: {stamp}", perf


def _crossed(limit: Range, age: float) -> str:
    """Why `age` alerts: `older than 5 min`, `newer than 10 s`, or `age in @60:120`."""
    if limit.inside:
        return f"age in {limit}"
    if age < limit.start:
        return f"newer than {_duration(limit.start)}"
    return f"older than {_duration(limit.end)}"


def _duration(seconds: float) -> str:
    """`42 s`, `5 min 3 s`, `5 min`, `2 h 10 min`, `3 d 4 h`: precise enough to read at a glance."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return _pair(minutes, "min", seconds, "s")
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return _pair(hours, "h", minutes, "min")
    days, hours = divmod(hours, 24)
    return _pair(days, "d", hours, "h")


def _pair(big: int, big_unit: str, small: int, small_unit: str) -> str:
    return f"{big} {big_unit} {small} {small_unit}" if small else f"{big} {big_unit}"
