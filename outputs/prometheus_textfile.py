"""`prometheus-textfile`: the node's latest results as a file for node_exporter's textfile
collector (`--collector.textfile.directory`), which publishes every `*.prom` file there.

One file holds every check of the node, in Prometheus' text format:

  accre_monitor_check_status{check="..."}             0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN
  accre_monitor_check_timestamp_seconds{check="..."}  the result's `date`, seconds since the epoch
  accre_monitor_check_runtime_seconds{check="..."}    how long the check ran
  accre_monitor_perf{check="...",label="..."}         each performance data value (perfdata.py),
                                                      named by its unit, in base units:
      _seconds  s, ms, us     _bytes  B, KB, MB, GB, TB (1024-based, as plugins mean them)
      _ratio    %, from 0 to 1    _counter_total  c (a counter)    no suffix: no unit
  (`_counter_total`, not `_total`: a counter family would otherwise be named
  `accre_monitor_perf` in OpenMetrics, as the gauge without a unit is.)

A run replaces its own check's lines and keeps the others' (accre_monitor.shared_file:
under a lock, written beside and renamed over). The timestamp line is the file's own record
of when each check last wrote: a check whose latest result is older than `stale_after`
seconds drops out at the next write (a line outliving its writer would say a dead check is
fine), and a result older than the one in the file (two runs of one check) changes nothing.
Written without prometheus_client, which would cost every run more than the check.
"""

from __future__ import annotations

from accre_monitor.outputs.base import Output
from accre_monitor.perfdata import metrics  # loaded with the record already

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_PATH = "/var/lib/prometheus/node-exporter/accre_monitor.prom"
MAX_STALE_AFTER = 30 * 86400.0

STATUS = "accre_monitor_check_status"
TIMESTAMP = "accre_monitor_check_timestamp_seconds"
RUNTIME = "accre_monitor_check_runtime_seconds"
PERF = "accre_monitor_perf"

STATUS_VALUES = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}

_LATEST = "Performance data of the check's latest result"
# family -> (type, help); the file lists them in this order
FAMILIES: dict[str, tuple[str, str]] = {
    STATUS: ("gauge", "The check's latest status: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."),
    TIMESTAMP: ("gauge", "When the check's latest result was produced, in seconds since 1970."),
    RUNTIME: ("gauge", "How long the check's latest run took, in seconds."),
    PERF: ("gauge", f"{_LATEST}, without a unit."),
    PERF + "_seconds": ("gauge", f"{_LATEST}, in seconds."),
    PERF + "_bytes": ("gauge", f"{_LATEST}, in bytes."),
    PERF + "_ratio": ("gauge", f"{_LATEST} given in %, as a ratio from 0 to 1."),
    PERF + "_counter_total": ("counter", f"{_LATEST} given as counters."),
}

# unit of a performance data hint -> (family, multiply by, divide by)
UNITS: dict[str, tuple[str, int, int]] = {
    "": (PERF, 1, 1),
    "s": (PERF + "_seconds", 1, 1),
    "ms": (PERF + "_seconds", 1, 1000),
    "us": (PERF + "_seconds", 1, 1000000),
    "%": (PERF + "_ratio", 1, 100),
    "B": (PERF + "_bytes", 1, 1),
    "KB": (PERF + "_bytes", 1024, 1),
    "MB": (PERF + "_bytes", 1024**2, 1),
    "GB": (PERF + "_bytes", 1024**3, 1),
    "TB": (PERF + "_bytes", 1024**4, 1),
    "c": (PERF + "_counter_total", 1, 1),
}

# -- rendering one record -------------------------------------------------------------------


def escape(value: str) -> str:
    """A label value as the text format writes it: `\\`, `"` and newline escaped."""
    if "\\" in value or '"' in value or "\n" in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return value


def number(value: Any) -> str:
    """A sample's value: integers exactly, floats as Python reads them back, NaN and ±Inf."""
    if isinstance(value, int) and -(2**53) <= value <= 2**53:
        return str(value)
    try:
        value = float(value)
    except OverflowError:  # an integer beyond any float
        return "+Inf" if value > 0 else "-Inf"
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def record_lines(record: dict[str, Any], when: float) -> list[tuple[str, str]]:
    """The (family, sample line) pairs of one record; `when` is its date in epoch seconds."""
    check = f'{{check="{escape(str(record["name"]))}"'
    lines = [
        (STATUS, f"{STATUS}{check}}} {STATUS_VALUES.get(record.get('status'), 3)}"),
        (TIMESTAMP, f"{TIMESTAMP}{check}}} {number(when)}"),
    ]
    runtime = record.get("runtime")
    if isinstance(runtime, (int, float)) and not isinstance(runtime, bool):
        lines.append((RUNTIME, f"{RUNTIME}{check}}} {number(runtime)}"))
    if record.get("data") is None:
        return lines
    for label, value, hint in metrics(record.get("data"), record):
        family, multiply, divide = UNITS.get(hint.get("uom", ""), UNITS[""])
        if multiply != 1:
            value = value * multiply
        if divide != 1:  # 2.8% is 0.028, not 0.027999999999999997
            value = float(f"{value / divide:.15g}")
        lines.append((family, f'{family}{check},label="{escape(label)}"}} {number(value)}'))
    return lines


# -- the whole file -------------------------------------------------------------------------


