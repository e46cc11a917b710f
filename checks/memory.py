"""Memory and swap checks."""

from accre_monitor import monitor_command
from accre_monitor.status import CRITICAL, OK, UNKNOWN, WARNING, worst

from ._options import (
    OptionError,
    bad_options,
    check_known,
    fmt_bytes,
    fmt_percent,
    percent,
)

_OPTIONS = ("warning", "critical", "swap_warning", "swap_critical")

# /proc/meminfo is read directly rather than through psutil: psutil.virtual_memory() parses
# the very same file, but importing psutil costs more than the whole check, which runs on
# every node every few minutes. It also means the data holds exactly the kernel's numbers.
MEMINFO = "/proc/meminfo"


@monitor_command
def memory(opts: dict) -> tuple:
    """Percent of memory available, and percent of swap used (/proc/meminfo).

    Options:
      --warning PCT        WARNING when available memory falls below PCT percent (default 10)
      --critical PCT       CRITICAL when available memory falls below PCT percent (default 5)
      --swap_warning PCT   WARNING when swap used reaches PCT percent (default 50)
      --swap_critical PCT  CRITICAL when swap used reaches PCT percent (default 80)

    Thresholds are percentages from 0 to 100. Available memory is the kernel's
    MemAvailable (what can be allocated without swapping: free memory plus reclaimable
    caches), as a percent of MemTotal; it alerts when strictly below the threshold, so
    0 never fires and 100 always does. Swap used alerts when it reaches the threshold
    (>=). On a node without swap the swap thresholds are ignored. Memory limits of
    cgroups (containers, Slurm jobs) are not considered: this is the node's view.

    Status: the worse of the memory and swap statuses. UNKNOWN when /proc/meminfo
    cannot be read or bad option values are given.

    Data: {"total_bytes", "available_bytes", "available_percent", "swap_total_bytes",
    "swap_free_bytes", "swap_used_percent" (null without swap), "thresholds"}.
    """
    try:
        opts = check_known(opts, _OPTIONS)
        thresholds = {
            "warning": percent(opts, "warning", 10),
            "critical": percent(opts, "critical", 5),
            "swap_warning": percent(opts, "swap_warning", 50),
            "swap_critical": percent(opts, "swap_critical", 80),
        }
    except OptionError as err:
        return bad_options("MEMORY", err)

    try:
        info = read_meminfo()
        total = info["MemTotal"]
    except (OSError, KeyError, ValueError) as err:
        message = f"cannot read {MEMINFO}: {err}"
        return UNKNOWN, {"error": message}, f"MEMORY UNKNOWN - {message}", None
    if "MemAvailable" in info:
        available = info["MemAvailable"]
    else:  # kernels before 3.14: the usual approximation
        available = info.get("MemFree", 0) + info.get("Buffers", 0) + info.get("Cached", 0)
    swap_total = info.get("SwapTotal", 0)
    swap_free = info.get("SwapFree", 0)

    available_percent = round(100.0 * available / total, 2) if total else 0.0
    if available_percent < thresholds["critical"]:
        mem_status = CRITICAL
    elif available_percent < thresholds["warning"]:
        mem_status = WARNING
    else:
        mem_status = OK

    if swap_total:
        swap_used_percent = round(100.0 * (swap_total - swap_free) / swap_total, 2)
        if swap_used_percent >= thresholds["swap_critical"]:
            swap_status = CRITICAL
        elif swap_used_percent >= thresholds["swap_warning"]:
            swap_status = WARNING
        else:
            swap_status = OK
        swap_text = f"swap {fmt_percent(swap_used_percent)}% used"
    else:
        swap_used_percent = None
        swap_status = OK
        swap_text = "no swap"

    status = worst(mem_status, swap_status)
    mem_text = f"{fmt_percent(available_percent)}% available"
    if mem_status != OK:
        mem_text += f" ({mem_status})"
    if swap_status != OK:
        swap_text += f" ({swap_status})"
    short = f"MEMORY {status} - {mem_text}, {swap_text}"
    long = f"memory: {fmt_bytes(available)} available of {fmt_bytes(total)}"
    if swap_total:
        long += f"\nswap: {fmt_bytes(swap_total - swap_free)} used of {fmt_bytes(swap_total)}"
    data = {
        "total_bytes": total,
        "available_bytes": available,
        "available_percent": available_percent,
        "swap_total_bytes": swap_total,
        "swap_free_bytes": swap_free,
        "swap_used_percent": swap_used_percent,
        "thresholds": thresholds,
    }
    return status, data, short, long


def read_meminfo(path: str = MEMINFO) -> dict[str, int]:
    """/proc/meminfo as {field: bytes} (fields in kB are converted; counts stay counts)."""
    values = {}
    with open(path) as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            parts = rest.split()
            if not parts:
                continue
            number = int(parts[0])
            values[key] = number * 1024 if parts[1:2] == ["kB"] else number
    return values
