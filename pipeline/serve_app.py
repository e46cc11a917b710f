"""The status page's web application: the pages, their JSON API, and `/metrics`.

Built on Starlette (an ASGI toolkit, BSD, maintained by Encode and used under FastAPI) and
served by uvicorn (`serve.py`): a production HTTP server that parses requests with h11,
shuts down cleanly on SIGTERM, and needs no C extension, where the standard library's
`http.server` says of itself that it is not for production. Starlette brings routing,
request and response types and static files in two small pure-Python packages (it needs
only anyio); the reads of the state are blocking calls, which Starlette runs in its thread
pool for synchronous endpoints.

The pages are static HTML, CSS and a little vanilla JavaScript shipped in the package
(`serve_static/`): no templates and no front-end build. Nothing from a record (node and
check names, short and long texts, data: input from every node) is ever put into HTML by
the server; the page's scripts show it with `textContent` and draw it on a canvas, and a
Content-Security-Policy lets no inline script or handler run, should that ever slip.

Routes:

    GET    /                     the cluster: counts, the heat map, the problems, silences
    GET    /node/NAME            every check of one node
    GET    /api/state            `overview --json` (?node=GLOB&check=GLOB)
    GET    /api/grid             the page's compact form (serve_data.py)
    GET    /api/node/NAME        one node's entries, with their long texts and data
    GET    /api/silences         `silence list --json`
    POST   /api/silences         `silence add` (the fields as JSON; Bearer token)
    DELETE /api/silences/ID      `silence remove` (Bearer token)
    GET    /metrics              Prometheus text (serve_metrics.py)
    GET    /healthz              "ok", without touching the state

A state that cannot be read is a 503 with one line (`{"error": "..."}`), never a traceback.
Writes need `[serve] token`: without it configured they are refused with 403 (the server
takes no writes at all), with it configured a request without the right
`Authorization: Bearer TOKEN` gets 401.
"""

from __future__ import annotations

import glob
import hmac
import os
import time
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from accre_monitor import log
from accre_monitor.errors import UserError
from accre_monitor.outcome import describe
from accre_monitor.pipeline.overview import entry_json
from accre_monitor.pipeline.serve_data import StateUnavailable, StateView
from accre_monitor.pipeline.serve_metrics import Metrics
from accre_monitor.pipeline.silence_cli import as_json, build_silence
from accre_monitor.pipeline.state import Entry

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "serve_static")
MAX_BODY = 16 * 1024  # bytes of a silence as JSON: far more than any silence needs
SILENCE_FIELDS = {
    "node": str,
    "check": str,
    "begin": str,
    "expire": (str, int, float),
    "until": str,
    "on_resolve": bool,
    "comment": str,
}
# no inline script, style attribute or handler runs, whatever a record smuggles in
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


class Service:
    """What the routes share: the settings, the state view, and the page's extras."""

    def __init__(self, config: Any, settings: dict[str, Any]) -> None:
        self.config = config
        self.token: str | None = settings["token"]
        self.refresh = float(settings["refresh"])
        # a read is served for under a refresh: each page sees every refresh's news
        self.view = StateView(config, max_age=min(self.refresh / 2, 2.0), extra=self.extra())
        self.metrics = Metrics(self.view)

    def extra(self) -> dict[str, Any]:
        """What the grid carries beside the state: the page's settings."""
        return {
            "refresh": self.refresh,
            "writable": self.token is not None,
            "watchdog_interval": self.config.state["watchdog_interval"],
        }


def error(status: int, message: str, **headers: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers or None)


def unavailable(exc: StateUnavailable) -> JSONResponse:
    return error(503, str(exc), **{"retry-after": "5"})


def encoded(request: Request, plain: Any, gzipped: Any) -> Response:
    """JSON already encoded, gzipped when the client takes it."""
    headers = {"cache-control": "no-store", "vary": "accept-encoding"}
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["content-encoding"] = "gzip"
        return Response(gzipped(), media_type="application/json", headers=headers)
    return Response(plain(), media_type="application/json", headers=headers)


