"""`redis`: each record into Redis (latest value, capped history streams, pub/sub), idempotently.

Key layout (`P` is the `prefix` setting, `accre-monitor` by default; NODE and CHECK are the
record's `node` and `name`)::

    P:latest:NODE:CHECK   hash, the newest result of CHECK on NODE, in one lookup:
                              record  the record as JSON   (HGET P:latest:NODE:CHECK record)
                              status  OK, WARNING, CRITICAL or UNKNOWN
                              ts      the record's date, integer microseconds since the epoch
                          A record replaces it only if its date is at least as new as `ts`:
                          a replayed older record never hides a newer one.
    P:history             stream of every record once, in order of arrival, one field `record`
                          (the JSON), trimmed to about `history_length` entries (XADD MAXLEN ~):
                          live tailing (XREAD BLOCK 0 STREAMS P:history $) and the recent past
                          of the whole fleet. `history_length = 0` turns it off.
    P:history:NODE:CHECK  stream, the same entries for one check on one node, trimmed to about
                          `check_history_length` entries: the cheap "history of CHECK on NODE"
                          (XREVRANGE P:history:NODE:CHECK + - COUNT 50). Off by default (0):
                          its memory grows with nodes x checks x length.
    P:seen:ID             string "1", expiring after `seen_ttl` seconds (7 days): record ID is
                          stored. A redelivered record (same `id`) changes nothing at all.
    channel P:results     pub/sub (the `channel` setting; "" turns it off): the JSON of each
                          new record, published once (never for a redelivery).

Stream entry IDs are Redis arrival times, not check dates: a replayed old record is appended at
the end of the history (its `date` inside the JSON tells when it ran).

One Lua script (EVALSHA, loaded again after NOSCRIPT) does all of a record's writes atomically:
a record is either stored everywhere or nowhere, and the `seen` marker is written last. A batch
is one pipeline of EVALSHA calls: one round trip for the whole batch. Idempotency also makes
redis-py's one retry after a broken connection safe.

Memory: a `seen` key costs about 120 bytes for `seen_ttl`; at R records per day that is
120 x R x 7 bytes by default. A redelivery can only happen within the spool's retry horizon,
so a smaller `seen_ttl` (e.g. 86400) is safe for large fleets.

All keys of one record live in different hash slots: use a standalone Redis (or the primary
behind Sentinel), not Redis Cluster.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote, urlsplit

from accre_monitor.errors import ConfigError
from accre_monitor.outputs.base import (
    DELIVERED,
    REJECTED,
    RETRY,
    Outcome,
    RemoteOutput,
    describe_error,
    redact_url,
)
from accre_monitor.pipeline.codec import encode

try:
    import redis
    from redis.backoff import NoBackoff
    from redis.connection import parse_url
    from redis.exceptions import NoScriptError
    from redis.retry import Retry
except ImportError:  # pragma: no cover - depends on the installation
    raise ConfigError(
        "output redis needs the redis package: pip install 'accre-monitor[redis]'"
    ) from None

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# KEYS: 1 seen, 2 latest, 3 history, 4 check history
# ARGV: 1 record JSON, 2 date in epoch microseconds, 3 status, 4 seen TTL (s),
#       5 history length, 6 check history length, 7 channel ("" = none)
# Returns 0: already stored (redelivery); 1: stored, now the latest; 2: stored, older than latest.
# Key types are checked before the first write so that an error leaves nothing half-written.
STORE_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local wanted = {[2] = 'hash', [3] = 'stream', [4] = 'stream'}
for i, kind in pairs(wanted) do
  local found = redis.call('TYPE', KEYS[i])['ok']
  if found ~= 'none' and found ~= kind then
    return redis.error_reply('WRONGTYPE ' .. KEYS[i] .. ' is a ' .. found .. ', not a ' .. kind)
  end
end
if tonumber(ARGV[5]) > 0 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'record', ARGV[1])
end
if tonumber(ARGV[6]) > 0 then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[6], '*', 'record', ARGV[1])
end
local result = 2
local current = redis.call('HGET', KEYS[2], 'ts')
if not current or tonumber(ARGV[2]) >= tonumber(current) then
  redis.call('HSET', KEYS[2], 'record', ARGV[1], 'status', ARGV[3], 'ts', ARGV[2])
  result = 1
end
if ARGV[7] ~= '' then
  redis.call('PUBLISH', ARGV[7], ARGV[1])
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[4])
return result
"""

STORE_SCRIPT_SHA = hashlib.sha1(STORE_SCRIPT.encode()).hexdigest()

