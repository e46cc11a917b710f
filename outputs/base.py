"""What every output is: a name, its checked settings, and either `emit` (synchronous) or
`deliver` (remote, in batches, one Outcome per record).

`RemoteOutput` owns what every store shares: splitting into `batch_size` chunks, one
deadline across the chunks, and an outcome for every record. A store implements
`prepare` (one record into what it sends; ValueError refuses the record for good) and
`write_batch` (one chunk; `StoreUnavailable` when the store cannot take it now).
"""

from __future__ import annotations

import time

from accre_monitor import log
from accre_monitor.errors import ConfigError
from accre_monitor.outcome import REJECTED, RETRY, Outcome, StoreUnavailable
from accre_monitor.settings import FILTER_KEYS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def write_stdout(text: str) -> None:
    """Write `text` to stdout as UTF-8, whatever the locale says: a result must reach Nagios
    even under `LANG=C` or a Latin-1 terminal (NRPE reads bytes, not characters)."""
    import sys

    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:  # replaced by a text-only stream (tests, embedding programs)
        sys.stdout.write(text)
        return
    sys.stdout.flush()
    buffer.write(text.encode("utf-8", "replace"))


class Output:
    """Base class. Subclasses set `synchronous` and `settings_keys`, and implement their half.

    `section` is the config section the settings come from (`[outputs.SECTION]`; the
    output's own name unless it shares another's settings) and names the environment
    variables of its secrets; `source` is the config file, for messages; `state_dir` is
    where an output may keep local state of its own (the spool's directory).
    """

    synchronous = True
    # settings this output understands, beyond the filter keys: name -> default
    settings_keys: dict[str, Any] = {}

    def __init__(
        self,
        name: str,
        settings: dict[str, Any] | None = None,
        *,
        section: str | None = None,
        source: str | None = None,
        state_dir: str | None = None,
    ) -> None:
        self.name = name
        self.section = section or name
        self.state_dir = state_dir
        settings = dict(settings or {})
        for key in settings:
            if key not in self.settings_keys and key not in FILTER_KEYS:
                log.warning("unknown config key", key=f"outputs.{self.section}.{key}", file=source)
        self.settings = {**self.settings_keys, **settings}

    def emit(self, record: dict[str, Any]) -> None:
        """Render one record now (synchronous outputs)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the output holds; called once when the run or the replay ends."""

    # -- settings, checked with one clear line each ---------------------------------------

    def _bad(self, key: str, why: str) -> ConfigError:
        return ConfigError(f"outputs.{self.section}.{key} {why}")

    def setting_seconds(self, key: str) -> float:
        value = self.settings.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise self._bad(key, "must be a positive number of seconds")
        return float(value)

    def setting_int(self, key: str, minimum: int) -> int:
        value = self.settings.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self._bad(key, f"must be an integer >= {minimum}")
        return value

    def setting_text(self, key: str, empty: bool = False) -> str:
        value = self.settings.get(key)
        if not isinstance(value, str) or (not empty and not value.strip()):
            raise self._bad(key, "must be a string" if empty else "must be a non-empty string")
        return value

    def setting_flag(self, key: str) -> bool:
        value = self.settings.get(key)
        if not isinstance(value, bool):
            raise self._bad(key, "must be true or false")
        return value

    def setting_file(self, key: str) -> str | None:
        """An optional path to a readable file (a CA certificate, say)."""
        value = self.settings.get(key) or None
        if value is None:
            return None
        import os

        if not isinstance(value, str) or not os.path.isfile(value):
            raise self._bad(key, f"must name a readable file ({value!r} is not one)")
        return value

    def secret(self, key: str) -> str | None:
        """A secret from the config, or from `ACCRE_MONITOR_<SECTION>_<KEY>` in the environment.

        The environment wins, so a config file can be shared without its secrets.
        """
        import os

        variable = f"ACCRE_MONITOR_{self.section}_{key}".upper().replace("-", "_")
        return os.environ.get(variable) or self.settings.get(key) or None


class RemoteOutput(Output):
    """An output that ships records to a store, in batches, idempotently by record `id`.

    `deliver(records, timeout)` returns one Outcome per record, in order, within about
    `timeout` seconds; it raises `StoreUnavailable` when not one record could be sent
    because the store cannot take them now (every record is then retried).
    """

    synchronous = False
    # (module, extra) pairs: client packages this output imports when it delivers
    requires: tuple[tuple[str, str], ...] = ()
    # True: records must reach the store in the order they were taken (a newer result must
    # never be overtaken by an older one): a fresh record waits behind a spooled backlog
    ordered = False
    # True: one process at a time delivers this output's records (it keeps state across
    # records, e.g. the last status per check); on RabbitMQ its queue has a single active
    # consumer
    single_consumer = False
    # the default deadline of inline delivery from the CLI, overridable per output
    settings_keys: dict[str, Any] = {"timeout": 2.0, "batch_size": 500}

    def __init__(self, name: str, settings: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(name, settings, **kw)
        self.timeout = self.setting_seconds("timeout")
        self.batch_size = self.setting_int("batch_size", minimum=1)

    def deliver(self, records: list[dict[str, Any]], timeout: float) -> list[Outcome]:
        deadline = time.monotonic() + timeout
        outcomes: list[Outcome | None] = [None] * len(records)
        prepared: list[tuple[int, Any]] = []
        for index, record in enumerate(records):
            try:
                prepared.append((index, self.prepare(record)))
            except (ValueError, TypeError, KeyError) as exc:
                outcomes[index] = Outcome(REJECTED, f"bad record: {_reason(exc)}")
        for start in range(0, len(prepared), self.batch_size):
            chunk = prepared[start : start + self.batch_size]
            left = deadline - time.monotonic()
            if left <= 0.01:
                if start == 0:
                    raise StoreUnavailable(f"{self.name}: no time left to send")
                _owe(outcomes, prepared[start:], "deadline passed before sending")
                break
            try:
                results = self.write_batch([item for _, item in chunk], left)
            except StoreUnavailable as exc:
                if start == 0:
                    raise
                _owe(outcomes, prepared[start:], str(exc))  # the earlier chunks are stored
                break
            if len(results) != len(chunk):
                message = f"{self.name} answered {len(results)} outcomes for {len(chunk)} records"
                results = [Outcome(RETRY, message)] * len(chunk)
            for (index, _), outcome in zip(chunk, results, strict=True):
                outcomes[index] = outcome
        return [o if o is not None else Outcome(RETRY, "not sent") for o in outcomes]

    def prepare(self, record: dict[str, Any]) -> Any:
        """What `write_batch` sends for `record`; ValueError when the store must never get it."""
        return record

    def write_batch(self, items: list[Any], timeout: float) -> list[Outcome]:
        """Send one chunk; one Outcome per item, or StoreUnavailable for the whole chunk."""
        raise NotImplementedError


def _owe(outcomes: list, items: list[tuple[int, Any]], error: str) -> None:
    for index, _ in items:
        outcomes[index] = Outcome(RETRY, error)


def _reason(exc: BaseException) -> str:
    return f"no {exc} field" if isinstance(exc, KeyError) else str(exc)


def redact_url(url: str) -> str:
    """The URL without its password (`scheme://user:***@host`), safe for messages and logs."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        host = parts.netloc.rpartition("@")[2]
        if parts.password is None and parts.username is None:
            return url
    except ValueError:
        return "<unparsable url>"
    user = f"{parts.username}:***" if parts.password is not None else "***"
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


def describe_error(exc: BaseException) -> str:
    """`Type: message`, for spool entries and logs."""
    text = str(exc).strip() or "no details"
    return f"{type(exc).__name__}: {text}"
