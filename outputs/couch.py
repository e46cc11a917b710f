"""`couch`: each record as one CouchDB document, `_id` = the record's `id`, through `_bulk_docs`.

The document is the record unchanged plus `_id` (the record's own `id` stays too). A batch is
one `POST /DB/_bulk_docs`; each document's own answer decides its outcome:

- `ok` -> delivered; `conflict` -> delivered (the same id is already stored: a redelivery);
- any other document error (`forbidden` or `unauthorized` from a validate_doc_update function,
  ...) -> rejected, with CouchDB's reason;
- a document CouchDB refuses for the whole request (400 `bad_request` or `doc_validation`,
  413 too large) is found by splitting the batch in halves: it alone is rejected;
- HTTP 401/403 for the request (credentials), 5xx, timeouts and connection errors -> the call
  raises, and the caller retries the whole batch (idempotent through `_id`).

Refused here before sending: a record without an `id` string, an `id` starting with `_`
(CouchDB reserves them: `_design/...` would write a design document) and a top-level field
starting with `_` (reserved: `_deleted: true` would silently store a deletion).

The database is created when CouchDB answers 404 for it (`PUT /DB`; 412 `file_exists` is
fine), then the batch is sent again: no request is spent on it while the database exists.
"""

from __future__ import annotations

import base64
import re
import time
from urllib.parse import quote, urlsplit, urlunsplit

from accre_monitor.codec import encode
from accre_monitor.outcome import DELIVERED, REJECTED, RETRY, Outcome, StoreUnavailable
from accre_monitor.outputs.base import describe_error
from accre_monitor.outputs.remote import RemoteOutput
from accre_monitor.redaction import redact_url, remember_url, split_credentials

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import urllib3

# https://docs.couchdb.org/en/stable/api/database/common.html#put--db
DATABASE_NAME = re.compile(r"^[a-z][a-z0-9_$()+/-]*$")
# whole-request errors that are about a document in the batch, not about the server
DOCUMENT_ERRORS = ("bad_request", "doc_validation")
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


