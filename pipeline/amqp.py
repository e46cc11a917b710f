"""Connecting to RabbitMQ from the `[bus]` settings: URLs tried in turn, secrets kept out of
sight, every wait bounded.

`[bus] url` is one `amqp://` or `amqps://` URL or a list of them (the nodes of a cluster,
tried in order until one answers); the password comes from the URL, `[bus] password` or
`ACCRE_MONITOR_BUS_PASSWORD` (which wins). URLs are redacted in every message
(accre_monitor.redaction).
"""

from __future__ import annotations

import os

from accre_monitor.errors import ConfigError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

PASSWORD_VARIABLE = "ACCRE_MONITOR_BUS_PASSWORD"
INSTALL_HINT = "pip install 'accre-monitor[rabbitmq]'"
PIKA_MISSING = f'[bus] kind = "rabbitmq" needs the pika package: {INSTALL_HINT}'


class PikaMissing(ConfigError):
    """The RabbitMQ bus is configured, but pika (the `rabbitmq` extra) is not installed."""


def require_pika() -> Any:
    """`import pika` (with `pika.exceptions`): the one guarded import of pika, an optional
    extra. PikaMissing, saying what to install, when it is not installed."""
    try:
        import pika
        import pika.exceptions  # noqa: F401 - loaded for every user of the module
    except ImportError:
        raise PikaMissing(PIKA_MISSING) from None
    return pika


def pika_installed() -> bool:
    """Whether pika can be imported, without importing it."""
    from importlib.util import find_spec

    try:
        return find_spec("pika") is not None
    except (ImportError, ValueError):
        return False


def load_pika() -> Any:
    """`require_pika()` for the command line's publish path, without the asyncio adapter
    that `import pika` loads on the way.

    pika's package imports every adapter it ships, and its asyncio adapter imports asyncio:
    about a third of pika's import time, paid on every run of every check that publishes,
    for an adapter the blocking connection never uses. A placeholder stands in for that one
    module (only when pika is not imported yet, so a program that uses pika's asyncio
    adapter itself is never affected). Only the run's publish path uses it: daemons and
    `accre-pipeline` import pika as it is (`require_pika`).
    """
    import sys

    name = "pika.adapters.asyncio_connection"
    if "pika" not in sys.modules and "asyncio" not in sys.modules:
        import types

        placeholder = types.ModuleType(name)
        placeholder.AsyncioConnection = None  # type: ignore[attr-defined]
        sys.modules.setdefault(name, placeholder)
        try:
            return require_pika()
        except PikaMissing:
            if sys.modules.get(name) is placeholder:
                del sys.modules[name]
            raise
    return require_pika()


class BrokerUnavailable(ConnectionError):
    """No broker answered, or it refused us (credentials, a mismatched declaration)."""


def describe_urls(settings: dict[str, Any]) -> str:
    """The `[bus]` URLs as messages show them: `amqp://user:***@host:5672/vhost`."""
    from accre_monitor.redaction import redact_url

    return ", ".join(redact_url(url) for url in settings["url"]) or "(no usable [bus] url)"


def parameters(settings: dict[str, Any], timeout: float | None = None) -> list[Any]:
    """pika connection parameters for each URL of `[bus] url`, in order.

    `timeout` bounds the socket connect, the AMQP handshake and a blocked connection;
    `[bus] connect_timeout` when not given.
    """
    pika = require_pika()
    from urllib.parse import unquote, urlsplit

    from accre_monitor.redaction import remember, remember_url, split_credentials

    timeout = float(timeout or settings["connect_timeout"])
    password_override = os.environ.get(PASSWORD_VARIABLE) or settings.get("password")
    result = []
    for url in settings["url"]:
        # the credentials are split off first: urllib would take a `#` or `/` in the
        # password for the URL's fragment or path, and quote pieces of it in its errors
        bare, url_username, url_password = split_credentials(url)
        parts = urlsplit(bare)
        username = settings.get("username") or url_username or "guest"
        password = password_override or url_password or "guest"
        remember(password_override)
        remember_url(url)
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        tls = parts.scheme == "amqps"
        options: dict[str, Any] = {}
        if tls:
            import ssl

            context = ssl.create_default_context(cafile=settings.get("ca_file") or None)
            options["ssl_options"] = pika.SSLOptions(context, parts.hostname)
        result.append(
            pika.ConnectionParameters(
                host=parts.hostname,
                port=parts.port or (5671 if tls else 5672),
                virtual_host=vhost,
                credentials=pika.PlainCredentials(username, password),
                heartbeat=settings["heartbeat"],
                connection_attempts=1,
                retry_delay=0,
                socket_timeout=timeout,
                stack_timeout=timeout,
                blocked_connection_timeout=timeout,
                client_properties={"connection_name": "accre-monitor"},
                **options,
            )
        )
    return result


def connect(settings: dict[str, Any], timeout: float | None = None) -> Any:
    """A BlockingConnection to the first broker of `[bus] url` that answers.

    Raises BrokerUnavailable (with redacted URLs) when none does, PikaMissing without pika.
    """
    pika = require_pika()

    if not settings["url"]:
        raise BrokerUnavailable("the [bus] url setting is not usable")
    try:
        return pika.BlockingConnection(parameters(settings, timeout))
    except pika.exceptions.AMQPError as exc:
        why = explain(exc)
    except Exception as exc:  # OSError, and pika's connector errors (a stack timeout...)
        why = f"{type(exc).__name__}: {exc}"
    from accre_monitor.redaction import scrub

    raise BrokerUnavailable(scrub(f"broker {describe_urls(settings)}: {why}"))


def explain(exc: BaseException) -> str:
    """A pika exception in words, without its (possibly long, nested) repr."""
    name = type(exc).__name__
    text = str(exc).strip()
    if name == "ProbableAuthenticationError" or "ACCESS_REFUSED" in text:
        return "the broker refused our credentials (check [bus] url/username/password)"
    if name in ("AMQPConnectionError", "IncompatibleProtocolError") and not text:
        return "connection refused or timed out"
    return f"{name}: {text}" if text else name
