"""A small, faithful Elasticsearch 8 test server (stdlib only).

No Elasticsearch can be installed here, so the tests run this: a ``ThreadingHTTPServer`` on
127.0.0.1 in a background thread that speaks the part of the Elasticsearch 8 REST API an output
built on the official elasticsearch-py 8.x client uses, answering as the real server does:

* every answer carries ``X-Elastic-Product: Elasticsearch`` (the client refuses a 2xx answer
  without it) and a JSON content type: ``application/vnd.elasticsearch+json;compatible-with=8``
  when the request asked for compatibility mode (the 8.x client always does), else
  ``application/json``; a request for ``compatible-with=9`` (a 9.x client) gets 400
  ``media_type_header_exception``, like a real 8.x server;
* ``GET``/``HEAD /``, ``PUT/GET/HEAD/DELETE /_index_template/{name}`` (same-priority overlap is
  refused; templates apply when an index is created, as in ES), component templates,
  ``_bulk`` (``index``/``create``/``update``/``delete``), the single-document APIs,
  ``_search``/``_count`` (a useful subset of the query DSL), ``_refresh``, index create/delete,
  ``_mapping``, data streams (ES's built-in ``logs-*-*``/``metrics-*-*``/``synthetics-*-*``
  templates are installed, priority 100, as in a default cluster);
* mappings: dynamic mapping fixes each new field's type from the first document (object, text
  with a keyword sub-field, date when a string looks like an ISO date, long, float, boolean);
  a later value of the wrong shape or type gets a per-item 400 (``document_parsing_exception``
  from version 8.8 on, ``mapper_parsing_exception`` before; pick with ``version=``). Fields
  mapped ``enabled: false`` take anything, ``flattened`` any JSON object; ``date`` fields
  must parse;
  ``dynamic: strict|false``, ``ignore_malformed`` and the 1000-field limit work as in ES.
  Documents become searchable at once (no refresh interval);
* failure injection: ``fail_next()``, ``fail_items()``, ``hang()``, ``delay()``.

Usage::

    with FakeElasticsearch() as es:
        client = Elasticsearch(es.url)
        ...
        assert es.docs("metrics-*") == [...]
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime as dt
import gzip
import ipaddress
import json
import re
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

HOST = "127.0.0.1"
PRODUCT_HEADER = ("X-Elastic-Product", "Elasticsearch")
METADATA_FIELDS = {
    "_id",
    "_index",
    "_source",
    "_routing",
    "_version",
    "_seq_no",
    "_primary_term",
    "_ignored",
    "_field_names",
    "_tier",
    "_data_stream_timestamp",
    "_doc_count",
    "_nested_path",
    "_feature",
    "_type",
}
NUMERIC_INT = {"long": 2**63, "integer": 2**31, "short": 2**15, "byte": 2**7}
NUMERIC_FLOAT = {"float", "double", "half_float", "scaled_float"}
STRING_TYPES = {"keyword", "text", "match_only_text", "wildcard", "constant_keyword", "version"}
BUILTIN_TEMPLATES = {
    name: {
        "index_patterns": [f"{name}-*-*"],
        "priority": 100,
        "data_stream": {"hidden": False, "allow_custom_routing": False},
        "template": {
            "mappings": {
                "date_detection": False,
                "properties": {"@timestamp": {"type": "date"}},
            }
        },
        "_meta": {"description": f"default {name} template installed by x-pack", "managed": True},
        "composed_of": [],
    }
    for name in ("logs", "metrics", "synthetics")
}
DEFAULT_ERROR_TYPES = {
    400: ("illegal_argument_exception", "bad request"),
    401: ("security_exception", "unable to authenticate user"),
    403: ("security_exception", "action is unauthorized"),
    404: ("resource_not_found_exception", "not found"),
    409: ("version_conflict_engine_exception", "version conflict"),
    429: (
        "es_rejected_execution_exception",
        "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, "
        "replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1, "
        "max_coordinating_and_primary_bytes=0]",
    ),
    500: ("exception", "internal failure injected by FakeElasticsearch"),
    502: ("exception", "bad gateway"),
    503: (
        "cluster_block_exception",
        "blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];",
    ),
    504: ("exception", "gateway timeout"),
}
_ISO_DATE = re.compile(
    r"^(?P<y>[+-]?\d{4})(?:-(?P<mo>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<h>\d{2})(?::(?P<mi>\d{2})(?::(?P<s>\d{2})(?:[.,](?P<f>\d{1,9}))?)?)?"
    r"(?P<z>Z|[+-]\d{2}(?::?\d{2})?)?)?)?)?$"
)
_DYNAMIC_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(T.*)?$|^\d{4}/\d{2}/\d{2}( .*)?$")
_INDEX_BAD_CHARS = '\\/*?"<>| ,#:'


# --------------------------------------------------------------------------------------------
# errors


class EsError(Exception):
    """An Elasticsearch error: becomes a whole-request answer or a bulk item's ``error``."""

    def __init__(self, status: int, type_: str, reason: str, **extra):
        super().__init__(f"{status} {type_}: {reason}")
        self.status = status
        self.type = type_
        self.reason = reason
        self.extra = extra

    def cause(self) -> dict:
        body = {"type": self.type, "reason": self.reason}
        body.update(self.extra)
        return body

    def body(self) -> dict:
        cause = self.cause()
        root = {k: v for k, v in cause.items() if k != "caused_by"}
        return {"error": {"root_cause": [root], **cause}, "status": self.status}


def _index_not_found(name: str) -> EsError:
    return EsError(
        404,
        "index_not_found_exception",
        f"no such index [{name}]",
        **{"resource.type": "index_or_alias", "resource.id": name},
        index_uuid="_na_",
        index=name,
    )


def _error_for_status(status: int, reason: str | None = None) -> EsError:
    type_, default_reason = DEFAULT_ERROR_TYPES.get(status, ("exception", "injected failure"))
    return EsError(status, type_, reason or default_reason)


# --------------------------------------------------------------------------------------------
# small helpers


def _glob_regex(pattern: str) -> re.Pattern:
    return re.compile("^" + ".*".join(re.escape(p) for p in pattern.split("*")) + "$")


def _glob_match(pattern: str, name: str) -> bool:
    return bool(_glob_regex(pattern).match(name))


def _globs_intersect(p: str, q: str) -> bool:
    """Whether some string matches both ``*``-globs ``p`` and ``q``."""
    seen: dict[tuple[int, int], bool] = {}

    def inter(i: int, j: int) -> bool:
        key = (i, j)
        if key in seen:
            return seen[key]
        seen[key] = False
        if i == len(p) and j == len(q):
            res = True
        elif i < len(p) and p[i] == "*":
            res = inter(i + 1, j) or (j < len(q) and inter(i, j + 1))
        elif j < len(q) and q[j] == "*":
            res = inter(i, j + 1) or (i < len(p) and inter(i + 1, j))
        else:
            res = i < len(p) and j < len(q) and p[i] == q[j] and inter(i + 1, j + 1)
        seen[key] = res
        return res

    return inter(0, 0)


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version)[:3])