class CouchOutput(RemoteOutput):
    settings_keys: dict[str, Any] = {
        **RemoteOutput.settings_keys,
        "url": "http://127.0.0.1:5984",
        "database": "accre-monitor",
        "username": None,
        "password": None,
        "tls_ca_file": None,
        "tls_verify": True,
    }

    requires = (("urllib3", "couch"),)

    def __init__(self, name: str, settings: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(name, settings, **kw)
        database = self.settings.get("database")
        if not isinstance(database, str) or not DATABASE_NAME.match(database):
            raise self._bad(
                "database",
                "must be a CouchDB database name "
                "(lowercase letter first, then a-z 0-9 _ $ ( ) + - /)",
            )
        self.database = database
        self._tls_verify = self.setting_flag("tls_verify")
        self._tls_ca_file = self.setting_file("tls_ca_file")
        url = self.setting_text("url")
        # credentials first (a `#` or `/` in the password is the password's), so that
        # urllib and its errors only ever see the rest
        bare, url_username, url_password = split_credentials(url)
        remember_url(url)
        try:
            parts = urlsplit(bare)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError as exc:
            raise self._bad("url", f"{redact_url(url)!r} is not valid: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self._bad("url", f"must be an http:// or https:// URL (got {redact_url(url)!r})")
        base = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self.safe_url = base
        self.db_url = f"{base}/{quote(database, safe='')}"
        username = self.secret("username") or url_username or None
        password = self.secret("password") or url_password or None
        if password and not username:
            raise self._bad("password", f"is set but outputs.{self.section}.username is not")
        self._headers = dict(JSON_HEADERS)
        if username:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        self._http: urllib3.PoolManager | None = None

    # -- delivery --------------------------------------------------------------------------

    def prepare(self, record: dict[str, Any]) -> tuple[str, bytes]:
        return record["id"], document(record)

    def write_batch(self, items: list[tuple[str, bytes]], timeout: float) -> list[Outcome]:
        deadline = time.monotonic() + timeout
        outcomes: list[Outcome | None] = [None] * len(items)
        docs = [(index, doc_id, body) for index, (doc_id, body) in enumerate(items)]
        self._send(docs, outcomes, deadline)
        return outcomes  # type: ignore[return-value]

    def _send(self, docs: list, outcomes: list, deadline: float) -> None:
        """Post `docs`; fill in their outcomes (splitting the batch around a refused document)."""
        if not docs:
            return
        if time.monotonic() >= deadline:
            for index, _id, _body in docs:
                outcomes[index] = Outcome(RETRY, "deadline passed before sending")
            return
        body = b'{"docs":[' + b",".join(doc for _index, _id, doc in docs) + b"]}"
        status, answer = self._request("POST", "/_bulk_docs", body, deadline)
        if status == 404 and _error(answer) == "not_found":
            self._create_database(deadline)
            status, answer = self._request("POST", "/_bulk_docs", body, deadline)
        if status in (201, 202) and isinstance(answer, list):
            _per_document(docs, answer, outcomes)
        elif status == 413 or (status in (400, 500) and _error(answer) in DOCUMENT_ERRORS):
            if len(docs) == 1:
                outcomes[docs[0][0]] = Outcome(REJECTED, _reason(status, answer))
            else:
                middle = len(docs) // 2
                self._send(docs[:middle], outcomes, deadline)
                self._send(docs[middle:], outcomes, deadline)
        else:
            raise StoreUnavailable(f"couchdb {self.db_url}: {_reason(status, answer)}")

    def _create_database(self, deadline: float) -> None:
        status, answer = self._request("PUT", "", None, deadline)
        if status not in (201, 202, 412):
            raise StoreUnavailable(
                f"couchdb {self.db_url}: cannot create the database: {_reason(status, answer)}"
            )

    def _request(self, method: str, path: str, body: bytes | None, deadline: float):
        """(HTTP status, decoded JSON body or None); raises StoreUnavailable on transport errors."""
        import orjson
        import urllib3

        remaining = max(deadline - time.monotonic(), 0.05)
        try:
            response = self._pool().request(
                method,
                self.db_url + path,
                body=body,
                headers=self._headers,
                timeout=urllib3.Timeout(connect=remaining, read=remaining, total=remaining),
                retries=False,
                redirect=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(f"couchdb {self.safe_url}: {describe_error(exc)}") from None
        try:
            answer = orjson.loads(response.data) if response.data else None
        except orjson.JSONDecodeError:
            answer = None
        if response.status in (401, 403):
            raise StoreUnavailable(
                f"couchdb {self.db_url}: {_reason(response.status, answer)} "
                f"(check outputs.{self.name}.username and password)"
            )
        return response.status, answer

    def _pool(self) -> urllib3.PoolManager:
        import urllib3

        if self._http is None:
            tls: dict[str, Any] = {}
            if self.db_url.startswith("https:"):
                tls["cert_reqs"] = "CERT_REQUIRED" if self._tls_verify else "CERT_NONE"
                if self._tls_ca_file:
                    tls["ca_certs"] = self._tls_ca_file
            self._http = urllib3.PoolManager(num_pools=1, maxsize=1, retries=False, **tls)
        return self._http

    def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            http.clear()
        super().close()  # the cluster state, when min_occurrences read it


# -- helpers ---------------------------------------------------------------------------------


def document(record: dict[str, Any]) -> bytes:
    """The CouchDB document of a record as JSON; ValueError when CouchDB must not get it."""
    record_id = record.get("id")
    if not isinstance(record_id, str) or not record_id:
        raise ValueError("record has no id string")
    if record_id.startswith("_"):
        raise ValueError(f"record id {record_id!r} starts with _ (reserved by CouchDB)")
    reserved = sorted(key for key in record if isinstance(key, str) and key.startswith("_"))
    if reserved:
        raise ValueError(f"record field {reserved[0]!r} starts with _ (reserved by CouchDB)")
    try:
        return encode({"_id": record_id, **record})
    except (TypeError, ValueError) as exc:
        raise ValueError(f"record cannot be serialized: {exc}") from None


def _per_document(docs: list, answer: list, outcomes: list) -> None:
    """Match `_bulk_docs` results to documents by id (CouchDB need not keep their order)."""
    results: dict[str, list[dict[str, Any]]] = {}
    for item in answer:
        if isinstance(item, dict):
            results.setdefault(str(item.get("id")), []).append(item)
    for index, doc_id, _body in docs:
        pending = results.get(doc_id)
        if not pending:
            outcomes[index] = Outcome(RETRY, "CouchDB gave no result for this document")
            continue
        item = pending.pop(0)
        error = item.get("error")
        if item.get("ok"):
            outcomes[index] = Outcome(DELIVERED)
        elif error == "conflict":  # stored before: a redelivery
            outcomes[index] = Outcome(DELIVERED, duplicate=True)
        else:
            outcomes[index] = Outcome(REJECTED, f"{error}: {item.get('reason', '')}".rstrip(": "))


def _error(answer: Any) -> str | None:
    return answer.get("error") if isinstance(answer, dict) else None


def _reason(status: int, answer: Any) -> str:
    if isinstance(answer, dict) and answer.get("error"):
        return f"HTTP {status} {answer['error']}: {answer.get('reason', '')}".rstrip(": ")
    return f"HTTP {status}"


# -- settings validation (one clear line each) ---------------------------------------------
