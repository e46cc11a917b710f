"""`slack-all`, `slack-warning`, `slack-critical`: results as Slack messages through an
incoming webhook. One output behind three filter stages, all reading `[outputs.slack]`.

Per batch, the output decides from the cluster state, never from a state of its own: it
first takes the records into the state itself (idempotent and never rewinding, so whether
the `state` destination or this output takes a record first, it is judged only once the
state has it), then judges each record from what the state says of it (see `notify.py`):

- a record the state has a newer one for (superseded: a backlog, an old record replayed)
  is quiet, and so is one an active silence covers, or one short of `min_occurrences`;
- `notify = "every"`: every other record is a message; `"change"`: new problems, changes,
  recoveries and due repeats only, judged against what this output last said for the
  node and check (`Entry.notified`, written once a message went out), whichever shipper
  said it; a recovery is posted only if this output had posted the problem;
- a record this output said already (a redelivery) is never posted twice.

With grouping on (`group_wait` above 0, see `slack_groups.py`) what speaks joins its group
of check and status and is delivered at once; the groups' messages are posted as they fall
due (`flush_due`, at the start of each batch and about once a second from the shipper). When
more messages are due than `digest_threshold`, one digest replaces them (see
`slack_format.py`); the rest go one by one, no faster than one per `min_interval` seconds
and only as far as the deadline allows (what does not fit is retried later).

Slack's answers: 2xx delivered; 429 retried no sooner than its `Retry-After` (and nothing
more is sent to it meanwhile); 5xx, timeouts and connection errors retried; 400 about the
payload (`invalid_payload`, ...) refuses that message; any other 4xx (`no_service`,
`invalid_token`, `channel_not_found`, ...) says the webhook itself is refused: that is not
the records' fault, so they wait (retried with backoff, oldest first) until it is fixed.
A record whose message cannot be made at all (a field Python cannot render) is refused
alone, a dead letter with the reason; the records behind it go on.

The webhook URL is the secret: it is never shown. Messages name it as
`https://hooks.slack.com/***`, and every error text is scrubbed of it before it can reach
a log, the spool or a dead letter.
"""

from __future__ import annotations

import contextlib
import os
import time
from urllib.parse import urlsplit

from accre_monitor import log
from accre_monitor.codec import encode
from accre_monitor.outcome import DELIVERED, REJECTED, RETRY, Outcome, StoreUnavailable
from accre_monitor.outputs.base import describe_error
from accre_monitor.outputs.notify import (
    EVERY,
    QUIET,
    SENT,
    SILENCED,
    SPEAKS,
    STALE,
    Said,
    judge,
)
from accre_monitor.outputs.occurrences import note, short_of
from accre_monitor.outputs.remote import RemoteOutput
from accre_monitor.outputs.slack_format import Notice, digest, message
from accre_monitor.outputs.slack_groups import Groups
from accre_monitor.pipeline.state import Taken, covering
from accre_monitor.redaction import redact_url, remember, remember_url, scrub, split_credentials
from accre_monitor.status import OK, SEVERITY, normalize_status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import urllib3

# the notification state of earlier versions, beside the spool: no longer read
RETIRED_STATE_FILE = "slack-state.db"
NOTIFY_MODES = ("every", "change")
# a 400 about the message itself: only that message is refused
PAYLOAD_ERRORS = frozenset(
    {"invalid_payload", "no_text", "invalid_attachments", "invalid_blocks", "too_many_attachments"}
)
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


