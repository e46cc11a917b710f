"""Load checks."""

import os

from accre_monitor import Range, monitor_command
from accre_monitor.status import CRITICAL, OK, WARNING

from ._options import OptionError, Threshold, bad_options, check_known, threshold_value

_OPTIONS = ("warning", "critical")
LABELS = ("load1", "load5", "load15")


@monitor_command
def loadavg(opts: dict) -> tuple:
    """Load average over 1, 5 and 15 minutes against thresholds.

    Options:
      --warning W1,W5,W15   WARNING when a load average crosses its threshold
      --critical C1,C5,C15  CRITICAL when a load average crosses its threshold

    One threshold applies to all three averages; otherwise give three. A threshold is
    a number, which alerts when the load is above it (any number, negative included),
    or a Nagios range: `10:` alerts below 10, `~:10` above 10, `10:20` outside 10 to
    20, `@10:20` from 10 to 20 (bounds included). Example: --warning 15,10,5
    --critical 30,25,20. Without thresholds the status is OK.

    Status: CRITICAL when an average crosses its critical threshold, else WARNING when
    one crosses its warning threshold, else OK. UNKNOWN for unknown options or bad
    threshold values, saying why.

    Data: the three load averages. Performance data: load1, load5, load15, with the
    thresholds used.
    """
    try:
        opts = check_known(opts, _OPTIONS)
        warning = _thresholds(opts, "warning")
        critical = _thresholds(opts, "critical")
    except OptionError as err:
        return bad_options("LOAD", err)

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


def _thresholds(opts: dict, key: str) -> list[Threshold | None]:
    """Three thresholds (1, 5 and 15 minutes) from one value or a list of three."""
    value = opts.get(key)
    if value is None:
        return [None, None, None]
    values = value if isinstance(value, (list, tuple)) else [value] * 3
    if len(values) != 3:
        raise OptionError(
            f"option {key} takes one threshold or three (1, 5 and 15 minutes), "
            f"not {len(values)}: {value!r}"
        )
    return [threshold_value(key, item, Range.alert_above) for item in values]
