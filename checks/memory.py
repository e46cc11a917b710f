"""Memory and swap checks."""

from accre_monitor import Option, Range, monitor_command
from accre_monitor.status import OK, UNKNOWN, worst

from ._format import fmt_bytes, fmt_percent, level


def _percent(name: str, meaning, default: int, help: str) -> Option:
    return Option(name, meaning, default, help, metavar="PCT", minimum=0, maximum=100)


OPTIONS = [
    _percent(
        "warning", Range.alert_below, 10, "WARNING when available memory falls below PCT percent"
    ),
    _percent(
        "critical", Range.alert_below, 5, "CRITICAL when available memory falls below PCT percent"
    ),
    _percent(
        "swap_warning", Range.alert_at_or_above, 50, "WARNING when swap used reaches PCT percent"
    ),
    _percent(
        "swap_critical", Range.alert_at_or_above, 80, "CRITICAL when swap used reaches PCT percent"
    ),
]
THRESHOLDS = ("warning", "critical", "swap_warning", "swap_critical")

# /proc/meminfo is read directly rather than through psutil: psutil.virtual_memory() parses
# the very same file, but importing psutil costs more than the whole check, which runs on
# every node every few minutes. It also means the data holds exactly the kernel's numbers.
MEMINFO = "/proc/meminfo"


@monitor_command(label="MEMORY", options=OPTIONS)
def memory(opts: dict) -> tuple:
    """Percent of memory available, and percent of swap used (/proc/meminfo).

    Thresholds are percentages from 0 to 100. Available memory is the kernel's
    MemAvailable (what can be allocated without swapping: free memory plus reclaimable
    caches), as a percent of MemTotal; it alerts when strictly below the threshold, so
    0 never fires and 100 always does. Swap used alerts when it reaches the threshold
    (>=). On a node without swap the swap thresholds are ignored. Memory limits of
    cgroups (containers, Slurm jobs) are not considered: this is the node's view.

    A threshold may also be a Nagios range: `A:B` alerts outside A to B (bounds
    included), `A:` below A, `~:B` above B, `@A:B` from A to B. So `--warning 10:` is
    the same as `--warning 10`, and `--swap_warning @50:` as `--swap_warning 50`.

    Status: the worse of the memory and swap statuses. UNKNOWN when /proc/meminfo
    cannot be read or bad option values are given.

    Data: {"total_bytes", "available_bytes", "available_percent", "swap_total_bytes",
    "swap_free_bytes", "swap_used_percent" (null without swap), "thresholds" (as
    given)}. Performance data: the same numbers, percentages with their thresholds.
    """
    thresholds = {key: opts[key] for key in THRESHOLDS}

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
    mem_status = level(available_percent, thresholds["warning"], thresholds["critical"])

    if swap_total:
        swap_used_percent = round(100.0 * (swap_total - swap_free) / swap_total, 2)
        swap_status = level(
            swap_used_percent, thresholds["swap_warning"], thresholds["swap_critical"]
        )
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
        "thresholds": {key: limit.given for key, limit in thresholds.items()},
    }
    return status, data, short, long, _perf(thresholds)


def _perf(thresholds: dict[str, Range]) -> dict:
    """Performance data hints: units, and the thresholds on the two percentages."""
    size = {"uom": "B", "min": 0}
    return {
        "total_bytes": size,
        "available_bytes": size,
        "available_percent": {
            "uom": "%",
            "warn": thresholds["warning"].range,
            "crit": thresholds["critical"].range,
            "min": 0,
            "max": 100,
        },
        "swap_total_bytes": size,
        "swap_free_bytes": size,
        "swap_used_percent": {
            "uom": "%",
            "warn": thresholds["swap_warning"].range,
            "crit": thresholds["swap_critical"].range,
            "min": 0,
            "max": 100,
        },
        "thresholds": {"omit": True},
    }


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