class SlackOutput(RemoteOutput):
    settings_keys: dict[str, Any] = {
        **RemoteOutput.settings_keys,
        "timeout": 5.0,
        "webhook_url": None,
        "channel": "#monitor",
        "notify": "every",
        "renotify": 3600,
        "digest_threshold": 5,
        "min_interval": 1.0,
        "late_after": 120,
        "proxy": None,
        "group_wait": 30,
        "group_interval": 300,
        "repeat_interval": 14400,
    }

    requires = (("urllib3", "slack"),)
    # a newer result must not overtake an older one: a recovery never comes before its
    # incident, and one shipper at a time posts (its queue has a single active consumer)
    ordered = True
    single_consumer = True

    def __init__(self, name: str, settings: dict[str, Any] | None = None, **kw: Any) -> None:
        super().__init__(name, settings, **kw)
        self._url, self.safe_url = self._webhook()
        self.settings["webhook_url"] = "***"  # nothing below ever needs it again
        remember(self._url)  # and its path, and the token in it: never shown
        self.channel = self.setting_text("channel", empty=True).strip()
        notify = self.settings.get("notify")
        if notify not in NOTIFY_MODES:
            raise self._bad("notify", 'must be "every" or "change"')
        self.notify = notify
        self.renotify = self.setting_seconds("renotify", zero=True, maximum=30 * 86400.0)
        self.min_interval = self.setting_seconds("min_interval", zero=True, maximum=3600.0)
        self.late_after = self.setting_seconds("late_after", maximum=7 * 86400.0)
        self.digest_threshold = self.setting_int("digest_threshold", 0, 10_000)
        self.level = self._level()
        self.proxy = self._proxy()
        self._http: urllib3.PoolManager | None = None
        self._next_post = 0.0  # time.monotonic() before which Slack gets nothing more
        self.group_wait = self.setting_seconds("group_wait", zero=True, maximum=86400.0)
        self.group_interval = self.setting_seconds("group_interval", maximum=86400.0)
        self.repeat_interval = self.setting_seconds(
            "repeat_interval", zero=True, maximum=30 * 86400.0
        )
        self._groups = self._grouping() if self.group_wait else None

    def __repr__(self) -> str:
        return f"SlackOutput({self.name!r}, {self.safe_url!r}, notify={self.notify!r})"

    # -- settings -------------------------------------------------------------------------

    def _webhook(self) -> tuple[str, str]:
        """(the webhook URL, how messages name it)."""
        variable = f"ACCRE_MONITOR_{self.section}_WEBHOOK_URL".upper().replace("-", "_")
        url = self.secret("webhook_url")
        if url is None:
            raise self._bad("webhook_url", f"is not set (set it, or {variable})")
        hidden = "(the value is not shown: it is a secret)"
        if not isinstance(url, str):
            raise self._bad("webhook_url", f"must be a string {hidden}")
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError:
            raise self._bad("webhook_url", f"is not a valid URL {hidden}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self._bad("webhook_url", f"must be an https:// URL {hidden}")
        host = parts.hostname + (f":{port}" if port else "")
        return url.strip(), f"{parts.scheme}://{host}/***"

    def _level(self) -> str:
        """The least severity worth a message: the stricter of the preset's and the
        section's `min_severity` (applied here with notify = "change", where the filter
        stages let every status through so that recoveries are seen)."""
        from accre_monitor.outputs import preset_filters

        level = OK
        for value in (
            preset_filters(self.name).get("min_severity"),
            self.settings.get("min_severity"),
        ):
            if value is None:
                continue
            try:
                status = normalize_status(value)
            except ValueError:
                raise self._bad(
                    "min_severity", "must be OK, WARNING, CRITICAL or UNKNOWN"
                ) from None
            level = max(level, status, key=SEVERITY.__getitem__)
        return level

    def _grouping(self) -> Groups:
        """The output's notification groups, kept in the cluster state."""
        return Groups(
            self.name,
            wait=self.group_wait,
            interval=self.group_interval,
            repeat=self.repeat_interval,
            open_store=self.state_store,
            channel=self.channel,
            late_after=self.late_after,
            digest_threshold=self.digest_threshold,
            claim_seconds=self.timeout + 60.0,
        )

    def _proxy(self) -> str | None:
        """The proxy URL without credentials; they go to `self._proxy_auth`."""
        proxy = self.settings.get("proxy")
        self._proxy_auth: str | None = None
        if proxy is None:
            return None
        parts = None
        if isinstance(proxy, str):
            # credentials first (a `#` or `/` in the password is the password's)
            remember_url(proxy)
            proxy, username, password = split_credentials(proxy)
            if username is not None:
                self._proxy_auth = f"{username}:{password or ''}"
            try:
                parts = urlsplit(proxy)
                _ = parts.port
            except ValueError:
                parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            original = self.settings["proxy"]
            shown = redact_url(original) if isinstance(original, str) else type(original).__name__
            raise self._bad("proxy", f"must be an http:// or https:// URL (got {shown!r})")
        return proxy

    # -- delivery -------------------------------------------------------------------------

    def prepare(self, record: dict[str, Any]) -> Notice:
        return Notice(record)

    def deliver(self, records: list[dict[str, Any]], timeout: float) -> list[Outcome]:
        """One outcome per record: taken into the state, judged, sent one by one or as one
        digest, remembered in the state."""
        deadline = time.monotonic() + timeout
        self.flush_due(deadline=deadline)
        outcomes, notices = self.prepare_each(records)
        if notices:
            takens = self.take_into_state([n.record for _, n in notices])
            plan = self._plan(notices, takens, outcomes)
            grouped = self._group(plan)
            sent = self._send_all([p for p in plan if p[0] not in grouped], deadline)
            self._settle(plan, {**sent, **grouped}, outcomes)
        return [o if o is not None else Outcome(RETRY, "not sent") for o in outcomes]

    # -- grouping -------------------------------------------------------------------------

    def _group(self, plan: list) -> dict[int, Outcome]:
        """With grouping on, what speaks joins its group and is delivered (the group owes
        the message), or waits when the groups cannot be kept; the outcomes, by index."""
        if self._groups is None:
            return {}
        speaking = [(index, notice) for index, notice, _ in plan if notice.verdict in SPEAKS]
        if not speaking:
            return {}
        try:
            self._groups.join([notice for _, notice in speaking])
            outcome = Outcome(DELIVERED)
        except StoreUnavailable as exc:
            outcome = Outcome(RETRY, str(exc))
        return {index: outcome for index, _ in speaking}

    def flush_due(self, now: float | None = None, deadline: float | None = None) -> int:
        """Post the group messages that are due by `now` (epoch seconds; default: now),
        as `_send` posts (pace, Retry-After, `deadline`, time.monotonic(); default: the
        output's timeout); how many went out. Nothing to do with grouping off."""
        if self._groups is None:
            return 0
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        try:
            return self._groups.flush(self._send, deadline, now)
        except Exception as exc:  # noqa: BLE001 - a batch or the shipper must go on
            error = describe_error(exc)
            log.error("cannot post the due group messages", output=self.name, error=error)
            return 0

    def _plan(
        self,
        notices: list[tuple[int, Notice]],
        takens: list[Taken],
        outcomes: list[Outcome | None],
    ) -> list[tuple[int, Notice, dict[str, Any] | None]]:
        """Each notice with its verdict, and what the state remembers of it once it is
        said (None when it says nothing). A record the state cannot take is refused here."""
        now = time.time()
        silences = self._silences(now)
        plan: list[tuple[int, Notice, dict[str, Any] | None]] = []
        speaking: set[str] = set()  # record ids said by this batch (the same record twice)
        for (index, notice), taken in zip(notices, takens, strict=True):
            if taken.problem is not None or taken.entry is None:
                outcomes[index] = Outcome(REJECTED, f"the state cannot take it: {taken.problem}")
                continue
            notice.verdict = self._verdict(notice, taken, silences, now, speaking)
            spoken = notice.verdict in SPEAKS
            if spoken:
                speaking.add(notice.record["id"])
            plan.append((index, notice, note(taken) if spoken else None))
        return plan

    def _verdict(
        self,
        notice: Notice,
        taken: Taken,
        silences: list[Any],
        now: float,
        speaking: set[str],
    ) -> str:
        """What one record means for this output (see `notify.py`); fills in what the
        message says of the change (`before`, `since`)."""
        entry = taken.entry
        assert entry is not None
        last = entry.notified.get(self.name)
        said = Said(last["status"], last["date"]) if last else None
        if (last and last.get("id") == notice.record["id"]) or notice.record["id"] in speaking:
            return SENT
        if not taken.current:
            return STALE
        if covering(silences, notice.node, notice.check, now):
            return SILENCED
        if self.min_occurrences and short_of(taken, self.min_occurrences):
            return QUIET
        if said is not None:
            notice.before = said.status
        notice.since = entry.since
        if self.notify == "every":
            # a problem this output never posted has no recovery to post either
            unsaid = entry.is_resolution and (said is None or said.status == OK)
            return QUIET if unsaid else EVERY
        return judge(said, notice.status, notice.taken, self.level, self.renotify)

    def _silences(self, now: float) -> list[Any]:
        """The silences in force now (the state's; a state that cannot answer holds the
        batch for a retry, as when it cannot take the records)."""
        try:
            return self.state_store().silences(now)
        except Exception as exc:  # whatever the store raises is its failure, not the records'
            error = f"{self.name}: cannot use the cluster state: {describe_error(exc)}"
            raise StoreUnavailable(error) from None

    def _send_all(self, plan: list, deadline: float) -> dict[int, Outcome]:
        """Send what speaks: as one digest when there is too much of it, else one message
        each; the outcome of each record that was to be sent, by index."""
        speaking = [notice for _, notice, _ in plan if notice.verdict in SPEAKS]
        index_of = {id(notice): index for index, notice, _ in plan}
        now = time.time()
        results: dict[int, Outcome] = {}
        batches: list[tuple[bytes, list[Notice]]] = []
        for payload, members in self._render(speaking, now):
            if isinstance(payload, Outcome):  # this record cannot be rendered: refused alone
                results[index_of[id(members[0])]] = payload
            else:
                batches.append((payload, members))
        rest: Outcome | None = None
        for body, members in batches:
            outcome = rest
            if outcome is None:
                outcome, rest = self._send(body, deadline)
            for notice in members:
                results[index_of[id(notice)]] = outcome
        return results

    def _render(self, speaking: list[Notice], now: float) -> list[tuple[Any, list[Notice]]]:
        """(the encoded payload, the notices it carries) for each message to send, or
        (a REJECTED outcome, [notice]) for a record whose message cannot be made: one odd
        record (a date Python cannot show, say) is refused, never holding back the rest."""
        if self.digest_threshold and len(speaking) > self.digest_threshold:
            try:
                return [(encode(digest(speaking, self.channel, self.late_after, now)), speaking)]
            except Exception:  # noqa: BLE001 - find the record that breaks it, one by one
                good = [n for n in speaking if self._renders(n, now)]
                bad = [n for n in speaking if n not in good]
                rendered = self._render(good, now) if good else []
                return rendered + [r for n in bad for r in self._render_one(n, now)]
        return [r for n in speaking for r in self._render_one(n, now)]

    def _render_one(self, notice: Notice, now: float) -> list[tuple[Any, list[Notice]]]:
        try:
            return [(encode(message(notice, self.channel, self.late_after, now)), [notice])]
        except Exception as exc:  # noqa: BLE001 - whatever it is, it is this record's
            return [(Outcome(REJECTED, f"cannot be rendered: {describe_error(exc)}"), [notice])]

    def _renders(self, notice: Notice, now: float) -> bool:
        return not isinstance(self._render_one(notice, now)[0][0], Outcome)

    def _settle(self, plan: list, sent: dict[int, Outcome], outcomes: list[Outcome | None]) -> None:
        """Fill in the outcomes; remember in the state what was said.

        A quiet result of a check whose earlier message in this batch must be retried
        waits with it, so that the results of a check stay in order."""
        failed: dict[tuple[str, str], Outcome] = {}
        said: list[dict[str, Any]] = []
        for index, notice, spoken in plan:
            if notice.verdict in SPEAKS:
                outcome = sent[index]
                if outcome.state == DELIVERED:
                    said.append(spoken)
                elif outcome.state == RETRY:  # it comes back: the rest of its check waits
                    failed.setdefault(notice.key, outcome)
            elif notice.key in failed:
                first = failed[notice.key]
                outcome = Outcome(
                    RETRY, "waits for an earlier result of its check to be sent", first.retry_after
                )
            else:  # quiet, superseded, silenced, or said before (a redelivery: never twice)
                outcome = Outcome(DELIVERED, duplicate=notice.verdict == SENT)
            outcomes[index] = outcome
        self.remember_notified(said)

    def _send(self, body: bytes, deadline: float) -> tuple[Outcome, Outcome | None]:
        """(this message's outcome, the outcome of every later one in the batch without
        sending it, or None to go on)."""
        wait = self._next_post - time.monotonic()
        if time.monotonic() + max(wait, 0.0) >= deadline - 0.05:
            error = (
                f"{self.name}: Slack takes one message per {self.min_interval:g} s; no time left"
            )
            if wait > self.min_interval:
                error = f"{self.name}: Slack asked to wait {wait:.0f} s more"
            outcome = Outcome(RETRY, error, wait if wait > 0 else None)
            return outcome, outcome
        if wait > 0:
            time.sleep(wait)
        try:
            status, answer, retry_after = self._post(body, deadline)
        except StoreUnavailable as exc:
            outcome = Outcome(RETRY, str(exc))
            return outcome, outcome
        self._next_post = time.monotonic() + self.min_interval
        where = f"{self.name} {self.safe_url}: HTTP {status}" + (f" {answer}" if answer else "")
        if 200 <= status < 300:
            return Outcome(DELIVERED), None
        if status == 429:
            self._next_post = time.monotonic() + retry_after
            outcome = Outcome(
                RETRY, f"{where} (rate limited; retry after {retry_after:g} s)", retry_after
            )
            return outcome, outcome
        if status >= 500:
            outcome = Outcome(RETRY, where)
            return outcome, outcome
        if status == 400 and answer in PAYLOAD_ERRORS:
            return Outcome(REJECTED, where), None
        # the webhook itself is refused (revoked, channel gone): the store's failure, not
        # the records'; they wait until the webhook is fixed
        outcome = Outcome(RETRY, f"{where} (the webhook itself is refused)")
        return outcome, outcome

    def _post(self, body: bytes, deadline: float) -> tuple[int, str, float]:
        """(HTTP status, Slack's answer, seconds a 429 asks to wait); StoreUnavailable when
        no answer came. Every text is scrubbed of the webhook URL."""
        import urllib3

        remaining = max(deadline - time.monotonic(), 0.05)
        try:
            response = self._pool().request(
                "POST",
                self._url,
                body=body,
                headers=JSON_HEADERS,
                timeout=urllib3.Timeout(connect=remaining, read=remaining, total=remaining),
                retries=False,
                redirect=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StoreUnavailable(f"{self.name} {self.safe_url}: {describe_error(exc)}") from None
        answer = response.data[:200].decode("utf-8", "replace").strip()
        answer = scrub(" ".join(answer.split()))
        return response.status, answer, retry_after_seconds(response.headers.get("Retry-After"))

    # -- what the output holds ------------------------------------------------------------

    def state_store(self) -> Any:
        """The cluster state; the first time, a notification state of earlier versions
        beside the spool is set aside, saying so once."""
        if self._state is None and self.state_dir is not None:
            retire_old_state(self.state_dir)
        return super().state_store()

    def _pool(self) -> urllib3.PoolManager:
        import urllib3

        if self._http is None:
            if self.proxy:
                headers = None
                if self._proxy_auth is not None:
                    headers = urllib3.make_headers(proxy_basic_auth=self._proxy_auth)
                self._http = urllib3.ProxyManager(
                    self.proxy, num_pools=1, maxsize=1, retries=False, proxy_headers=headers
                )
            else:
                self._http = urllib3.PoolManager(num_pools=1, maxsize=1, retries=False)
        return self._http

    def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            http.clear()
        if self._groups is not None:
            self._groups.close()
        super().close()


def retire_old_state(state_dir: str) -> None:
    """Rename `slack-state.db` (and its -wal and -shm) beside the spool to
    `slack-state.db.unused`, with one line on stderr: Slack now decides from the cluster
    state, and that file is never read again. Another process may have done it first."""
    path = os.path.join(state_dir, RETIRED_STATE_FILE)
    if not os.path.exists(path):
        return
    target = path + ".unused"
    try:
        os.replace(path, target)
    except OSError:
        return
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(OSError):
            os.replace(path + suffix, target + suffix)
    log.warning(
        "slack-state.db is no longer used: Slack decides from the cluster state;"
        " renamed, delete it when you like",
        renamed=target,
    )


def retry_after_seconds(value: str | None) -> float:
    """Seconds a `Retry-After` header asks for (seconds or an HTTP date); 1 when absent."""
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            from email.utils import parsedate_to_datetime

            try:
                return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
            except (TypeError, ValueError):
                pass
    return 1.0
