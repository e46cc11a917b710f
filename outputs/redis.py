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
import time
from urllib.parse import urlsplit

from accre_monitor.codec import encode
from accre_monitor.dates import epoch_micros
from accre_monitor.outcome import DELIVERED, REJECTED, RETRY, Outcome, StoreUnavailable
from accre_monitor.outputs.base import describe_error
from accre_monitor.outputs.remote import RemoteOutput
from accre_monitor.redaction import redact_url, remember_url, split_credentials

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import redis

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

    requires = (("redis", "redis"),)

    def __init__(self, name: str, settings: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(name, settings, **kw)
        self.prefix = self.setting_text("prefix")
        self.history_length = self.setting_int("history_length", 0, 100_000_000)
        self.check_history_length = self.setting_int("check_history_length", 0, 100_000_000)
        self.seen_ttl = self.setting_int("seen_ttl", 1, 365 * 86400)
        channel = self.settings.get("channel")
        self.channel = (
            f"{self.prefix}:results"
            if channel is None
            else self.setting_text("channel", empty=True)
        )
        self.tls_verify = self.setting_flag("tls_verify")
        url = self.setting_text("url")
        self.safe_url = redact_url(url)
        # credentials first (a `#` or `/` in the password is the password's), so that
        # urllib, redis-py and their errors only ever see the rest
        self._url, url_username, url_password = split_credentials(url)
        remember_url(url)
        try:
            parts = urlsplit(self._url)
            problem = url_problem(parts)
        except ValueError as exc:
            problem = str(exc)
        if problem:
            raise self._bad("url", f"{self.safe_url!r} is not a usable Redis URL: {problem}")
        self._username = self.secret("username") or url_username or None
        self._password = self.secret("password") or url_password or None
        self.tls_ca_file = self.setting_file("tls_ca_file")
        if self.tls_ca_file is not None and parts.scheme != "rediss":
            raise self._bad("tls_ca_file", "needs a rediss:// url")
        self._tls = parts.scheme == "rediss"
        self._clients: dict[float, redis.Redis] = {}

    # -- delivery --------------------------------------------------------------------------

    def prepare(self, record: dict[str, Any]) -> tuple[list[str], list[Any]]:
        return self.script_call(record)

    def write_batch(self, calls: list[tuple[list[str], list[Any]]], timeout: float) -> list:
        import redis

        deadline = time.monotonic() + timeout
        try:
            client = self._client(timeout)
            return self._run(client, calls, deadline)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis at {self.safe_url}: {describe_error(exc)}") from None
        except ValueError as exc:  # the URL, as redis-py reads it
            raise StoreUnavailable(f"redis at {self.safe_url}: {exc}") from None

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

    def _run(self, client: redis.Redis, calls: list, deadline: float) -> list[Outcome]:
        from redis.exceptions import NoScriptError

        replies = _pipeline(client, calls)
        missing = [k for k, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing and time.monotonic() < deadline:
            # a fresh or restarted server: load the script, run those calls again
            client.script_load(STORE_SCRIPT)
            again = _pipeline(client, [calls[k] for k in missing])
            for k, reply in zip(missing, again, strict=True):
                replies[k] = reply
        return [_outcome(reply) for reply in replies]

    def _client(self, timeout: float) -> redis.Redis:
        """A client whose connect and read timeouts are `timeout` (to 0.1 s).

        redis-py fixes socket timeouts per connection pool, so there is one pool per timeout,
        and only the last few are kept: a caller passing what is left of a deadline each
        time must not pile up pools and their open connections.
        """
        import redis

        timeout = max(round(timeout, 1), 0.1)
        client = self._clients.pop(timeout, None)
        if client is None:
            while len(self._clients) >= MAX_POOLS:
                oldest = next(iter(self._clients))
                with contextlib.suppress(Exception):
                    self._clients.pop(oldest).connection_pool.disconnect()
            options = client_options(self._url, self._username, self._password, timeout)
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
        super().close()  # the cluster state, when min_occurrences read it


# -- helpers ---------------------------------------------------------------------------------


def client_options(
    url: str, username: str | None, password: str | None, timeout: float
) -> dict[str, Any]:
    """redis-py's connection pool options for `url` (without its credentials, which come
    apart: see `split_credentials`), with `timeout` to connect and to read."""
    import redis
    from redis.backoff import NoBackoff
    from redis.connection import parse_url
    from redis.retry import Retry

    return {
        **parse_url(url),
        "username": username or None,
        "password": password or None,
        "socket_connect_timeout": timeout,
        "socket_timeout": timeout,
        # one quick retry for a connection that broke (e.g. the server restarted); never for
        # a timeout, which would double the wait
        "retry": Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
        "health_check_interval": 0,
        **_no_client_setinfo(),
    }


def _pipeline(client: redis.Redis, calls: list) -> list[Any]:
    with client.pipeline(transaction=False) as pipe:
        for keys, args in calls:
            pipe.evalsha(STORE_SCRIPT_SHA, len(keys), *keys, *args)
        return pipe.execute(raise_on_error=False)


def _outcome(reply: Any) -> Outcome:
    import redis
    from redis.exceptions import NoScriptError

    if not isinstance(reply, Exception):
        return Outcome(DELIVERED, duplicate=reply == 0)  # 0: stored before, a redelivery
    message = str(reply)
    code = message.split(" ", 1)[0]
    if isinstance(reply, NoScriptError) or code in TRANSIENT_ERRORS:
        return Outcome(RETRY, message)
    if code in CONFIG_ERRORS or isinstance(reply, redis.ConnectionError):
        raise reply
    return Outcome(REJECTED, message)


def url_problem(parts: Any) -> str | None:
    """Why redis-py could not use this URL, or None (checked without importing redis-py)."""
    if parts.scheme not in ("redis", "rediss", "unix"):
        return "it must start with redis://, rediss:// or unix://"
    if parts.scheme == "unix":
        return None if parts.path else "a unix:// URL needs the socket's path"
    parts.port  # noqa: B018 - raises ValueError for a bad port
    if not parts.hostname:
        return "it has no host name"
    database = parts.path.strip("/")
    if database and not database.isdigit():
        return f"the database {database!r} is not a number"
    return None


def _no_client_setinfo() -> dict[str, Any]:
    """Connection options that skip CLIENT SETINFO (two more commands on every connect)."""
    try:
        import redis.driver_info  # noqa: F401 - redis-py 7.1+: driver_info=None disables it
    except ImportError:
        return {"lib_name": None, "lib_version": None}
    return {"driver_info": None}


# -- settings validation (one clear line each) ---------------------------------------------
