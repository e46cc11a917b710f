"""Network checks."""

import time

from accre_monitor import Option, OptionError, Range, monitor_command
from accre_monitor.range import format_number
from accre_monitor.status import CRITICAL, OK, UNKNOWN, WARNING


def _seconds(name: str, level: str, unset: str) -> Option:
    help_line = f"{level} when connecting takes longer than SECS seconds (default: unset{unset})"
    return Option(name, Range.alert_above, None, help_line, metavar="SECS", minimum=0)


OPTIONS = [
    Option(
        "port", int, help="the TCP port", required=True, metavar="PORT", minimum=1, maximum=65535
    ),
    Option("host", str, "127.0.0.1", "host name or address, IPv4 or IPv6", metavar="HOST"),
    Option(
        "timeout",
        float,
        5,
        "give up connecting after SECS seconds (must be > 0)",
        metavar="SECS",
        minimum=0,
    ),
    _seconds("warning", "WARNING", ", no WARNING"),
    _seconds("critical", "CRITICAL", "; the timeout is CRITICAL in any case"),
]


@monitor_command(label="TCP", options=OPTIONS)
def tcp_port(opts: dict) -> tuple:
    """Whether a TCP port accepts connections, and how fast.

    A threshold may also be a Nagios range of seconds: `A:B` alerts outside A to B
    (bounds included), `A:` below A, `~:B` above B (the same as B), `@A:B` from A to B.

    The connection is opened and closed at once; nothing is sent. Connect time
    includes name resolution (when the host is a name) and is measured on a
    monotonic clock. Every address the name resolves to is tried in turn, as
    socket.create_connection does; the timeout applies to each attempt.

    Status: OK when the connection is accepted (WARNING or CRITICAL when it crosses
    `warning` or `critical`); CRITICAL when it is refused, times out or the host is
    unreachable; UNKNOWN when the host name does not resolve or bad option values are
    given (a missing port included).

    Data: {"host", "port", "connect_seconds" (null on failure), "timeout", "warning",
    "critical" (as given)}, plus "error" on failure. Performance data: connect_seconds,
    with its thresholds (none when the connection failed).
    """
    port, host, timeout = opts["port"], opts["host"], opts["timeout"]
    warning, critical = opts["warning"], opts["critical"]
    if timeout == 0:
        raise OptionError("option timeout must be a number > 0, not 0")

    import socket

    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    data = {
        "host": host,
        "port": port,
        "connect_seconds": None,
        "timeout": timeout,
        "warning": warning and warning.given,
        "critical": critical and critical.given,
    }
    perf = {
        "connect_seconds": {
            "uom": "s",
            "warn": warning and warning.range,
            "crit": critical and critical.range,
            "min": 0,
            "max": timeout,
        },
        **{key: {"omit": True} for key in ("port", "timeout", "warning", "critical")},
    }
    started = time.monotonic()
    try:
        connection = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as err:
        data["error"] = f"cannot resolve {host}: {err.strerror or err}"
        return UNKNOWN, data, f"TCP UNKNOWN - {data['error']}", None, perf
    except TimeoutError:
        data["error"] = f"timed out after {timeout:g} s"
        return CRITICAL, data, f"TCP CRITICAL - {target} {data['error']}", None, perf
    except OSError as err:
        data["error"] = (err.strerror or str(err)).lower()
        return CRITICAL, data, f"TCP CRITICAL - {target} {data['error']}", None, perf
    elapsed = time.monotonic() - started
    connection.close()
    data["connect_seconds"] = round(elapsed, 6)
    if critical and critical.alerts(elapsed):
        status, bound = CRITICAL, f" ({_crossed(critical.range, elapsed)})"
    elif warning and warning.alerts(elapsed):
        status, bound = WARNING, f" ({_crossed(warning.range, elapsed)})"
    else:
        status, bound = OK, ""
    short = f"TCP {status} - {target} connected in {elapsed:.3f} s{bound}"
    return status, data, short, None, perf


def _crossed(limit: Range, seconds: float) -> str:
    """Why a connect time alerts: `slower than 1 s`, `faster than 0.5 s`, `in @0:1`."""
    if limit.inside:
        return f"in {limit}"
    if seconds < limit.start:
        return f"faster than {format_number(limit.start)} s"
    return f"slower than {format_number(limit.end)} s"