def json_bytes(value: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(value),
        status_code=status,
        media_type="application/json",
        headers={"cache-control": "no-store"},
    )


# -- pages ----------------------------------------------------------------------------------


def page(name: str) -> Any:
    path = os.path.join(STATIC, name)

    def endpoint(request: Request) -> Response:
        return FileResponse(path, media_type="text/html", headers={"cache-control": "no-cache"})

    return endpoint


# -- reading ---------------------------------------------------------------------------------


def api_state(request: Request) -> Response:
    service: Service = request.app.state.service
    node = request.query_params.get("node") or None
    check = request.query_params.get("check") or None
    try:
        snapshot = service.view.snapshot()
    except StateUnavailable as exc:
        return unavailable(exc)
    if node is None and check is None:
        return encoded(request, snapshot.state_bytes, lambda: snapshot.state_bytes(True))
    from fnmatch import fnmatchcase

    items = [
        item
        for item in snapshot.items()
        if (node is None or fnmatchcase(item["node"], node))
        and (check is None or fnmatchcase(item["check"], check))
    ]
    return json_bytes(items)


def api_grid(request: Request) -> Response:
    service: Service = request.app.state.service
    try:
        snapshot = service.view.snapshot()
    except StateUnavailable as exc:
        return unavailable(exc)
    return encoded(request, snapshot.grid_bytes, lambda: snapshot.grid_bytes(gzipped=True))


def node_json(entry: Entry, silences: list[Any], back: float, now: float) -> dict[str, Any]:
    """An entry as the node's page shows it: `overview --json`'s object and the record."""
    record = entry.record
    return {
        **entry_json(entry, silences, back, now),
        "long": record.get("long"),
        "data": record.get("data"),
        "runtime": record.get("runtime"),
        "watermark": entry.watermark,
        "problem_since": entry.problem_since,
        "record_id": entry.record_id,
    }


def api_node(request: Request) -> Response:
    service: Service = request.app.state.service
    name = request.path_params["name"]

    def read(store: Any) -> dict[str, Any] | None:
        now = time.time()
        entries = store.entries(node=glob.escape(name))
        known = next((n for n in store.nodes() if n.name == name), None)
        if not entries and known is None:
            return None
        silences = store.silences(now)
        back = known.back if known is not None else 0.0
        by_id = {s.id: as_json(s) for s in silences}
        checks = [node_json(e, silences, back, now) for e in entries]
        return {
            "node": name,
            "now": now,
            "last": known.last if known is not None else None,
            "silent": known.silent if known is not None else False,
            "back": back or None,
            "checks": checks,
            "silences": {i: by_id[i] for c in checks for i in c["silenced"] if i in by_id},
            "refresh": service.refresh,
        }

    if not service.view.readable():
        return error(404, f"no node {name} in the state (it is empty)")
    try:
        found = service.view.use(read)
    except StateUnavailable as exc:
        return unavailable(exc)
    if found is None:
        return error(404, f"no node {name} in the state")
    return json_bytes(found)


def api_silences(request: Request) -> Response:
    service: Service = request.app.state.service
    if not service.view.readable():
        return json_bytes([])
    try:
        silences = service.view.use(lambda store: store.silences())
    except StateUnavailable as exc:
        return unavailable(exc)
    return json_bytes([as_json(s) for s in silences])


# -- writing ---------------------------------------------------------------------------------


def refused(request: Request, service: Service) -> Response | None:
    """Why a write is refused (403: no token configured; 401: not the token), or None."""
    if service.token is None:
        return error(
            403,
            "silences cannot be changed from the page: no [serve] token is set "
            "(set one, or ACCRE_MONITOR_SERVE_TOKEN, and restart serve)",
        )
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), service.token.encode()
    ):
        return error(
            401,
            "a token is needed: Authorization: Bearer TOKEN (the one in [serve] token)",
            **{"www-authenticate": 'Bearer realm="accre-monitor"'},
        )
    return None


