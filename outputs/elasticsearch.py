"""`elasticsearch`: result records stored as documents through `_bulk`, one outcome per record.

Built on the official elasticsearch-py **8.x** client (`elasticsearch>=8.13,<9`): an 8.x client
talks to Elasticsearch 8 and 9 servers, while a 9.x client asks for `compatible-with=9` and an
8.x server refuses it (400 `media_type_header_exception`), so the pin stays below 9.

Settings (`[outputs.elasticsearch]`):

* `hosts` (`["http://127.0.0.1:9200"]`): one URL or a list; `index` (`"accre-monitor-%Y.%m.%d"`):
  a strftime pattern applied to the record's own `date` **converted to UTC**, so nodes in every
  time zone write one day into one index, DST never moves the day boundary, and the names agree
  with Elasticsearch's own UTC date math (ILM, Kibana). A date without an offset counts as UTC,
  as Elasticsearch reads it.
* `username`/`password` (basic auth) or `api_key` (`"id:key"` or the encoded form): secrets, read
  from `ACCRE_MONITOR_ELASTICSEARCH_<KEY>` first; `ca_certs` (a CA file), `verify_certs` (true).
* `template_name` (`"accre-monitor"`), `install_template` (true); `timeout`, `batch_size`.

Writes: `_id` is the record id and the op type is `create`, so a second delivery of a record
answers 409 for that item, which counts as DELIVERED (it is stored, once). Every batch is one
`_bulk` request per `batch_size` records; each item is judged alone, like the helpers'
`streaming_bulk`: 2xx and 409 DELIVERED, 429 and 5xx RETRY, any other 4xx REJECTED with
`type: reason`. A whole request that fails (unreachable, timeout, 401, 429, 5xx) raises
`StoreUnavailable`, and the caller retries every record. No client-side retries: the spool retries.
The `timeout` of `deliver` covers every request it makes (template check included).

The index template (pattern derived from `index`: `accre-monitor-*`) is checked with one HEAD
per output instance and put only when missing, so an operator's edited template is never
overwritten; a change of the mapping below needs the old template deleted. A 403 there (a
writer role without `manage_index_templates`) is a warning, and the records are still sent:
set `install_template = false` when an administrator manages the template.

The mapping: `id`, `node`, `name`, `status` keyword, `date` date, `runtime` float, `short` and
`long` text, unknown top-level fields `dynamic: false` (kept in `_source`, not indexed: a
record from a newer version is never refused, as `strict` would do). `data` has a different
shape in every check (a list, a nested object, a scalar), so it is `enabled: false`: stored
exactly as the check returned it and never parsed, hence never a mapping conflict. A copy,
`data_flat: {"value": data}`, is mapped `flattened` and keeps every leaf searchable as a keyword
(`data_flat.value.load1: 0.52`). `data` itself cannot be `flattened`: a flattened field only
takes JSON objects, and Elasticsearch refuses a scalar or a list of scalars there (a 400 per
document); the `{"value": ...}` wrapper always is an object.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from http import HTTPStatus
from urllib.parse import urlsplit

from accre_monitor import log
from accre_monitor.codec import encode
from accre_monitor.dates import record_moment
from accre_monitor.outcome import DELIVERED, REJECTED, RETRY, Outcome, StoreUnavailable
from accre_monitor.outputs.remote import RemoteOutput
from accre_monitor.redaction import (
    redact_url,
    remember_url,
    scrub,
    split_credentials,
    with_credentials,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

FLAT_FIELD = "data_flat"
TEMPLATE_PRIORITY = 200  # above the built-in logs-*-*/metrics-*-* templates (100)
TEMPLATE_VERSION = 2
MAPPINGS: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "id": {"type": "keyword"},
        "node": {"type": "keyword"},
        "name": {"type": "keyword"},
        "status": {"type": "keyword"},
        "date": {"type": "date"},
        "runtime": {"type": "float"},
        "short": {"type": "text"},
        "long": {"type": "text"},
        "data": {"type": "object", "enabled": False},
        # performance data hints: kept with the record, never a source of mapping conflicts
        "perf": {"type": "object", "enabled": False},
        # long values stay in _source but are not indexed (Lucene refuses terms over 32 kB)
        FLAT_FIELD: {"type": "flattened", "ignore_above": 1024, "depth_limit": 50},
    },
}
_SAMPLE_DATE = dt.datetime(2026, 12, 31, 23, 59, 59, tzinfo=dt.UTC)
_BAD_INDEX_CHARS = set('\\/*?"<>| ,#:')
_STRFTIME_DIRECTIVE = re.compile(r"%[-_0^#]*[A-Za-z%]")


class ElasticsearchOutput(RemoteOutput):
    settings_keys: dict[str, Any] = {
        **RemoteOutput.settings_keys,
        "hosts": ["http://127.0.0.1:9200"],
        "index": "accre-monitor-%Y.%m.%d",
        "username": None,
        "password": None,
        "api_key": None,
        "ca_certs": None,
        "verify_certs": True,
        "template_name": "accre-monitor",
        "install_template": True,
    }

    requires = (("elasticsearch", "elasticsearch"),)

    def __init__(self, name: str, settings: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(name, settings, **kw)
        self.hosts = self._hosts()
        self.index = self._index_pattern()
        self.template_name = self.setting_text("template_name")
        self.install_template = self.setting_flag("install_template")
        self.verify_certs = self.setting_flag("verify_certs")
        self.ca_certs = self.setting_file("ca_certs")
        self.template_pattern = template_pattern(self.index)
        if self.install_template and self.template_pattern == "*":
            raise self._bad("index", "needs a fixed prefix or suffix to derive a template pattern")
        self._auth = self._credentials()
        self._client: Any = None
        self._template_checked = not self.install_template

    # -- settings --------------------------------------------------------------------------

    def _hosts(self) -> list[str]:
        hosts = self.settings.get("hosts")
        if isinstance(hosts, str):
            hosts = [hosts]
        if not isinstance(hosts, list) or not hosts:
            raise self._bad("hosts", "must be a URL or a non-empty list of URLs")
        found = []
        for host in hosts:
            if not isinstance(host, str):
                raise self._bad("hosts", f"must hold URLs, not a {type(host).__name__}")
            # credentials first (a `#` or `/` in the password is the password's): urllib
            # and the client only ever parse the rest, and get the credentials re-encoded
            bare, username, password = split_credentials(host)
            if not _is_http_url(bare):
                shown = redact_url(host)
                raise self._bad(
                    "hosts", f"must hold http:// or https:// URLs with a host name, not {shown!r}"
                )
            remember_url(host)
            found.append(with_credentials(bare, username, password))
        return found

    def _index_pattern(self) -> str:
        pattern = self.setting_text("index")
        try:
            sample = _SAMPLE_DATE.strftime(pattern)
        except ValueError as exc:
            raise self._bad("index", f"is not a valid strftime pattern ({exc})") from None
        problem = index_name_problem(sample)
        if problem:
            raise self._bad("index", f"gives index names like {sample!r}, which {problem}")
        return pattern

    def _credentials(self) -> dict[str, Any]:
        username, password = self.secret("username"), self.secret("password")
        api_key = self.secret("api_key")
        if password and not username:
            raise self._bad("username", "is needed with a password")
        if username and not password:
            raise self._bad("password", "is needed with a username")
        if api_key and username:
            raise self._bad("api_key", "and username/password exclude each other: set one")
        if api_key:
            key_id, colon, key = api_key.partition(":")
            return {"api_key": (key_id, key) if colon else api_key}
        if username:
            return {"basic_auth": (username, password)}
        return {}

    # -- delivery --------------------------------------------------------------------------

    def prepare(self, record: dict[str, Any]) -> bytes:
        return self._bulk_lines(record)

    def write_batch(self, items: list[bytes], timeout: float) -> list[Outcome]:
        deadline = time.monotonic() + timeout
        client = self._connect()
        self._ensure_template(client, deadline)
        return self._bulk(client, items, deadline)

    def _bulk_lines(self, record: dict[str, Any]) -> bytes:
        """The `create` action and the document of one record; ValueError for a bad record."""
        record_id = record["id"]
        if not isinstance(record_id, str) or not record_id:
            raise ValueError(f"id {record_id!r} is not a non-empty string")
        when = record_moment(record["date"])
        index = when.astimezone(dt.UTC).strftime(self.index)
        action = {"create": {"_index": index, "_id": record_id}}
        document = {**record, FLAT_FIELD: {"value": record.get("data")}}
        return encode(action) + b"\n" + encode(document) + b"\n"

    def _connect(self) -> Any:
        if self._client is None:
            from elasticsearch import Elasticsearch

            options: dict[str, Any] = {"verify_certs": self.verify_certs}
            if self.ca_certs:
                options["ca_certs"] = self.ca_certs
            self._client = Elasticsearch(
                self.hosts,
                max_retries=0,
                retry_on_timeout=False,
                retry_on_status=(),
                **self._auth,
                **options,
            )
        return self._client

    def _within(self, client: Any, deadline: float, what: str) -> Any:
        """The client bound to what is left of the deadline."""
        left = deadline - time.monotonic()
        if left <= 0.01:
            raise StoreUnavailable(f"elasticsearch: timed out before {what}")
        return client.options(request_timeout=left)

    def _ensure_template(self, client: Any, deadline: float) -> None:
        if self._template_checked:
            return
        from elasticsearch import ApiError, TransportError

        name = self.template_name
        try:
            exists = self._within(client, deadline, "the template check")
            if not exists.indices.exists_index_template(name=name):
                self._within(client, deadline, "the template put").indices.put_index_template(
                    name=name,
                    index_patterns=[self.template_pattern],
                    priority=TEMPLATE_PRIORITY,
                    version=TEMPLATE_VERSION,
                    meta={"managed_by": "accre-monitor", "description": "accre-monitor records"},
                    template={"mappings": MAPPINGS},
                )
                log.debug("elasticsearch index template installed", template=name)
        except TransportError as exc:
            text = scrub(_transport(exc))
            raise StoreUnavailable(f"elasticsearch index template: {text}") from None
        except ApiError as exc:
            status = _status(exc)
            text = scrub(_api_error(exc))
            if status in (401, 429) or status >= 500:
                raise StoreUnavailable(f"elasticsearch index template: {text}") from None
            log.warning(
                "elasticsearch index template not installed; records are sent without it"
                " (set install_template = false when it is managed elsewhere)",
                output=self.name,
                template=name,
                error=text,
            )
        self._template_checked = True

    def _bulk(self, client: Any, chunk: list[bytes], deadline: float) -> list:
        from elasticsearch import ApiError, TransportError

        body = b"".join(chunk)
        try:
            answer = self._within(client, deadline, "the bulk request").bulk(operations=body)
        except TransportError as exc:
            raise StoreUnavailable(scrub(f"elasticsearch bulk: {_transport(exc)}")) from None
        except ApiError as exc:
            raise StoreUnavailable(scrub(f"elasticsearch bulk: {_api_error(exc)}")) from None
        items = answer.body.get("items") or []
        results = [item_outcome(item) for item in items[: len(chunk)]]
        missing = Outcome(RETRY, "no result for this record in the bulk answer")
        return results + [missing] * (len(chunk) - len(results))

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
        super().close()  # the cluster state, when min_occurrences read it


def item_outcome(item: dict[str, Any]) -> Outcome:
    """What one `_bulk` answer item means for its record."""
    result = next(iter(item.values()), {}) if isinstance(item, dict) else {}
    status = int(result.get("status") or 0)
    if 200 <= status < 300:
        return Outcome(DELIVERED)
    if status == 409:  # created before: a redelivery
        return Outcome(DELIVERED, duplicate=True)
    error = result.get("error")
    if isinstance(error, dict):
        text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        cause = error.get("caused_by")
        if isinstance(cause, dict) and cause.get("reason"):
            text += f" (caused by {cause.get('type', 'error')}: {cause['reason']})"
    else:
        text = f"status {status}: {error or 'no error given'}"
    if status == 429 or status >= 500 or status == 0:
        return Outcome(RETRY, text)
    return Outcome(REJECTED, text)


def template_pattern(index: str) -> str:
    """The index pattern of the template: every strftime field a `*` (`accre-monitor-*`)."""
    pattern = _STRFTIME_DIRECTIVE.sub(lambda m: "%" if m.group(0) == "%%" else "*", index)
    return re.sub(r"\*(?:[^*a-z0-9]*\*)+", "*", pattern)


def index_name_problem(name: str) -> str | None:
    """Why Elasticsearch would refuse this index name, or None."""
    if name != name.lower():
        return "must be lowercase"
    if name.startswith(("_", "-", "+")):
        return "must not start with _, - or +"
    if _BAD_INDEX_CHARS & set(name):
        return 'must not contain \\ / * ? " < > | space , # or :'
    if name in (".", "..") or len(name.encode()) > 255:
        return "is not a usable name"
    return None


def _is_http_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _status(exc: Any) -> int:
    try:
        return int(exc.meta.status)
    except (AttributeError, TypeError, ValueError):
        return 0


def _api_error(exc: Any) -> str:
    """`401 security_exception: reason` from an ApiError, without its request metadata."""
    body = exc.body
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return f"{_status(exc)} {error.get('type', 'error')}: {error.get('reason', '')}"
    status = _status(exc)
    if isinstance(exc.message, str) and exc.message not in ("", "None"):
        return f"{status} {exc.message}"
    try:  # a HEAD answer has no body to explain itself
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} error"


def _transport(exc: Any) -> str:
    """`ConnectionTimeout: ...` from a TransportError (unreachable, timed out, TLS)."""
    return f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"
