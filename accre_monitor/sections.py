"""The `[spool]` and `[bus]` sections: their keys, defaults and what each must be.

These sections configure delivery, never the check: a bad value here is reported (one line
naming the file and the key), replaced by its default, and shown by `spool_health`, while
the check's result and exit code stay its own. Every number has bounds: finite, and within
what the code that uses it can take (a timer, `poll`, AMQP's 16-bit prefetch count).
"""

from __future__ import annotations

import os

from accre_monitor.redaction import split_credentials
from accre_monitor.settings import Setting, check_section, choice, flag, integer, seconds, text

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DAY = 86400.0
# AMQP carries a channel's prefetch count and the heartbeat in 16 bits
AMQP_SHORT = 65535

SPOOL: dict[str, Setting] = {
    "path": text(None),
    "max_entries": integer(100_000, 1, 100_000_000),
    "max_attempts": integer(1, 1, 1000),
    "backoff_base": seconds(10.0, maximum=DAY),
    "backoff_max": seconds(900.0, maximum=DAY),
    "busy_timeout": seconds(30.0, zero=True, maximum=3600.0),
    "synchronous": choice("full", "full", "normal"),
    "inline": flag(True),
    "inline_budget": seconds(5.0, maximum=600.0),
    "drain_limit": integer(200, 0, 1_000_000),
}

BUS_KINDS = ("inprocess", "rabbitmq")

BUS: dict[str, Setting] = {
    "kind": choice("inprocess", *BUS_KINDS),
    "url": Setting(
        "amqp://guest:guest@127.0.0.1:5672/%2F",
        "an amqp:// or amqps:// URL, or a list of them",
        lambda v: (
            (isinstance(v, str) and _amqp_url(v))
            or (
                isinstance(v, list)
                and bool(v)
                and all(isinstance(u, str) and _amqp_url(u) for u in v)
            )
        ),
    ),
    "exchange": text("accre-monitor"),
    "queue_prefix": text("accre-monitor"),
    "queue_type": choice("classic", "classic", "quorum"),
    "connect_timeout": seconds(2.0, maximum=600.0),
    "heartbeat": integer(30, 0, AMQP_SHORT),
    "ca_file": text(None),
    "username": text(None),
    "password": text(None),
    "prefetch": integer(1000, 1, AMQP_SHORT),
    "batch_size": integer(500, 1, AMQP_SHORT),
    "batch_wait": seconds(1.0, maximum=3600.0),
}


STATUS_NAMES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")

STATE: dict[str, Setting] = {
    # sqlite:///PATH (default: state.db beside the spool) or redis://[:PASSWORD@]HOST[:PORT][/DB]
    "url": Setting(
        None,
        "a sqlite:///PATH or redis:// URL",
        lambda v: isinstance(v, str) and v.startswith(("sqlite:///", "redis://", "rediss://")),
    ),
    "key_prefix": text("accre-monitor"),
    "ttl_status": choice("UNKNOWN", *STATUS_NAMES),
    "node_ttl": seconds(0.0, zero=True, maximum=30 * DAY),
    "node_status": choice("CRITICAL", *STATUS_NAMES),
    "watchdog_interval": seconds(1.0, maximum=3600.0),
    "lease": seconds(15.0, maximum=3600.0),
    "busy_timeout": seconds(10.0, zero=True, maximum=3600.0),
}


TOKEN_MIN = 16  # characters: a guessable token is no lock (openssl rand -hex 16 gives 32)

SERVE: dict[str, Setting] = {
    # writes (adding and removing silences) are refused unless a token is set; a secret
    "token": Setting(
        None,
        f"a string of at least {TOKEN_MIN} characters",
        lambda v: isinstance(v, str) and len(v.strip()) >= TOKEN_MIN,
    ),
    "listen": Setting(
        "127.0.0.1:8080",
        "HOST:PORT with a port from 0 to 65535 ([ADDRESS]:PORT for IPv6)",
        lambda v: isinstance(v, str) and listen_address(v) is not None,
    ),
    "refresh": Setting(
        5.0,
        "a number of seconds from 1 to 3600",
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 1 <= v <= 3600,
    ),
}