def silence_fields(body: bytes) -> dict[str, Any]:
    """The silence's fields from a JSON object, or UserError saying what is wrong."""
    try:
        fields = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise UserError("the body must be a JSON object with the fields of silence add") from None
    if not isinstance(fields, dict):
        raise UserError("the body must be a JSON object with the fields of silence add")
    unknown = sorted(set(fields) - set(SILENCE_FIELDS))
    if unknown:
        raise UserError(f"unknown field {unknown[0]!r} (known: {', '.join(SILENCE_FIELDS)})")
    for name, kind in SILENCE_FIELDS.items():
        value = fields.get(name)
        if value is not None and (
            not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))
        ):
            raise UserError(f"{name} has the wrong type")
    if fields.get("expire") is not None:
        fields["expire"] = str(fields["expire"])
    for name in ("begin", "expire", "until"):
        if isinstance(fields.get(name), str) and not fields[name].strip():
            fields[name] = None
    return fields


async def add_silence(request: Request) -> Response:
    service: Service = request.app.state.service
    denied = refused(request, service)
    if denied is not None:
        return denied
    body = await request.body()
    if len(body) > MAX_BODY:
        return error(413, f"a silence is at most {MAX_BODY} bytes of JSON")
    try:
        fields = silence_fields(body)
        silence = build_silence(
            fields.get("node"),
            fields.get("check"),
            fields.get("begin"),
            fields.get("expire"),
            fields.get("until"),
            bool(fields.get("on_resolve")),
            fields.get("comment"),
            time.time(),
        )
    except UserError as exc:
        return error(400, str(exc))

    def add(store: Any) -> int:
        store.add_silence(silence)
        return len(store.entries(node=silence.node, check=silence.check))

    try:
        covered = await run_in_threadpool(service.view.use, add)
    except StateUnavailable as exc:
        return unavailable(exc)
    service.view.invalidate()
    log.info(
        "silence added from the page",
        id=silence.id,
        node=silence.node,
        check=silence.check,
        comment=silence.comment,
        client=request.client.host if request.client else None,
    )
    return json_bytes({**as_json(silence), "covers": covered}, status=201)


def remove_silence(request: Request) -> Response:
    service: Service = request.app.state.service
    denied = refused(request, service)
    if denied is not None:
        return denied
    silence_id = request.path_params["id"]
    try:
        gone = service.view.use(lambda store: store.remove_silence(silence_id))
    except StateUnavailable as exc:
        return unavailable(exc)
    if not gone:
        return error(404, f"no silence {silence_id}")
    service.view.invalidate()
    log.info(
        "silence removed from the page",
        id=silence_id,
        client=request.client.host if request.client else None,
    )
    return Response(status_code=204)


# -- the rest ----------------------------------------------------------------------------------


def metrics(request: Request) -> Response:
    body, content_type = request.app.state.service.metrics.exposition()
    return Response(body, headers={"content-type": content_type, "cache-control": "no-store"})


def healthz(request: Request) -> Response:
    return PlainTextResponse("ok\n")


class Guard:
    """Every answer says what the browser may run, load and frame; a fault of this program
    is one line in the log and a 500 (pure ASGI: streamed files pass through untouched)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.headers = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        extra = list(self.headers)
        if scope["path"].startswith("/static/"):
            extra.append((b"cache-control", b"no-cache"))  # an upgrade's files are seen

        async def sending(message: Any) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as exc:
            log.error("status page request failed", path=scope["path"], error=describe(exc))
            if not started:
                response = error(500, f"internal error: {describe(exc)}")
                await response(scope, receive, sending)


def build_app(config: Any, settings: dict[str, Any]) -> Starlette:
    """The application for `config`'s state and `[serve]` settings."""
    from starlette.middleware import Middleware

    routes = [
        Route("/", page("index.html")),
        Route("/node/{name:path}", page("node.html")),
        Route("/api/state", api_state),
        Route("/api/grid", api_grid),
        Route("/api/node/{name:path}", api_node),
        Route("/api/silences", api_silences, methods=["GET"]),
        Route("/api/silences", add_silence, methods=["POST"]),
        Route("/api/silences/{id}", remove_silence, methods=["DELETE"]),
        Route("/metrics", metrics),
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(Guard)],
    )
    app.state.service = Service(config, settings)
    return app
