"""Load checks."""

import os

from accre_monitor import Option, OptionError, Range, monitor_command
from accre_monitor.status import CRITICAL, OK, WARNING

LABELS = ("load1", "load5", "load15")
AVERAGES = "one threshold for all three averages, or three (1, 5 and 15 minutes)"

OPTIONS = [
    Option(
        "warning",
        [Range.alert_above],
        help=f"WARNING when a load average crosses its threshold: {AVERAGES}",
        metavar="W1,W5,W15",
    ),
    Option(
        "critical",
        [Range.alert_above],
        help=f"CRITICAL when a load average crosses its threshold: {AVERAGES}",
        metavar="C1,C5,C15",
    ),
]


@monitor_command(label="LOAD", options=OPTIONS)
def loadavg(opts: dict) -> tuple:
    """Load average over 1, 5 and 15 minutes against thresholds.

    A threshold is a number, which alerts when the load is above it (any number, negative
    included), or a Nagios range: `10:` alerts below 10, `~:10` above 10, `10:20` outside 10
    to 20, `@10:20` from 10 to 20 (bounds included). Example: -w 15,10,5 -c 30,25,20, as
    check_load takes them. Without thresholds the status is OK.

    Status: CRITICAL when an average crosses its critical threshold, else WARNING when
    one crosses its warning threshold, else OK. UNKNOWN for unknown options or bad
    threshold values, saying why.

    Data: the three load averages. Performance data: load1, load5, load15, with the
    thresholds used.
    """
    warning = _three(opts, "warning")
    critical = _three(opts, "critical")

    data = os.getloadavg()
    status = OK
    if any(limit.alerts(value) for limit, value in zip(warning, data, strict=True) if limit):
        status = WARNING
    if any(limit.alerts(value) for limit, value in zip(critical, data, strict=True) if limit):
        status = CRITICAL
    short = f"LOAD {status} - load average: {data[0]:.2f}, {data[1]:.2f}, {data[2]:.2f}"
    perf: dict = {"$": {"labels": list(LABELS)}}
    for index, label in enumerate(LABELS):
        perf[label] = {
            "warn": warning[index] and warning[index].range,
            "crit": critical[index] and critical[index].range,
            "min": 0,
        }
    return status, data, short, None, perf


def _three(opts: dict, key: str) -> list:
    """Three thresholds (1, 5 and 15 minutes) from one or three given."""
    given = opts[key]
    if given is None:
        return [None, None, None]
    if len(given) not in (1, 3):
        values = [limit.given for limit in given]
        raise OptionError(
            f"option {key} takes one threshold or three (1, 5 and 15 minutes), "
            f"not {len(given)}: {values!r}"
        )
    return given * 3 if len(given) == 1 else given