def _flatten_settings(settings: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in (settings or {}).items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten_settings(value, full + "."))
        else:
            out[full] = value
    return {(k if k.startswith("index.") else f"index.{k}"): v for k, v in out.items()}


def _deep_merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _auto_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(15)).decode()


def _parse_iso_date(value: str) -> bool:
    m = _ISO_DATE.match(value)
    if not m:
        return False
    try:
        dt.datetime(
            int(m["y"]),
            int(m["mo"] or 1),
            int(m["d"] or 1),
            int(m["h"] or 0),
            int(m["mi"] or 0),
            int(m["s"] or 0),
        )
    except ValueError:
        return False
    if m["z"] and m["z"] != "Z":
        tz = m["z"][1:].replace(":", "")
        if int(tz[:2]) > 18 or (len(tz) > 2 and int(tz[2:]) > 59):
            return False
    return True


def _date_ok(value: object, fmt: str) -> bool:
    formats = [f.strip() for f in fmt.split("||")]
    for f in formats:
        if f in ("epoch_millis", "epoch_second"):
            if isinstance(value, bool):
                continue
            if isinstance(value, int | float):
                return True
            if isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value):
                return True
        elif isinstance(value, str):
            if f in (
                "strict_date_optional_time",
                "date_optional_time",
                "strict_date_optional_time_nanos",
                "strict_date_time",
                "date_time",
                "strict_date_time_no_millis",
                "date_time_no_millis",
                "iso8601",
            ):
                if _parse_iso_date(value):
                    return True
            elif f in ("strict_date", "date", "yyyy-MM-dd"):
                if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) and _parse_iso_date(value):
                    return True
            else:
                # Unknown custom format: accept anything that looks like a date.
                if _parse_iso_date(value) or re.match(r"^\d{4}[-/]\d{2}[-/]\d{2}", value):
                    return True
    return False


def _preview(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_preview(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _field_values(source: object, path: str) -> list:
    """All leaf values at a dotted path (dotted keys in the source also count)."""
    out: list = []

    def walk(node: object, parts: list[str]) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, parts)
            return
        if not parts:
            if node is not None:
                out.append(node)
            return
        if not isinstance(node, dict):
            return
        for i in range(len(parts), 0, -1):
            key = ".".join(parts[:i])
            if key in node:
                walk(node[key], parts[i:])

    walk(source, path.split(".") if path else [])
    return out


def _tokens(value: object) -> set[str]:
    return set(re.findall(r"\w+", str(value).lower()))


# --------------------------------------------------------------------------------------------
# the data model


@dataclass
class _Doc:
    id: str
    source: dict
    version: int
    seq_no: int
    order: int


@dataclass
class _Index:
    name: str
    mappings: dict
    settings: dict
    data_stream: bool = False
    template: str | None = None
    uuid: str = field(default_factory=lambda: uuid.uuid4().hex[:22])
    created: float = field(default_factory=time.time)
    docs: dict[str, _Doc] = field(default_factory=dict)
    seq_no: int = -1

    @property
    def write_name(self) -> str:
        """The concrete index name documents report: a backing index for data streams."""
        if not self.data_stream:
            return self.name
        day = time.strftime("%Y.%m.%d", time.gmtime(self.created))
        return f".ds-{self.name}-{day}-000001"


@dataclass
class RequestRecord:
    """One request the server answered (for assertions)."""

    method: str
    path: str
    query: dict
    headers: dict
    body: bytes
    status: int | None = None


class _Mapper:
    """Applies one document to a copy of an index's mappings, the way ES dynamic mapping does."""

    def __init__(self, index: _Index, doc_id: str, parse_type: str, new_style: bool):
        self.index = index
        self.doc_id = doc_id
        self.parse_type = parse_type
        self.new_style = new_style
        self.mappings = copy.deepcopy(index.mappings)
        self.added = 0
        settings = index.settings
        self.ignore_malformed = str(settings.get("index.mapping.ignore_malformed", "false")) in (
            "true",
            "True",
        )
        self.field_limit = int(settings.get("index.mapping.total_fields.limit", 1000))
        self.date_detection = self.mappings.get("date_detection", True) is not False

    def error(self, reason: str, **extra) -> EsError:
        if self.new_style:
            reason = f"[1:{len(reason) % 97 + 2}] {reason}"
        return EsError(400, self.parse_type, reason, **extra)

    def apply(self, source: dict) -> dict:
        for key in source:
            if key in METADATA_FIELDS:
                raise self.error(
                    f"Field [{key}] is a metadata field and cannot be added inside a document. "
                    "Use the index API request parameters."
                )
        root_dynamic = str(self.mappings.get("dynamic", "true")).lower()
        self._object(self.mappings, source, "", root_dynamic)
        if self.added:
            total = _count_fields(self.mappings.get("properties", {}))
            if total > self.field_limit:
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"Limit of total fields [{self.field_limit}] has been exceeded "
                    f"while adding new fields [{self.added}]",
                )
        return self.mappings

    def _object(self, mapping: dict, obj: dict, path: str, dynamic: str) -> None:
        props = mapping.setdefault("properties", {})
        for key, value in obj.items():
            if key == "" or key.strip(".") != key or ".." in key:
                raise self.error(
                    f"field name cannot contain only whitespace or dots: ['{key}']"
                    if key.strip(". ") == ""
                    else f"field name starting or ending with a [.] makes object resolution "
                    f"ambiguous: [{key}]"
                )
            parts = key.split(".")
            if len(parts) > 1:
                nested: object = value
                for part in reversed(parts[1:]):
                    nested = {part: nested}
                self._value(props, parts[0], nested, path, dynamic)
            else:
                self._value(props, key, value, path, dynamic)

    def _value(self, props: dict, key: str, value: object, parent: str, dynamic: str) -> None:
        path = f"{parent}.{key}" if parent else key
        if value is None:
            return
        if isinstance(value, list):
            for item in value:
                self._value(props, key, item, parent, dynamic)
            return
        mapping = props.get(key)
        if mapping is None:
            if dynamic in ("false", "runtime"):
                return
            if dynamic == "strict":
                raise EsError(
                    400,
                    "strict_dynamic_mapping_exception",
                    f"[1:2] mapping set to strict, dynamic introduction of [{key}] within "
                    f"[{parent or '_doc'}] is not allowed",
                )
            mapping = self._dynamic(value)
            props[key] = mapping
            self.added += 1 + len(mapping.get("fields", {}))
        if mapping.get("enabled") is False:
            return
        ftype = mapping.get("type", "object")
        if ftype == "flattened":
            if not isinstance(value, dict):  # as in Elasticsearch: a flattened field is an object
                raise self.error(
                    f"failed to parse field [{path}] of type [flattened]: "
                    "value must be a JSON object"
                )
            return
        if ftype in ("object", "nested"):
            if not isinstance(value, dict):
                raise self.error(
                    f"object mapping for [{path}] tried to parse field [{key}] as object, "
                    "but found a concrete value"
                )
            self._object(mapping, value, path, str(mapping.get("dynamic", dynamic)).lower())
            return
        self._scalar(mapping, ftype, value, path)

    def _dynamic(self, value: object) -> dict:
        if isinstance(value, dict):
            return {"properties": {}}
        if isinstance(value, bool):
            return {"type": "boolean"}
        if isinstance(value, int):
            return {"type": "long"}
        if isinstance(value, float):
            return {"type": "float"}
        text = str(value)
        if self.date_detection and _DYNAMIC_DATE.match(text) and _parse_iso_date(text):
            return {"type": "date"}
        return {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}

    def _scalar(self, mapping: dict, ftype: str, value: object, path: str) -> None:
        def fail(cause_type: str, cause: str) -> EsError:
            return self.error(
                f"failed to parse field [{path}] of type [{ftype}] in document with id "
                f"'{self.doc_id}'. Preview of field's value: '{_preview(value)}'",
                caused_by={"type": cause_type, "reason": cause},
            )

        if isinstance(value, dict):
            raise fail("illegal_state_exception", "Can't get text on a START_OBJECT at 1:2")
        malformed_ok = mapping.get("ignore_malformed", self.ignore_malformed) is True
        problem: tuple[str, str] | None = None
        if ftype in STRING_TYPES:
            return
        if ftype in NUMERIC_INT or ftype == "unsigned_long":
            problem = self._check_number(value, integer=True, ftype=ftype)
        elif ftype in NUMERIC_FLOAT:
            problem = self._check_number(value, integer=False, ftype=ftype)
        elif ftype == "boolean":
            if not (isinstance(value, bool) or value in ("true", "false", "")):
                problem = (
                    "illegal_argument_exception",
                    f"Failed to parse value [{_preview(value)}] as only [true] or [false] "
                    "are allowed.",
                )
        elif ftype in ("date", "date_nanos"):
            fmt = mapping.get("format", "strict_date_optional_time||epoch_millis")
            if isinstance(value, bool) or not _date_ok(value, fmt):
                problem = (
                    "illegal_argument_exception",
                    f"failed to parse date field [{_preview(value)}] with format [{fmt}]",
                )
        elif ftype == "ip":
            try:
                ipaddress.ip_address(str(value))
            except ValueError:
                problem = (
                    "illegal_argument_exception",
                    f"'{_preview(value)}' is not an IP string literal.",
                )
        if problem and not malformed_ok:
            raise fail(*problem)

    @staticmethod
    def _check_number(value: object, *, integer: bool, ftype: str) -> tuple[str, str] | None:
        if isinstance(value, bool):
            return ("illegal_argument_exception", "Current token (VALUE_TRUE) not numeric")
        if isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                return ("number_format_exception", f'For input string: "{value}"')
        else:
            number = value
        if integer:
            limit = NUMERIC_INT.get(ftype)
            if limit is not None and not (-limit <= number < limit):
                return (
                    "illegal_argument_exception",
                    f"Value [{value}] is out of range for {'a ' + ftype}",
                )
            if ftype == "unsigned_long" and number < 0:
                return ("illegal_argument_exception", f"Value [{value}] is out of range")
        return None


