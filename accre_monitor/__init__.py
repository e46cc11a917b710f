"""accre-monitor: local monitoring checks for Linux nodes.

The public API: `monitor_command` registers a check, and with `Option` declares its
options (`OptionError` refuses a combination of them), `complete_check` turns a
check's return value into a delivered result and an exit code, `maybe_acquire_lock`
keeps two runs of one check apart, `run_config` gives a check the configuration of
its run, `EXITCODE_MAPS` maps statuses to exit codes, and `Range` reads and applies
Nagios threshold ranges (`10`, `10:`, `~:10`, `10:20`, `@10:20`).
"""

from accre_monitor.api import complete_check
from accre_monitor.check_options import Option, OptionError
from accre_monitor.config import run_config
from accre_monitor.locking import maybe_acquire_lock
from accre_monitor.range import Range
from accre_monitor.registry import monitor_command
from accre_monitor.status import CRITICAL, EXITCODE_MAPS, OK, UNKNOWN, WARNING

__all__ = [
    "CRITICAL",
    "EXITCODE_MAPS",
    "OK",
    "Option",
    "OptionError",
    "UNKNOWN",
    "Range",
    "WARNING",
    "complete_check",
    "maybe_acquire_lock",
    "monitor_command",
    "run_config",
]
