"""Process checks."""

from accre_monitor import Option, OptionError, Range, monitor_command
from accre_monitor.range import format_number
from accre_monitor.status import CRITICAL, OK, WARNING


def _count(name: str, help: str) -> Option:
    return Option(name, int, None, help, metavar="N", minimum=0)


OPTIONS = [
    Option(
        "name",
        list,
        help="process name, matched exactly (psutil's name: the kernel's comm, completed from "
        "the command line when comm was truncated to 15 characters). Several names, "
        "comma-separated: any of them.",
        metavar="NAMES",
    ),
    Option(
        "cmdline",
        list,
        help="substring of the full command line (arguments joined by spaces). Several, "
        "comma-separated: any of them. A substring that holds a comma must be given as JSON "
        "with --options.",
        metavar="TEXTS",
    ),
    _count(
        "min",
        "CRITICAL when fewer than N processes match (default 1, or 0 with --max 0, "
        "which checks that something is NOT running)",
    ),
    _count("min_warning", "WARNING when fewer than N match but at least min"),
    _count("max", "WARNING when more than N processes match"),
    Option(
        "critical",
        Range,
        help="instead of min: CRITICAL when the count crosses a Nagios range",
        minimum=0,
    ),
    Option(
        "warning",
        Range,
        help="instead of min_warning and max: WARNING when the count crosses one. `A:B` "
        "alerts outside A to B (bounds included), `A:` below A, `~:B` or a plain B above B, "
        "`@A:B` from A to B, as in check_procs: `--warning 1:1 --critical 1:` is "
        "`--min 1 --max 1`.",
        minimum=0,
    ),
]

# At most this many matching pids go in the data (a fork bomb must not make a huge record).
MAX_PIDS = 100


@monitor_command(label="PROCS", options=OPTIONS)
def processes(opts: dict) -> tuple:
    """Number of processes with a given name or command line, within bounds.

    At least one of name and cmdline is required.

    With both name and cmdline, a process must match both. The check's own processes
    are never counted: the one running the check, and the nearest ancestors that
    launched it (those whose command line mentions accre-monitor or accre_monitor, or
    equals the check's own: the `sh -c`, `timeout` or sudo wrapping the command, and
    accre-monitor itself, which runs the check in a forked child). Their command lines
    hold the searched text, and their names could be the searched name. Processes that
    vanish or cannot be read while scanning are skipped.

    Status: CRITICAL below min (or crossing critical), WARNING below min_warning or
    above max (or crossing warning), else OK. UNKNOWN for bad option values (negative
    counts, min above max, min_warning above max, a range together with the options it
    replaces, neither name nor cmdline).

    Data: {"count", "pids" (first 100, sorted), "name", "cmdline", "min", "min_warning",
    "max", "warning", "critical"}. Performance data: count, with its thresholds.
    """
    names, cmdlines = opts["name"] or [], opts["cmdline"] or []
    if not names and not cmdlines:
        raise OptionError("option name or cmdline is required")
    # A plain number N is check_procs' 0:N: more than N processes alert.
    critical, warning = opts["critical"], opts["warning"]
    for level, replaced in (("critical", ("min",)), ("warning", ("min_warning", "max"))):
        clash = [key for key in replaced if opts[key] is not None]
        if opts[level] is not None and clash:
            raise OptionError(f"option {level} replaces {' and '.join(clash)}; give one")
    maximum = opts["max"]
    # `--max 0` alone means "must not run": the default min then cannot be 1.
    minimum = None
    if critical is None:
        minimum = opts["min"] if opts["min"] is not None else 1 if maximum != 0 else 0
    min_warning = opts["min_warning"]
    for key, low in (("min", minimum), ("min_warning", min_warning)):
        if maximum is not None and low is not None and low > maximum:
            raise OptionError(f"option {key} ({low}) is above max ({maximum})")

    import psutil

    excluded = _own_processes(psutil)

    wanted_names = set(names)
    pids = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.pid in excluded:
            continue
        info = proc.info
        if wanted_names and info.get("name") not in wanted_names:
            continue
        if cmdlines:
            # None when access was denied; zombies and kernel threads have an empty one.
            line = " ".join(info.get("cmdline") or ())
            if not any(text in line for text in cmdlines):
                continue
        pids.append(proc.pid)
    pids.sort()
    count = len(pids)

    critical_range = critical.range if critical else _below(minimum)
    warning_range = warning.range if warning else _outside(min_warning, maximum)
    if critical_range and critical_range.alerts(count):
        status, why = CRITICAL, _crossed(critical_range, count)
    elif warning_range and warning_range.alerts(count):
        status, why = WARNING, _crossed(warning_range, count)
    elif critical or warning:
        levels = (("critical", critical_range), ("warning", warning_range))
        status, why = OK, ", ".join(f"{level} {limit}" for level, limit in levels if limit)
    else:
        status, why = OK, _bounds(minimum, maximum)

    what = []
    if names:
        what.append(f"named {' or '.join(names)}")
    if cmdlines:
        what.append(f"with {' or '.join(repr(text) for text in cmdlines)} in the command line")
    noun = "process" if count == 1 else "processes"
    short = f"PROCS {status} - {count} {noun} {' and '.join(what)} ({why})"
    long = f"pids: {' '.join(map(str, pids[:MAX_PIDS]))}" if pids else None
    if count > MAX_PIDS:
        long += f" ... ({count - MAX_PIDS} more)"
    data = {
        "count": count,
        "pids": pids[:MAX_PIDS],
        "name": names,
        "cmdline": cmdlines,
        "min": minimum,
        "min_warning": min_warning,
        "max": maximum,
        "warning": warning and warning.given,
        "critical": critical and critical.given,
    }
    perf = {
        "count": {"warn": warning_range, "crit": critical_range, "min": 0},
        **{key: {"omit": True} for key in data if key != "count"},
    }
    return status, data, short, long, perf


def _below(minimum: int | None) -> Range | None:
    """The critical range of `--min`: fewer alert (none for 0, which nothing is below)."""
    return Range.alert_below(minimum) if minimum else None


def _outside(min_warning: int | None, maximum: int | None) -> Range | None:
    """The warning range of `--min_warning` and `--max`: fewer or more alert."""
    if min_warning is None and maximum is None:
        return None
    return Range.between(min_warning or 0, float("inf") if maximum is None else maximum)


def _crossed(limit: Range, count: int) -> str:
    """Why `count` alerts: `fewer than 3`, `more than 1`, or `in @2:5`."""
    if limit.inside:
        return f"in {limit}"
    if count < limit.start:
        return f"fewer than {format_number(limit.start)}"
    return f"more than {format_number(limit.end)}"


def _own_processes(psutil) -> set[int]:
    """This process and the nearest ancestors that are accre-monitor or launched it."""
    me = psutil.Process()
    own = {me.pid}
    try:
        mine = me.cmdline()
        for parent in me.parents():  # nearest first
            line = parent.cmdline()
            joined = " ".join(line)
            if line != mine and "accre-monitor" not in joined and "accre_monitor" not in joined:
                break
            own.add(parent.pid)
    except psutil.Error:  # an ancestor we cannot read is not ours
        pass
    return own


def _bounds(minimum: int, maximum: int | None) -> str:
    if maximum is None:
        return f"min {minimum}"
    return f"min {minimum}, max {maximum}"