def _count_fields(props: dict) -> int:
    total = 0
    for mapping in props.values():
        total += 1 + len(mapping.get("fields", {}))
        total += _count_fields(mapping.get("properties", {}))
    return total


def _normalize_mapping_types(mappings: dict) -> dict:
    """Mappings as stored: objects keep ``properties``; ``dynamic`` normalized to a string."""
    return copy.deepcopy(mappings or {})


# --------------------------------------------------------------------------------------------
# the query DSL subset


def _matches(query: dict | None, doc: _Doc, index: _Index) -> bool:
    if not query:
        return True
    if not isinstance(query, dict) or len(query) != 1:
        raise EsError(400, "parsing_exception", "query malformed, must start with start_object")
    ((kind, spec),) = query.items()
    if kind == "match_all":
        return True
    if kind == "match_none":
        return False
    if kind == "ids":
        return doc.id in spec.get("values", [])
    if kind == "exists":
        return bool(_query_values(doc, spec["field"]))
    if kind == "bool":

        def as_list(x: object) -> list:
            return x if isinstance(x, list) else ([x] if x else [])

        must = as_list(spec.get("must")) + as_list(spec.get("filter"))
        should = as_list(spec.get("should"))
        must_not = as_list(spec.get("must_not"))
        if not all(_matches(q, doc, index) for q in must):
            return False
        if any(_matches(q, doc, index) for q in must_not):
            return False
        if should:
            minimum = spec.get("minimum_should_match", 0 if must else 1)
            return sum(_matches(q, doc, index) for q in should) >= int(minimum)
        return True
    if kind in ("term", "match", "match_phrase", "prefix", "wildcard", "terms", "range"):
        if not isinstance(spec, dict) or not spec:
            raise EsError(400, "parsing_exception", f"[{kind}] query malformed")
        spec = {k: v for k, v in spec.items() if k not in ("boost", "_name")}
        ((fname, cond),) = spec.items()
        values = _query_values(doc, fname)
        if kind == "terms":
            return any(v == c for v in values for c in cond)
        if kind == "range":
            return any(_in_range(v, cond) for v in values)
        if isinstance(cond, dict):
            cond_value = cond.get("value", cond.get("query"))
            operator = str(cond.get("operator", "or")).lower()
        else:
            cond_value, operator = cond, "or"
        if kind == "term":
            return any(v == cond_value or str(v) == str(cond_value) for v in values)
        if kind == "prefix":
            return any(str(v).startswith(str(cond_value)) for v in values)
        if kind == "wildcard":
            return any(_glob_match(str(cond_value), str(v)) for v in values)
        if kind == "match_phrase":
            return any(str(cond_value).lower() in str(v).lower() for v in values)
        wanted = _tokens(cond_value)
        for v in values:
            have = _tokens(v)
            if (operator == "and" and wanted <= have) or (operator != "and" and wanted & have):
                return True
        return False
    raise EsError(400, "parsing_exception", f"unknown query [{kind}]")


def _query_values(doc: _Doc, fname: str) -> list:
    if fname == "_id":
        return [doc.id]
    values = _field_values(doc.source, fname)
    if not values and fname.endswith(".keyword"):
        values = _field_values(doc.source, fname[: -len(".keyword")])
    return values


def _in_range(value: object, cond: dict) -> bool:
    def cmp(a: object, b: object) -> int:
        try:
            fa, fb = float(a), float(b)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            fa, fb = str(a), str(b)  # type: ignore[assignment]
        return (fa > fb) - (fa < fb)

    for op, bound in cond.items():
        if op == "gte" and cmp(value, bound) < 0:
            return False
        if op == "gt" and cmp(value, bound) <= 0:
            return False
        if op == "lte" and cmp(value, bound) > 0:
            return False
        if op == "lt" and cmp(value, bound) >= 0:
            return False
    return True


