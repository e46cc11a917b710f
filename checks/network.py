"""Network checks."""

import time

from accre_monitor import monitor_command
from accre_monitor.status import CRITICAL, OK, UNKNOWN, WARNING

from ._options import (
    OptionError,
    bad_options,
    check_known,
    number,
    text,
)

_OPTIONS = ("host", "port", "timeout", "warning")


@monitor_command
def tcp_port(opts: dict) -> tuple:
    """Whether a TCP port accepts connections, and how fast.

    Options:
      --port PORT       the TCP port, 1 to 65535 (required)
      --host HOST       host name or address, IPv4 or IPv6 (default 127.0.0.1)
      --timeout SECS    give up connecting after SECS seconds (default 5, must be > 0)
      --warning SECS    WARNING when connecting takes longer than SECS seconds
                        (default: unset, no WARNING)

    The connection is opened and closed at once; nothing is sent. Connect time
    includes name resolution (when the host is a name) and is measured on a
    monotonic clock. Every address the name resolves to is tried in turn, as
    socket.create_connection does; the timeout applies to each attempt.

    Status: OK when the connection is accepted (WARNING when slower than `warning`);
    CRITICAL when it is refused, times out or the host is unreachable; UNKNOWN when
    the host name does not resolve or bad option values are given (a missing port
    included).

    Data: {"host", "port", "connect_seconds" (null on failure), "timeout", "warning"},
    plus "error" on failure.
    """
    try:
        opts = check_known(opts, _OPTIONS)
        port = number(opts, "port", required=True, minimum=1, maximum=65535, integer=True)
        host = text(opts, "host", "127.0.0.1")
        timeout = number(opts, "timeout", 5, minimum=0)
        warning = number(opts, "warning", None, minimum=0)
        if timeout == 0:
            raise OptionError("option timeout must be a number > 0, not 0")
    except OptionError as err:
        return bad_options("TCP", err)

    import socket

    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    data = {
        "host": host,
        "port": port,
        "connect_seconds": None,
        "timeout": timeout,
        "warning": warning,
    }
    started = time.monotonic()
    try:
        connection = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as err:
        data["error"] = f"cannot resolve {host}: {err.strerror or err}"
        return UNKNOWN, data, f"TCP UNKNOWN - {data['error']}", None
    except TimeoutError:
        data["error"] = f"timed out after {timeout:g} s"
        return CRITICAL, data, f"TCP CRITICAL - {target} {data['error']}", None
    except OSError as err:
        data["error"] = (err.strerror or str(err)).lower()
        return CRITICAL, data, f"TCP CRITICAL - {target} {data['error']}", None
    elapsed = time.monotonic() - started
    connection.close()
    data["connect_seconds"] = round(elapsed, 6)
    if warning is not None and elapsed > warning:
        status, bound = WARNING, f" (slower than {warning:g} s)"
    else:
        status, bound = OK, ""
    return status, data, f"TCP {status} - {target} connected in {elapsed:.3f} s{bound}", None
