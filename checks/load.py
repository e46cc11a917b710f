"""Load checks."""

import os

from accre_monitor import monitor_command


@monitor_command
def loadavg(opts):
    """Load average over 1, 5 and 15 minutes against thresholds.

    Options:
      --warning W1,W5,W15   WARNING when a load average is above its threshold
      --critical C1,C5,C15  CRITICAL when a load average is above its threshold
    A single number applies to all three averages. Data: the three load averages.
    """
    data = os.getloadavg()
    status = "OK"
    for level in ("warning", "critical"):
        limits = opts.get(level)
        if limits is None:
            continue
        if not isinstance(limits, list):
            limits = [limits] * 3
        for idx, val in enumerate(limits[:3]):
            if not isinstance(val, (int, float)) or isinstance(val, bool):
                return "UNKNOWN", {"error": f"--{level} must be numbers, got {val!r}"}
            if data[idx] > val:
                status = level.upper()
    short = f"LOAD {status} - load average: {data[0]:.2f}, {data[1]:.2f}, {data[2]:.2f}"
    return status, data, short
