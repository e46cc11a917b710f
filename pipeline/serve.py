"""`accre-pipeline serve`: the status page over the cluster state, and its `/metrics`.

The web stack (Starlette, uvicorn, prometheus_client: the `web` extra) is imported only
here, when the command runs: every other command, and the check run, never pay for it. Why
that stack: see `serve_app.py`.

The server binds its socket itself before uvicorn starts, so that an address in use or not
allowed is one line and exit 1, and `--listen 127.0.0.1:0` takes any free port and says
which. Its log is this project's log on stderr (uvicorn's own warnings go through it too);
no request line is logged, and the token never is.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
from typing import Any

import argh

from accre_monitor import log
from accre_monitor.errors import UserError
from accre_monitor.pipeline.state_cli import load_config, where
from accre_monitor.sections import listen_address

EXTRA = "pip install 'accre-monitor[web]'"
BACKLOG = 2048  # connections the kernel queues (uvicorn's default)


def web_stack() -> Any:
    """uvicorn and the application module, or UserError saying which extra to install."""
    try:
        import uvicorn

        from accre_monitor.pipeline import serve_app
    except ImportError as exc:
        missing = exc.name or "a package of the web stack"
        raise UserError(f"serve needs {missing}, which is not installed: {EXTRA}") from None
    return uvicorn, serve_app


def bind(text: str) -> tuple[socket.socket, str]:
    """A socket listening on `HOST:PORT` (connections wait in the kernel's queue until the
    server accepts them), and the URL it serves."""
    address = listen_address(text)
    if address is None:
        raise UserError(
            f"--listen {text!r} is not HOST:PORT (127.0.0.1:8080, [::1]:8080, 0.0.0.0:8080)"
        )
    host, port = address
    try:
        family, kind, proto, _, where_to = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise UserError(f"cannot listen on {text}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(where_to)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {text}: {exc.strerror or exc}") from None
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return sock, f"http://{shown}:{bound_port}/"


class _ToLog(logging.Handler):
    """uvicorn's warnings and errors as this project's log lines."""

    def emit(self, record: logging.LogRecord) -> None:
        message = " ".join(record.getMessage().split())
        if record.levelno >= logging.ERROR:
            log.error(message)
        else:
            log.warning(message)


def _route_uvicorn_log() -> None:
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers = [_ToLog()]
        logger.setLevel(logging.WARNING)
        logger.propagate = False


@argh.arg("--listen", help="HOST:PORT to serve on (default: [serve] listen, 127.0.0.1:8080)")
def serve(*, listen: str | None = None) -> None:
    """Serve the status page (the heat map of every node and check, the problems, silences),
    its JSON API and /metrics, until SIGTERM. Silences can be added from the page only with
    [serve] token set. Needs the web extra: pip install 'accre-monitor[web]'."""
    uvicorn, serve_app = web_stack()
    config = load_config()
    settings = config.serve
    sock, url = bind(listen or settings["listen"])
    log.with_timestamps()  # a daemon's log from here on: each line says when
    try:
        app = serve_app.build_app(config, settings)
        service = app.state.service
        service.view.store()  # a state URL this install cannot use fails now, in one line

        stopping: list[int] = []

        @contextlib.asynccontextmanager
        async def lifespan(app: Any) -> Any:
            # said once uvicorn handles SIGTERM, and connections are served from here on
            if stopping:  # asked to stop before uvicorn took the signals over
                server.should_exit = True
            log.info(
                "serving the status page",
                url=url,
                state=where(config),
                silences_from_the_page="with the token" if settings["token"] else "off (no token)",
            )
            yield

        app.router.lifespan_context = lifespan
        _route_uvicorn_log()
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                log_config=None,
                access_log=False,
                lifespan="on",
                server_header=False,
                timeout_graceful_shutdown=5,
                backlog=BACKLOG,
            )
        )
        # SIGTERM before uvicorn handles it, and the one uvicorn raises again once it has
        # shut down gracefully, end the command with exit 0 rather than kill it
        for number in (signal.SIGTERM, signal.SIGINT):
            signal.signal(number, lambda number, frame: stopping.append(number))
        server.run(sockets=[sock])
    finally:
        with contextlib.suppress(Exception):
            sock.close()
    service.view.close()
    log.info("status page stopped")
    if not server.started:
        sys.exit(1)