def parse(text: str) -> dict[str, tuple[float | None, list[tuple[str, str]]]]:
    """Each check's (timestamp, [(family, line)]) in a file this output wrote, keyed by the
    check's escaped name; comments and lines without a `check` label are left out."""
    checks: dict[str, tuple[float | None, list[tuple[str, str]]]] = {}
    for line in text.split("\n"):
        if not line or line[0] == "#":
            continue
        found = _sample(line)
        if found is None:
            continue
        family, check = found
        stamp, lines = checks.setdefault(check, (None, []))
        lines.append((family, line))
        if family == TIMESTAMP:
            try:  # noqa: SIM105 - contextlib is not worth importing on every run
                checks[check] = (float(line[line.rindex(" ") + 1 :]), lines)
            except ValueError:
                pass
    return checks


def _sample(line: str) -> tuple[str, str] | None:
    """(family, escaped check name) of a sample line `family{check="...",...} value`."""
    brace = line.find('{check="')
    if brace <= 0:
        return None
    start = brace + 8
    end = line.find('"', start)
    while end > 0 and _escaped(line, start, end):
        end = line.find('"', end + 1)
    if end < 0:
        return None
    return line[:brace], line[start:end]


def _escaped(line: str, start: int, quote: int) -> bool:
    """Whether the `"` at `quote` follows an odd run of backslashes."""
    backslashes = 0
    while quote - 1 - backslashes >= start and line[quote - 1 - backslashes] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


def merge(
    current: str,
    record: dict[str, Any],
    when: float,
    now: float,
    stale_after: float,
) -> str | None:
    """The new text of the file: `current` with the record's check replaced and the checks
    older than `stale_after` seconds (0: none) left out. None when the file already holds a
    newer result of this check (a slower run of it finished first), which then stays; unless
    that one is dated after `now`: the clock was set back, and it would block every result."""
    checks = parse(current)
    key = escape(str(record["name"]))
    held = checks.get(key)
    if held is not None and held[0] is not None and when < held[0] <= now:
        return None
    checks[key] = (when, record_lines(record, when))
    if stale_after:
        checks = {
            name: entry
            for name, entry in checks.items()
            if entry[0] is not None and now - entry[0] < stale_after
        }
    return render(checks)


def render(checks: dict[str, tuple[float | None, list[tuple[str, str]]]]) -> str:
    """The file: each family's HELP and TYPE, then its samples, check by check."""
    by_family: dict[str, list[str]] = {family: [] for family in FAMILIES}
    for name in sorted(checks):
        for family, line in checks[name][1]:
            by_family.setdefault(family, []).append(line)
    out = []
    for family, lines in by_family.items():
        if not lines:
            continue
        if family in FAMILIES:
            kind, help_text = FAMILIES[family]
            out += [f"# HELP {family} {help_text}", f"# TYPE {family} {kind}"]
        out += lines
    return "\n".join(out) + "\n" if out else ""


def epoch_seconds(date: Any) -> float:
    """A record's date in seconds since the epoch: the records' own form
    (`2026-11-24T08:55:32.123+01:00`) read without importing datetime, any other ISO 8601
    through accre_monitor.dates."""
    fast = _own_form(date)
    if fast is not None:
        return fast
    from accre_monitor.dates import epoch_seconds as slow

    return slow(date)


def _own_form(date: Any) -> float | None:
    if not (
        isinstance(date, str)
        and len(date) == 29
        and date[4] == date[7] == "-"
        and date[10] == "T"
        and date[13] == date[16] == date[26] == ":"
        and date[19] == "."
        and date[23] in "+-"
    ):
        return None
    try:
        year, month, day = int(date[0:4]), int(date[5:7]), int(date[8:10])
        hour, minute, second = int(date[11:13]), int(date[14:16]), int(date[17:19])
        millis, offset = int(date[20:23]), int(date[24:26]) * 3600 + int(date[27:29]) * 60
    except ValueError:
        return None
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 60):
        return None
    sign = 1 if date[23] == "+" else -1
    seconds = _days(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    return seconds - sign * offset + millis / 1000


def _days(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a date of the proleptic Gregorian calendar (H. Hinnant)."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


# -- the output -----------------------------------------------------------------------------


class PrometheusTextfileOutput(Output):
    """Writes the record's check into the node's textfile; a failed write is one line on
    stderr (the bus logs it) and never changes the check's verdict."""

    settings_keys: dict[str, Any] = {"path": DEFAULT_PATH, "stale_after": 3600}

    def __init__(self, name: str, settings: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(name, settings, **kw)
        self.path = self.setting_text("path")
        self.stale_after = self.setting_seconds("stale_after", maximum=MAX_STALE_AFTER, zero=True)

    def emit(self, record: dict[str, Any]) -> None:
        import time

        from accre_monitor.shared_file import replace_shared

        try:
            when = epoch_seconds(record.get("date"))
        except ValueError:
            when = time.time()
        replace_shared(
            self.path, lambda current: merge(current, record, when, time.time(), self.stale_after)
        )

    def problems(self) -> list[str]:
        """Why a run could not write the file, as far as can be told without writing it."""
        import os

        directory = os.path.dirname(os.path.abspath(self.path))
        where = f"output {self.name} cannot write {self.path}"
        if not os.path.isdir(directory):
            return [f"{where}: directory {directory} does not exist"]
        if not os.access(directory, os.W_OK | os.X_OK):
            return [f"{where}: directory {directory} is not writable by this user"]
        for path, what in ((self.path, "it"), (self.path + ".lock", "its lock file")):
            if os.path.exists(path) and not os.access(path, os.R_OK):
                return [f"{where}: {what} is not readable by this user"]
        return []