# Error replies that say "not now" rather than "never": the record is retried.
TRANSIENT_ERRORS = (
    "OOM", "BUSY", "LOADING", "MASTERDOWN", "READONLY", "TRYAGAIN", "CLUSTERDOWN",
    "NOREPLICAS", "MISCONF",
)  # fmt: skip
# Error replies that mean the configuration is wrong: the whole batch fails (and is retried).
CONFIG_ERRORS = ("NOAUTH", "WRONGPASS", "NOPERM")

MAX_POOLS = 3  # connection pools kept, one per distinct deliver() timeout

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class RedisUnavailable(ConnectionError):
    """The whole batch failed: Redis unreachable, too slow, or refusing our credentials."""


class RedisOutput(RemoteOutput):
    settings_keys: dict[str, Any] = {
        **RemoteOutput.settings_keys,
        "url": "redis://127.0.0.1:6379/0",
        "username": None,
        "password": None,
        "tls_ca_file": None,
        "tls_verify": True,
        "prefix": "accre-monitor",
        "history_length": 10000,
        "check_history_length": 0,
        "seen_ttl": 7 * 86400,
        "channel": None,
    }

    def __init__(self, name: str, settings: dict[str, Any] | None = None) -> None:
        super().__init__(name, settings)
        self.timeout = self.setting_seconds("timeout")
        self.batch_size = self.setting_int("batch_size", minimum=1)
        self.prefix = self.setting_text("prefix")
        self.history_length = self.setting_int("history_length", minimum=0)
        self.check_history_length = self.setting_int("check_history_length", minimum=0)
        self.seen_ttl = self.setting_int("seen_ttl", minimum=1)
        channel = self.settings.get("channel")
        self.channel = (
            f"{self.prefix}:results"
            if channel is None
            else self.setting_text("channel", empty=True)
        )
        tls_verify = self.settings.get("tls_verify")
        if not isinstance(tls_verify, bool):
            raise ConfigError(f"outputs.{name}.tls_verify must be true or false")
        self.tls_verify = tls_verify
        self.tls_ca_file = self.settings.get("tls_ca_file") or None

        url = self.setting_text("url")
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(
                f"outputs.{name}.url must start with redis://, rediss:// or unix:// "
                f"(got {redact_url(url)!r})"
            )
        self.safe_url = redact_url(url)
        try:
            self._url_options = parse_url(_without_credentials(url))
            url_username, url_password = parts.username, parts.password
        except ValueError as exc:
            raise ConfigError(f"outputs.{name}.url {self.safe_url!r} is not valid: {exc}") from None
        self._username = self.secret("username") or (url_username and unquote(url_username))
        self._password = self.secret("password") or (url_password and unquote(url_password))
        if self.tls_ca_file is not None:
            if parts.scheme != "rediss":
                raise ConfigError(f"outputs.{name}.tls_ca_file needs a rediss:// url")
            if not os.path.isfile(self.tls_ca_file):
                raise ConfigError(f"outputs.{name}.tls_ca_file {self.tls_ca_file!r} not found")
        self._tls = parts.scheme == "rediss"
        self._clients: dict[float, redis.Redis] = {}

    # -- delivery --------------------------------------------------------------------------

    def deliver(self, records: list[dict[str, Any]], timeout: float) -> list[Outcome]:
        deadline = time.monotonic() + timeout
        outcomes: list[Outcome | None] = [None] * len(records)
        calls: list[tuple[int, list[str], list[Any]]] = []
        for index, record in enumerate(records):
            try:
                keys, args = self.script_call(record)
            except ValueError as exc:
                outcomes[index] = Outcome(REJECTED, str(exc))
            else:
                calls.append((index, keys, args))
        client = self._client(timeout)
        try:
            for start in range(0, len(calls), self.batch_size):
                chunk = calls[start : start + self.batch_size]
                if time.monotonic() >= deadline:
                    for index, _keys, _args in chunk:
                        outcomes[index] = Outcome(RETRY, "deadline passed before sending")
                    continue
                self._run(client, chunk, outcomes, deadline)
        except redis.RedisError as exc:
            raise RedisUnavailable(f"redis at {self.safe_url}: {describe_error(exc)}") from None
        return outcomes  # type: ignore[return-value]

    def script_call(self, record: dict[str, Any]) -> tuple[list[str], list[Any]]:
        """The KEYS and ARGV of the store script for one record; ValueError if it is unusable."""
        for field in ("id", "node", "name", "date"):
            if not isinstance(record.get(field), str) or not record[field]:
                raise ValueError(f"record has no {field} string")
        node, name = record["node"], record["name"]
        keys = [
            f"{self.prefix}:seen:{record['id']}",
            f"{self.prefix}:latest:{node}:{name}",
            f"{self.prefix}:history",
            f"{self.prefix}:history:{node}:{name}",
        ]
        args = [
            encode(record),
            epoch_micros(record["date"]),
            str(record.get("status", "")),
            self.seen_ttl,
            self.history_length,
            self.check_history_length,
            self.channel,
        ]
        return keys, args

    def _run(self, client: redis.Redis, calls: list, outcomes: list, deadline: float) -> None:
        replies = _pipeline(client, calls)
        missing = [k for k, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing and time.monotonic() < deadline:
            # a fresh or restarted server: load the script, run those calls again
            client.script_load(STORE_SCRIPT)
            again = _pipeline(client, [calls[k] for k in missing])
            for k, reply in zip(missing, again, strict=True):
                replies[k] = reply
        for (index, _keys, _args), reply in zip(calls, replies, strict=True):
            outcomes[index] = _outcome(reply)

    def _client(self, timeout: float) -> redis.Redis:
        """A client whose connect and read timeouts are `timeout` (to 0.1 s).

        redis-py fixes socket timeouts per connection pool, so there is one pool per timeout,
        and only the last few are kept: a caller passing what is left of a deadline each
        time must not pile up pools and their open connections.
        """
        timeout = max(round(timeout, 1), 0.1)
        client = self._clients.pop(timeout, None)
        if client is None:
            while len(self._clients) >= MAX_POOLS:
                oldest = next(iter(self._clients))
                with contextlib.suppress(Exception):
                    self._clients.pop(oldest).connection_pool.disconnect()
            options: dict[str, Any] = {
                **self._url_options,
                "username": self._username or None,
                "password": self._password or None,
                "socket_connect_timeout": timeout,
                "socket_timeout": timeout,
                # one quick retry for a connection that broke (e.g. the server restarted);
                # never for a timeout, which would double the wait
                "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
                "health_check_interval": 0,
                **_no_client_setinfo(),
            }
            if self._tls:
                options["ssl_cert_reqs"] = "required" if self.tls_verify else "none"
                options["ssl_check_hostname"] = self.tls_verify
                if self.tls_ca_file:
                    options["ssl_ca_certs"] = self.tls_ca_file
            client = redis.Redis(connection_pool=redis.ConnectionPool(**options))
        self._clients[timeout] = client  # (re)inserted last: the most recently used
        return client

    def close(self) -> None:
        clients, self._clients = self._clients, {}
        for client in clients.values():
            with contextlib.suppress(Exception):  # closing must not fail the run
                client.connection_pool.disconnect()


# -- helpers ---------------------------------------------------------------------------------


def _pipeline(client: redis.Redis, calls: list) -> list[Any]:
    with client.pipeline(transaction=False) as pipe:
        for _index, keys, args in calls:
            pipe.evalsha(STORE_SCRIPT_SHA, len(keys), *keys, *args)
        return pipe.execute(raise_on_error=False)


def _outcome(reply: Any) -> Outcome:
    if not isinstance(reply, Exception):
        return Outcome(DELIVERED)
    message = str(reply)
    code = message.split(" ", 1)[0]
    if isinstance(reply, NoScriptError) or code in TRANSIENT_ERRORS:
        return Outcome(RETRY, message)
    if code in CONFIG_ERRORS or isinstance(reply, redis.ConnectionError):
        raise reply
    return Outcome(REJECTED, message)


def epoch_micros(date: str) -> int:
    """An ISO 8601 date as integer microseconds since the epoch (no offset: taken as UTC)."""
    try:
        moment = datetime.fromisoformat(date)
    except ValueError:
        raise ValueError(f"record date {date!r} is not ISO 8601") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


def _without_credentials(url: str) -> str:
    """The URL without user and password (kept as is otherwise: `unix:///path` stays)."""
    netloc = urlsplit(url).netloc
    if "@" not in netloc:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{netloc.rpartition('@')[2]}{rest[len(netloc) :]}"


def _no_client_setinfo() -> dict[str, Any]:
    """Connection options that skip CLIENT SETINFO (two more commands on every connect)."""
    try:
        import redis.driver_info  # noqa: F401 - redis-py 7.1+: driver_info=None disables it
    except ImportError:
        return {"lib_name": None, "lib_version": None}
    return {"driver_info": None}


# -- settings validation (one clear line each) ---------------------------------------------