# --------------------------------------------------------------------------------------------
# HTTP


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address, handler, fake: FakeElasticsearch):
        self.fake = fake
        self.connections: set[socket.socket] = set()
        self.conn_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        with self.conn_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self.conn_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self.conn_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else delayed ACKs add 40 ms to every keep-alive answer
    wbufsize = -1  # buffered: headers and body leave in one write (flushed in _send)
    server_version = "FakeElasticsearch"
    sys_version = ""
    server: _HTTPServer

    def log_message(self, format, *args):  # noqa: A002 (stdlib signature)
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            body = b"".join(chunks)
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding", "").lower() == "gzip" and body:
            body = gzip.decompress(body)
        return body

    def _handle(self) -> None:
        fake = self.server.fake
        body = self._read_body()
        split = urlsplit(self.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        record = RequestRecord(
            self.command, split.path, query, {k.lower(): v for k, v in self.headers.items()}, body
        )
        fake._record(record)
        status, payload, extra_headers = fake._dispatch(
            self.command, split.path, query, body, record.headers
        )
        if status is None:  # drop the connection without an answer
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        record.status = status
        self._send(status, payload, extra_headers, record.headers)

    def _send(self, status: int, payload: object, extra_headers: list, req_headers: dict) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        accept = req_headers.get("accept", "") + " " + req_headers.get("content-type", "")
        m = re.search(r"compatible-with=(\d+)", accept)
        ctype = (
            f"application/vnd.elasticsearch+json;compatible-with={m.group(1)}"
            if m
            else "application/json"
        )
        try:
            self.send_response(status)
            self.send_header(*PRODUCT_HEADER)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(data)))
            for name, value in extra_headers:
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


# --------------------------------------------------------------------------------------------
# the server