def listen_address(value: str) -> tuple[str, int] | None:
    """(host, port) of `HOST:PORT` or `[ADDRESS]:PORT`; None when it is neither (port 0:
    any free port, which the server says when it starts)."""
    host, separator, port = value.strip().rpartition(":")
    if not separator or not port.isdigit() or not 0 <= int(port) <= 65535:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or any(char in host for char in "[]/ \t"):
        return None
    return host, int(port)


def _amqp_url(value: str) -> bool:
    """`amqp://` or `amqps://` with a host and, if any, a numeric port.

    Checked by hand: urllib.parse would cost a check run that never publishes (a stdout run
    on a node whose config names a broker) more than a third of its time.
    """
    scheme, separator, rest = split_credentials(value)[0].partition("://")
    if scheme not in ("amqp", "amqps") or not separator:
        return False
    netloc = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if netloc.startswith("["):  # [IPv6]:port
        host, closed, tail = netloc[1:].partition("]")
        if not closed or (tail and not tail.startswith(":")):
            return False
        port = tail[1:]
    else:
        host, _, port = netloc.partition(":")
    return bool(host) and (not port or (port.isdigit() and 0 < int(port) < 65536))


def default_spool_path() -> str:
    """`$XDG_STATE_HOME/accre-monitor/spool.db` (`~/.local/state/...` by default)."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(state, "accre-monitor", "spool.db")


def spool_section(values: Any, source: str | None = None) -> tuple[dict[str, Any], list, list]:
    """(`[spool]` settings, unknown keys, problems); bad values fall back to their default."""
    settings, unknown, problems = check_section("spool", SPOOL, values, source)
    if settings["backoff_max"] < settings["backoff_base"]:
        problems.append(
            f"spool.backoff_max ({settings['backoff_max']}) must not be below "
            f"spool.backoff_base ({settings['backoff_base']})"
        )
        settings["backoff_max"] = settings["backoff_base"]
    settings["path"] = settings["path"] or default_spool_path()
    return settings, unknown, problems


def state_section(
    values: Any, source: str | None = None, spool_path: str | None = None
) -> tuple[dict[str, Any], list, list]:
    """(`[state]` settings, unknown keys, problems); the default url is `state.db` beside
    the spool."""
    settings, unknown, problems = check_section("state", STATE, values, source)
    if settings["url"] is None:
        directory = os.path.dirname(spool_path or default_spool_path())
        settings["url"] = "sqlite:///" + os.path.join(directory, "state.db")
    if settings["lease"] <= settings["watchdog_interval"]:
        problems.append(
            f"state.lease ({settings['lease']:g}) must be longer than state.watchdog_interval "
            f"({settings['watchdog_interval']:g})"
        )
        settings["lease"] = max(STATE["lease"].default, settings["watchdog_interval"] * 3)
    return settings, unknown, problems


def bus_section(values: Any, source: str | None = None) -> tuple[dict[str, Any], list, list]:
    """(`[bus]` settings, unknown keys, problems)."""
    settings, unknown, problems = check_section("bus", BUS, values, source)
    if any(problem.startswith("bus.url ") for problem in problems):
        settings["url"] = []  # unusable: the bus keeps records in the spool until it is fixed
    elif isinstance(settings["url"], str):
        settings["url"] = [settings["url"]]
    return settings, unknown, problems


def serve_section(values: Any, source: str | None = None) -> tuple[dict[str, Any], list, list]:
    """(`[serve]` settings, unknown keys, problems); `ACCRE_MONITOR_SERVE_TOKEN` in the
    environment wins over the file's token, so the file need not hold the secret."""
    settings, unknown, problems = check_section("serve", SERVE, values, source)
    from_env = os.environ.get("ACCRE_MONITOR_SERVE_TOKEN")
    if from_env is not None:
        if SERVE["token"].check(from_env):
            settings["token"] = from_env
        else:
            problems.append(
                f"ACCRE_MONITOR_SERVE_TOKEN must be {SERVE['token'].expected} "
                "(the value is not shown: it is a secret)"
            )
            settings["token"] = None
    if settings["token"] is not None:
        settings["token"] = settings["token"].strip()
        from accre_monitor.redaction import remember

        remember(settings["token"])  # never shown, whatever message quotes it
    settings["refresh"] = float(settings["refresh"])
    return settings, unknown, problems