class FakeElasticsearch:
    """An Elasticsearch 8 stand-in on 127.0.0.1; see the module docstring.

    ``basic_auth=(user, password)`` and/or ``api_key=(id, key)`` (or the encoded form) require
    credentials (401 otherwise). ``version`` is what ``GET /`` reports and picks the parse error
    type. ``hang_timeout`` bounds how long a hung request blocks. ``default_search_size`` is 10
    as in ES: pass ``size`` to see more, or use ``docs()``.
    """

    def __init__(
        self,
        port: int = 0,
        *,
        basic_auth: tuple[str, str] | None = None,
        api_key: tuple[str, str] | str | None = None,
        version: str = "8.15.0",
        cluster_name: str = "fake-es",
        hang_timeout: float = 30.0,
        default_search_size: int = 10,
        builtin_templates: bool = True,
    ):
        self.host = HOST
        self.port = port
        self.basic_auth = basic_auth
        if isinstance(api_key, tuple):
            api_key = base64.b64encode(f"{api_key[0]}:{api_key[1]}".encode()).decode()
        self.api_key = api_key
        self.version = version
        self.cluster_name = cluster_name
        self.cluster_uuid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode()[:22]
        self.hang_timeout = hang_timeout
        self.default_search_size = default_search_size
        self._builtin = builtin_templates
        self._lock = threading.RLock()
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._unhung = threading.Event()
        self._unhung.set()
        self.reset()

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> FakeElasticsearch:
        """Listen (again, on the same port after a stop(); data kept) and serve in a thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = _HTTPServer((self.host, self.port), _Handler, self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"fake-es-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut open connections (clients see connection errors); data kept."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        self._unhung.set()  # wake hung handlers so they give up
        server.shutdown()
        server.server_close()
        server.drop_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._hung:
            self._unhung.clear()

    def restart(self) -> FakeElasticsearch:
        self.stop()
        return self.start()

    def __enter__(self) -> FakeElasticsearch:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- control from tests ----------------------------------------------------------------------

    def reset(self) -> None:
        """Forget all indices, templates, requests and injected failures."""
        with self._lock:
            self.indices: dict[str, _Index] = {}
            self.templates: dict[str, dict] = (
                copy.deepcopy(BUILTIN_TEMPLATES) if self._builtin else {}
            )
            self.component_templates: dict[str, dict] = {}
            self.requests: list[RequestRecord] = []
            self._fail: list[tuple[int | None, str | None, str | None]] = []
            self._fail_items: list[int] = []
            self._delay = 0.0
            self._hung = False
            self._unhung.set()
            self._order = 0
            self.bulk_items_seen = 0

    def fail_next(
        self,
        n: int = 1,
        status: int | None = 429,
        *,
        path: str | None = None,
        method: str | None = None,
    ) -> None:
        """Fail the next ``n`` requests (matching ``path`` regex / ``method``) with ``status``.

        ``status=None`` drops the connection without an answer instead.
        """
        with self._lock:
            self._fail.extend([(status, path, method)] * n)

    def fail_items(self, n: int = 1, status: int = 429) -> None:
        """Give the next ``n`` bulk items that status (nothing stored for them)."""
        with self._lock:
            self._fail_items.extend([status] * n)

    def hang(self, on: bool = True) -> None:
        """While on, requests block (up to ``hang_timeout``) before being answered."""
        with self._lock:
            self._hung = on
            if on:
                self._unhung.clear()
            else:
                self._unhung.set()

    def delay(self, seconds: float) -> None:
        """Delay every answer by ``seconds`` (0 to stop)."""
        with self._lock:
            self._delay = float(seconds)

    # -- inspection ------------------------------------------------------------------------------

    def _resolve(self, expression: str, *, strict: bool = True) -> list[_Index]:
        with self._lock:
            chosen: dict[str, _Index] = {}
            for part in expression.split(","):
                part = part.strip()
                if not part:
                    continue
                if part.startswith("-") and chosen:
                    for name in [n for n in chosen if _glob_match(part[1:], n)]:
                        del chosen[name]
                    continue
                if part in ("_all", "*"):
                    part = "*"
                if "*" in part:
                    for name, idx in self.indices.items():
                        visible = not name.startswith(".") or part.startswith(".")
                        if visible and (
                            _glob_match(part, name) or _glob_match(part, idx.write_name)
                        ):
                            chosen[name] = idx
                else:
                    idx = self.indices.get(part) or next(
                        (i for i in self.indices.values() if i.write_name == part), None
                    )
                    if idx is None:
                        if strict:
                            raise _index_not_found(part)
                        continue
                    chosen[idx.name] = idx
            return list(chosen.values())

    def _sorted_docs(self, pattern: str) -> list[tuple[_Index, _Doc]]:
        with self._lock:
            found = [
                (idx, doc)
                for idx in self._resolve(pattern, strict=False)
                for doc in idx.docs.values()
            ]
        return sorted(found, key=lambda pair: pair[1].order)

    def docs(self, index_pattern: str = "*") -> list[dict]:
        """The stored ``_source`` of every document in matching indices, oldest first."""
        return [copy.deepcopy(doc.source) for _, doc in self._sorted_docs(index_pattern)]

    def hits(self, index_pattern: str = "*") -> list[tuple[str, str, dict]]:
        """``(index, id, source)`` of every stored document, oldest first."""
        return [
            (idx.write_name, doc.id, copy.deepcopy(doc.source))
            for idx, doc in self._sorted_docs(index_pattern)
        ]

    def doc(self, index: str, doc_id: str) -> dict | None:
        with self._lock:
            idx = self.indices.get(index)
            doc = idx.docs.get(doc_id) if idx else None
            return copy.deepcopy(doc.source) if doc else None

    def doc_count(self, index_pattern: str = "*") -> int:
        return len(self._sorted_docs(index_pattern))

    def mapping(self, index: str) -> dict:
        with self._lock:
            return copy.deepcopy(self.indices[index].mappings)

    def request_count(self, path: str | None = None, method: str | None = None) -> int:
        """Requests seen whose path matches the ``path`` regex (and ``method``)."""
        with self._lock:
            return sum(
                1
                for r in self.requests
                if (path is None or re.search(path, r.path))
                and (method is None or r.method == method.upper())
            )

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)

    # -- request dispatch ------------------------------------------------------------------------

    def _dispatch(self, method, path, query, body, headers):
        with self._lock:
            delay = self._delay
        if delay and self._stopping.wait(delay):
            return None, None, []
        if not self._unhung.is_set():
            self._unhung.wait(self.hang_timeout)
            if self._stopping.is_set():
                return None, None, []
        with self._lock:
            injected = None
            for i, (_status, fpath, fmethod) in enumerate(self._fail):
                if (fpath is None or re.search(fpath, path)) and (
                    fmethod is None or fmethod.upper() == method
                ):
                    injected = self._fail.pop(i)
                    break
        if injected is not None:
            status = injected[0]
            if status is None:
                return None, None, []
            err = _error_for_status(status)
            headers_out = [("Retry-After", "1")] if status in (429, 503) else []
            return status, err.body(), headers_out
        try:
            self._check_compat(headers)
            self._check_auth(path, headers)
            status, payload = self._route(method, path, query, body)
            return status, payload, []
        except EsError as e:
            extra = []
            if e.status == 401:
                extra = [
                    ("WWW-Authenticate", 'Basic realm="security" charset="UTF-8"'),
                    ("WWW-Authenticate", "ApiKey"),
                ]
            return e.status, e.body(), extra
        except Exception as e:  # a bug in the fake: answer like ES would, keep serving
            return 500, EsError(500, "exception", f"FakeElasticsearch bug: {e!r}").body(), []

    def _check_compat(self, headers: dict) -> None:
        versions = set()
        for name in ("accept", "content-type"):
            m = re.search(r"compatible-with=(\d+)", headers.get(name, ""))
            if m:
                versions.add(int(m.group(1)))
        if not versions:
            return
        major = _version_tuple(self.version)[0]
        if len(versions) > 1 or not versions <= {major, major - 1}:
            raise EsError(
                400,
                "media_type_header_exception",
                "Invalid media-type value on headers [Accept, Content-Type]",
                caused_by={
                    "type": "status_exception",
                    "reason": "A compatible version is required on both Content-Type and "
                    "Accept headers if either one has requested a compatible version and the "
                    f"compatible versions must match. Accept={headers.get('accept')}, "
                    f"Content-Type={headers.get('content-type')}",
                },
            )

    def _check_auth(self, path: str, headers: dict) -> None:
        if not self.basic_auth and not self.api_key:
            return
        auth = headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if not auth:
            raise EsError(
                401,
                "security_exception",
                f"missing authentication credentials for REST request [{path}]",
            )
        if scheme.lower() == "basic" and self.basic_auth:
            try:
                user, _, password = base64.b64decode(token).decode().partition(":")
            except ValueError:
                user, password = "", None
            if (user, password) == tuple(self.basic_auth):
                return
            raise EsError(
                401,
                "security_exception",
                f"unable to authenticate user [{user}] for REST request [{path}]",
            )
        if scheme.lower() == "apikey" and self.api_key and token.strip() == self.api_key:
            return
        raise EsError(
            401,
            "security_exception",
            "unable to authenticate with provided credentials and anonymous access is not "
            "allowed for this request",
        )

    def _route(self, method: str, path: str, query: dict, body: bytes):
        parts = [unquote(p) for p in path.split("/") if p]
        n = len(parts)
        if n == 0:
            if method in ("GET", "HEAD"):
                return 200, self._info()
        elif parts[0] == "_bulk" and n == 1 and method in ("POST", "PUT"):
            return self._bulk(None, query, body)
        elif parts[0] == "_index_template":
            return self._index_template(method, parts[1] if n > 1 else None, body)
        elif parts[0] == "_component_template":
            return self._component_template(method, parts[1] if n > 1 else None, body)
        elif parts[0] == "_data_stream":
            return self._data_stream(method, parts[1] if n > 1 else "*")
        elif parts[0] in ("_search", "_count") and n == 1 and method in ("GET", "POST"):
            return self._search("*", query, body, count=parts[0] == "_count")
        elif parts[0] == "_refresh" and n == 1 and method in ("GET", "POST"):
            return 200, self._shards(len(self.indices))
        elif parts[0] == "_cluster" and n == 2 and parts[1] == "health" and method == "GET":
            return 200, self._health()
        elif not parts[0].startswith("_"):
            return self._index_route(method, parts, query, body)
        raise EsError(
            400 if method != "HEAD" else 404,
            "illegal_argument_exception",
            f"request [{path}] contains unrecognized parameter or no handler found for uri "
            f"[{path}] and method [{method}]",
        )

    def _index_route(self, method: str, parts: list[str], query: dict, body: bytes):
        name = parts[0]
        n = len(parts)
        if n == 1:
            if method == "PUT":
                return self._create_index_api(name, body)
            if method in ("GET", "HEAD"):
                idxs = self._resolve(name)
                return 200, {
                    i.write_name: {
                        "aliases": {},
                        "mappings": i.mappings,
                        "settings": {"index": {"uuid": i.uuid}},
                    }
                    for i in idxs
                }
            if method == "DELETE":
                if "*" in name:
                    raise EsError(
                        400,
                        "illegal_argument_exception",
                        "Wildcard expressions or all indices are not allowed",
                    )
                with self._lock:
                    for part in name.split(","):
                        idx = self._resolve(part)[0]
                        if idx.data_stream:
                            raise EsError(
                                400,
                                "illegal_argument_exception",
                                f"index [{idx.write_name}] is the write index for data stream "
                                f"[{idx.name}] and cannot be deleted",
                            )
                        del self.indices[idx.name]
                return 200, {"acknowledged": True}
        op = parts[1]
        if op == "_bulk" and n == 2 and method in ("POST", "PUT"):
            return self._bulk(name, query, body)
        if op in ("_search", "_count") and n == 2 and method in ("GET", "POST"):
            return self._search(name, query, body, count=op == "_count")
        if op == "_refresh" and n == 2 and method in ("GET", "POST"):
            return 200, self._shards(len(self._resolve(name)))
        if op == "_mapping" and n == 2:
            if method == "GET":
                return 200, {i.write_name: {"mappings": i.mappings} for i in self._resolve(name)}
            if method in ("PUT", "POST"):
                return self._put_mapping(name, body)
        if op == "_doc" and n == 2 and method == "POST":
            return self._single_write("index", name, None, query, body)
        if op in ("_doc", "_create") and n == 3:
            doc_id = parts[2]
            if op == "_create" and method in ("PUT", "POST"):
                return self._single_write("create", name, doc_id, query, body)
            if method in ("PUT", "POST"):
                op_type = "create" if query.get("op_type") == "create" else "index"
                return self._single_write(op_type, name, doc_id, query, body)
            if method in ("GET", "HEAD"):
                return self._get_doc(name, doc_id)
            if method == "DELETE":
                return self._single_write("delete", name, doc_id, query, b"")
        raise EsError(
            400 if method != "HEAD" else 404,
            "illegal_argument_exception",
            f"no handler found for uri [/{'/'.join(parts)}] and method [{method}]",
        )

    # -- endpoints -------------------------------------------------------------------------------

    def _info(self) -> dict:
        return {
            "name": "fake-es-node",
            "cluster_name": self.cluster_name,
            "cluster_uuid": self.cluster_uuid,
            "version": {
                "number": self.version,
                "build_flavor": "default",
                "build_type": "docker",
                "build_hash": "0" * 40,
                "build_date": "2024-08-05T10:05:34.233336849Z",
                "build_snapshot": False,
                "lucene_version": "9.11.1",
                "minimum_wire_compatibility_version": "7.17.0",
                "minimum_index_compatibility_version": "7.0.0",
            },
            "tagline": "You Know, for Search",
        }

    def _health(self) -> dict:
        return {
            "cluster_name": self.cluster_name,
            "status": "green",
            "timed_out": False,
            "number_of_nodes": 1,
            "number_of_data_nodes": 1,
            "active_primary_shards": len(self.indices),
            "active_shards": len(self.indices),
            "relocating_shards": 0,
            "initializing_shards": 0,
            "unassigned_shards": 0,
            "number_of_pending_tasks": 0,
            "active_shards_percent_as_number": 100.0,
        }

    @staticmethod
    def _shards(total: int = 1) -> dict:
        return {"_shards": {"total": total, "successful": total, "failed": 0}}

    @staticmethod
    def _json(body: bytes) -> dict:
        if not body.strip():
            return {}
        try:
            data = json.loads(body)
        except ValueError as e:
            raise EsError(400, "x_content_parse_exception", f"[1:1] {e}") from None
        if not isinstance(data, dict):
            raise EsError(400, "parsing_exception", "request body must be a JSON object")
        return data

    def _index_template(self, method: str, name: str | None, body: bytes):
        with self._lock:
            if method == "GET" and name is None:
                return 200, {
                    "index_templates": [
                        {"name": k, "index_template": v} for k, v in self.templates.items()
                    ]
                }
            if name is None:
                raise EsError(400, "illegal_argument_exception", "template name is missing")
            if method in ("GET", "HEAD"):
                found = {k: v for k, v in self.templates.items() if _glob_match(name, k)}
                if not found:
                    raise EsError(
                        404,
                        "resource_not_found_exception",
                        f"index template matching [{name}] not found",
                    )
                return 200, {
                    "index_templates": [{"name": k, "index_template": v} for k, v in found.items()]
                }
            if method == "DELETE":
                if name not in self.templates:
                    raise EsError(
                        404, "index_template_missing_exception", f"index_template [{name}] missing"
                    )
                del self.templates[name]
                return 200, {"acknowledged": True}
            if method in ("PUT", "POST"):
                spec = self._json(body)
                patterns = spec.get("index_patterns")
                if isinstance(patterns, str):
                    patterns = [patterns]
                if not patterns:
                    raise EsError(
                        400,
                        "action_request_validation_exception",
                        "Validation Failed: 1: index patterns are missing;",
                    )
                spec["index_patterns"] = patterns
                priority = int(spec.get("priority") or 0)
                for other, ospec in self.templates.items():
                    if other == name or int(ospec.get("priority") or 0) != priority:
                        continue
                    if any(
                        _globs_intersect(p, q) for p in patterns for q in ospec["index_patterns"]
                    ):
                        raise EsError(
                            400,
                            "illegal_argument_exception",
                            f"index template [{name}] has index patterns {_fmt_list(patterns)} "
                            f"matching patterns from existing templates [{other}] with patterns "
                            f"({other} => {_fmt_list(ospec['index_patterns'])}) that have the "
                            f"same priority [{priority}], multiple index templates may not match "
                            "during index creation, please use a different priority",
                        )
                for comp in spec.get("composed_of", []):
                    if comp not in self.component_templates:
                        raise EsError(
                            400,
                            "invalid_index_template_exception",
                            f"index_template [{name}] invalid, cause [index template [{name}] "
                            f"specifies component templates [{comp}] that do not exist]",
                        )
                spec.setdefault("composed_of", [])
                self.templates[name] = spec
                return 200, {"acknowledged": True}
        raise EsError(405, "illegal_argument_exception", f"method [{method}] not allowed")

    def _component_template(self, method: str, name: str | None, body: bytes):
        with self._lock:
            if method in ("GET", "HEAD"):
                found = {
                    k: v
                    for k, v in self.component_templates.items()
                    if name is None or _glob_match(name, k)
                }
                if name and not found:
                    raise EsError(
                        404,
                        "resource_not_found_exception",
                        f"component template matching [{name}] not found",
                    )
                return 200, {
                    "component_templates": [
                        {"name": k, "component_template": v} for k, v in found.items()
                    ]
                }
            if name and method in ("PUT", "POST"):
                spec = self._json(body)
                if "template" not in spec:
                    raise EsError(
                        400,
                        "action_request_validation_exception",
                        "Validation Failed: 1: template is missing;",
                    )
                self.component_templates[name] = spec
                return 200, {"acknowledged": True}
            if name and method == "DELETE":
                if self.component_templates.pop(name, None) is None:
                    raise EsError(
                        404, "resource_not_found_exception", f"component template [{name}] missing"
                    )
                return 200, {"acknowledged": True}
        raise EsError(405, "illegal_argument_exception", f"method [{method}] not allowed")

    def _data_stream(self, method: str, name: str):
        with self._lock:
            found = [i for i in self._resolve(name, strict=False) if i.data_stream]
            if not found and "*" not in name:
                raise _index_not_found(name)
            if method == "DELETE":
                for idx in found:
                    del self.indices[idx.name]
                return 200, {"acknowledged": True}
            return 200, {
                "data_streams": [
                    {
                        "name": i.name,
                        "timestamp_field": {"name": "@timestamp"},
                        "indices": [{"index_name": i.write_name, "index_uuid": i.uuid}],
                        "generation": 1,
                        "status": "GREEN",
                        "template": i.template,
                        "hidden": False,
                    }
                    for i in found
                ]
            }

    def _matching_template(self, name: str) -> tuple[str, dict] | None:
        best = None
        for tname, spec in self.templates.items():
            if any(_glob_match(p, name) for p in spec["index_patterns"]):
                prio = int(spec.get("priority") or 0)
                if best is None or prio > best[0]:
                    best = (prio, tname, spec)
        return (best[1], best[2]) if best else None

    def _check_index_name(self, name: str) -> None:
        def bad(why: str) -> EsError:
            return EsError(
                400,
                "invalid_index_name_exception",
                f"Invalid index name [{name}], {why}",
                index=name,
                index_uuid="_na_",
            )

        if name != name.lower():
            raise bad("must be lowercase")
        if name.startswith(("_", "-", "+")):
            raise bad("must not start with '_', '-', or '+'")
        if any(c in name for c in _INDEX_BAD_CHARS):
            raise bad(
                "must not contain the following characters ['\\', '/', '*', '?', "
                "'\"', '<', '>', '|', ' ', ',', '#', ':']"
            )
        if name in (".", ".."):
            raise bad("must not be '.' or '..'")
        if len(name.encode()) > 255:
            raise bad("index name is too long, (" + str(len(name.encode())) + " > 255)")

    def _create_index(self, name: str, mappings=None, settings=None) -> _Index:
        """Create an index the way ES does: the best matching template applies at creation."""
        self._check_index_name(name)
        merged_mappings: dict = {}
        merged_settings: dict = {}
        data_stream = False
        tname = None
        found = self._matching_template(name)
        if found:
            tname, spec = found
            for comp in spec.get("composed_of", []):
                ctpl = self.component_templates.get(comp, {}).get("template", {})
                merged_mappings = _deep_merge(merged_mappings, ctpl.get("mappings", {}))
                merged_settings = _deep_merge(merged_settings, ctpl.get("settings", {}))
            tpl = spec.get("template", {})
            merged_mappings = _deep_merge(merged_mappings, tpl.get("mappings", {}))
            merged_settings = _deep_merge(merged_settings, tpl.get("settings", {}))
            data_stream = "data_stream" in spec
        merged_mappings = _deep_merge(merged_mappings, mappings or {})
        merged_settings = _deep_merge(merged_settings, settings or {})
        idx = _Index(
            name=name,
            mappings=_normalize_mapping_types(merged_mappings),
            settings=_flatten_settings(merged_settings),
            data_stream=data_stream,
            template=tname,
        )
        self.indices[name] = idx
        return idx

    def _create_index_api(self, name: str, body: bytes):
        spec = self._json(body)
        with self._lock:
            if name in self.indices:
                raise EsError(
                    400,
                    "resource_already_exists_exception",
                    f"index [{name}/{self.indices[name].uuid}] already exists",
                    index=name,
                )
            found = self._matching_template(name)
            if found and "data_stream" in found[1]:
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"cannot create index with name [{name}], because it matches with template "
                    f"[{found[0]}] that creates data streams only, use create data stream api "
                    "instead",
                )
            self._create_index(name, spec.get("mappings"), spec.get("settings"))
        return 200, {"acknowledged": True, "shards_acknowledged": True, "index": name}

    def _put_mapping(self, name: str, body: bytes):
        spec = self._json(body)
        with self._lock:
            for idx in self._resolve(name):
                _check_mapping_update(
                    idx.mappings.get("properties", {}), spec.get("properties", {}), ""
                )
                idx.mappings = _deep_merge(idx.mappings, spec)
        return 200, {"acknowledged": True}

    def _get_doc(self, name: str, doc_id: str):
        with self._lock:
            idx = self._resolve(name)[0]
            doc = idx.docs.get(doc_id)
            if doc is None:
                return 404, {"_index": idx.write_name, "_id": doc_id, "found": False}
            return 200, {
                "_index": idx.write_name,
                "_id": doc.id,
                "_version": doc.version,
                "_seq_no": doc.seq_no,
                "_primary_term": 1,
                "found": True,
                "_source": copy.deepcopy(doc.source),
            }

    def _single_write(self, op: str, index: str, doc_id, query: dict, body: bytes):
        source = None
        if op != "delete":
            source = self._json(body)
        with self._lock:
            result = self._apply(op, index, doc_id, source, raw=None)
        if "error" in result:
            err = result["error"]
            return result["status"], {
                "error": {"root_cause": [err], **err},
                "status": result["status"],
            }
        status = result.pop("status")
        return status, result

    def _bulk(self, default_index: str | None, query: dict, body: bytes):
        if body and not body.endswith(b"\n"):
            raise EsError(
                400,
                "illegal_argument_exception",
                "The bulk request must be terminated by a newline [\\n]",
            )
        lines = body.split(b"\n")
        actions = []
        i = 0
        while i < len(lines):
            line = lines[i].strip()
            i += 1
            if not line:
                continue
            try:
                action = json.loads(line)
            except ValueError:
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"Malformed action/metadata line [{i}], expected START_OBJECT or "
                    "END_OBJECT but found [VALUE_STRING]",
                ) from None
            if not isinstance(action, dict) or len(action) != 1:
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"Malformed action/metadata line [{i}], expected a simple field",
                )
            ((op, meta),) = action.items()
            if op not in ("index", "create", "update", "delete"):
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    f"Malformed action/metadata line [{i}], expected one of [create, delete, "
                    f"index, update] but found [{op}]",
                )
            meta = meta or {}
            index = meta.get("_index") or default_index
            if not index:
                raise EsError(
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: index is missing;",
                )
            raw = None
            if op != "delete":
                if i >= len(lines) or not lines[i].strip():
                    raise EsError(
                        400,
                        "illegal_argument_exception",
                        f"Validation Failed: 1: source is missing for action line [{i}];",
                    )
                raw = lines[i]
                i += 1
            actions.append((op, index, meta.get("_id"), raw))
        if not actions:
            raise EsError(
                400,
                "action_request_validation_exception",
                "Validation Failed: 1: no requests added;",
            )
        t0 = time.monotonic()
        items = []
        with self._lock:
            for op, index, doc_id, raw in actions:
                self.bulk_items_seen += 1
                if self._fail_items:
                    status = self._fail_items.pop(0)
                    err = _error_for_status(status)
                    items.append(
                        {
                            op: {
                                "_index": index,
                                "_id": doc_id,
                                "status": status,
                                "error": err.cause(),
                            }
                        }
                    )
                    continue
                source: object = None
                if raw is not None:
                    try:
                        source = json.loads(raw)
                    except ValueError:
                        source = _ParseFailure(raw)
                items.append({op: self._apply(op, index, doc_id, source, raw=raw)})
        errors = any("error" in next(iter(it.values())) for it in items)
        took = int((time.monotonic() - t0) * 1000)
        return 200, {"errors": errors, "took": took, "items": items}

    def _apply(self, op: str, index: str, doc_id: str | None, source: object, raw) -> dict:
        """One write (bulk item or single API); returns the item body incl. ``status``."""
        try:
            idx = self.indices.get(index)
            if idx is None:
                # Accept a backing index name too.
                idx = next((i for i in self.indices.values() if i.write_name == index), None)
            if idx is None:
                if op in ("delete",):
                    raise _index_not_found(index)
                idx = self._create_index(index)
            if idx.data_stream and op != "create":
                raise EsError(
                    400,
                    "illegal_argument_exception",
                    "only write ops with an op_type of create are allowed in data streams",
                )
            if op in ("index", "create") and doc_id is None:
                doc_id = _auto_id()
            new_style = _version_tuple(self.version) >= (8, 8)
            parse_type = "document_parsing_exception" if new_style else "mapper_parsing_exception"
            if isinstance(source, _ParseFailure):
                raise EsError(
                    400,
                    parse_type,
                    "failed to parse",
                    caused_by={"type": "json_parse_exception", "reason": "Unexpected character"},
                )
            if op == "delete":
                doc = idx.docs.pop(doc_id, None)
                idx.seq_no += 1
                return self._item(
                    idx,
                    doc_id,
                    (doc.version + 1) if doc else 1,
                    "deleted" if doc else "not_found",
                    200 if doc else 404,
                )
            existing = idx.docs.get(doc_id)
            if op == "update":
                if not isinstance(source, dict):
                    raise EsError(400, "illegal_argument_exception", "update body must be object")
                if existing is None:
                    if source.get("doc_as_upsert") and "doc" in source:
                        new_source = source["doc"]
                    elif "upsert" in source:
                        new_source = source["upsert"]
                    else:
                        raise EsError(
                            404,
                            "document_missing_exception",
                            f"[{doc_id}]: document missing",
                            index_uuid=idx.uuid,
                            shard="0",
                            index=idx.write_name,
                        )
                else:
                    new_source = _deep_merge(existing.source, source.get("doc", {}))
                source = new_source
            if not isinstance(source, dict):
                raise EsError(400, parse_type, "failed to parse, document is empty")
            if op == "create" and existing is not None:
                raise EsError(
                    409,
                    "version_conflict_engine_exception",
                    f"[{doc_id}]: version conflict, document already exists (current version "
                    f"[{existing.version}])",
                    index_uuid=idx.uuid,
                    shard="0",
                    index=idx.write_name,
                )
            if idx.data_stream and "@timestamp" not in source:
                raise EsError(
                    400,
                    parse_type,
                    "failed to parse: data stream timestamp field [@timestamp] is missing",
                    caused_by={
                        "type": "illegal_argument_exception",
                        "reason": "data stream timestamp field [@timestamp] is missing",
                    },
                )
            if existing and op == "update" and existing.source == source:
                return self._item(idx, doc_id, existing.version, "noop", 200)
            mapper = _Mapper(idx, doc_id, parse_type, new_style)
            idx.mappings = mapper.apply(source)
            idx.seq_no += 1
            self._order += 1
            version = existing.version + 1 if existing else 1
            order = existing.order if existing else self._order
            idx.docs[doc_id] = _Doc(doc_id, copy.deepcopy(source), version, idx.seq_no, order)
            return self._item(
                idx, doc_id, version, "updated" if existing else "created", 200 if existing else 201
            )
        except EsError as e:
            return {
                "_index": self.indices[index].write_name if index in self.indices else index,
                "_id": doc_id,
                "status": e.status,
                "error": e.cause(),
            }

    @staticmethod
    def _item(idx: _Index, doc_id: str, version: int, result: str, status: int) -> dict:
        return {
            "_index": idx.write_name,
            "_id": doc_id,
            "_version": version,
            "result": result,
            "_shards": {"total": 2, "successful": 1, "failed": 0},
            "_seq_no": idx.seq_no,
            "_primary_term": 1,
            "status": status,
        }

    def _search(self, expression: str, query: dict, body: bytes, *, count: bool):
        spec = self._json(body)
        if "q" in query:
            fname, _, value = query["q"].partition(":")
            spec.setdefault("query", {"match": {fname: value}} if value else {"match_all": {}})
        if spec.get("aggs") or spec.get("aggregations"):
            raise EsError(
                400, "illegal_argument_exception", "FakeElasticsearch does not do aggregations"
            )
        strict = query.get("ignore_unavailable") != "true"
        with self._lock:
            idxs = self._resolve(expression, strict=strict)
            matched = [
                (idx, doc)
                for idx in idxs
                for doc in idx.docs.values()
                if _matches(spec.get("query"), doc, idx)
            ]
        matched.sort(key=lambda pair: pair[1].order)
        shards = {"total": len(idxs), "successful": len(idxs), "skipped": 0, "failed": 0}
        if count:
            return 200, {"count": len(matched), "_shards": shards}
        sort_spec = spec.get("sort") or ([query["sort"]] if "sort" in query else [])
        sort_keys = _sort_keys(sort_spec)
        for fname, desc in reversed(sort_keys):
            if fname in ("_doc", "_score"):
                continue

            def key(pair, fname=fname):
                values = _query_values(pair[1], fname)
                return (0, values[0]) if values else (1, 0)

            present = [p for p in matched if _query_values(p[1], fname)]
            missing = [p for p in matched if not _query_values(p[1], fname)]
            present.sort(key=key, reverse=desc)
            matched = present + missing
        size = int(spec.get("size", query.get("size", self.default_search_size)))
        start = int(spec.get("from", query.get("from", 0)))
        hits = []
        for idx, doc in matched[start : start + size]:
            hit = {
                "_index": idx.write_name,
                "_id": doc.id,
                "_score": None if sort_keys else 1.0,
                "_source": copy.deepcopy(doc.source),
            }
            if sort_keys:
                hit["sort"] = [
                    (_query_values(doc, f) or [None])[0] if f != "_doc" else doc.order
                    for f, _ in sort_keys
                ]
            hits.append(hit)
        return 200, {
            "took": 1,
            "timed_out": False,
            "_shards": shards,
            "hits": {
                "total": {"value": len(matched), "relation": "eq"},
                "max_score": None if sort_keys or not matched else 1.0,
                "hits": hits,
            },
        }


class _ParseFailure:
    def __init__(self, raw: bytes):
        self.raw = raw


def _fmt_list(items: list) -> str:
    return "[" + ", ".join(items) + "]"


def _sort_keys(sort_spec) -> list[tuple[str, bool]]:
    if isinstance(sort_spec, str | dict):
        sort_spec = [sort_spec]
    keys = []
    for item in sort_spec or []:
        if isinstance(item, str):
            for part in item.split(","):
                fname, _, order = part.partition(":")
                keys.append((fname, order == "desc"))
        elif isinstance(item, dict):
            for fname, opts in item.items():
                order = opts.get("order", "asc") if isinstance(opts, dict) else opts
                keys.append((fname, order == "desc"))
    return keys


def _check_mapping_update(old: dict, new: dict, prefix: str) -> None:
    for key, spec in (new or {}).items():
        if key not in old:
            continue
        path = f"{prefix}{key}"
        old_type = old[key].get("type", "object")
        new_type = spec.get("type", "object")
        if old_type != new_type:
            raise EsError(
                400,
                "illegal_argument_exception",
                f"mapper [{path}] cannot be changed from type [{old_type}] to [{new_type}]",
            )
        _check_mapping_update(
            old[key].get("properties", {}), spec.get("properties", {}), path + "."
        )
