"""`slack-all`, `slack-warning`, `slack-critical`: results as Slack messages through an
incoming webhook. One output behind three filter stages, all reading `[outputs.slack]`.

Per batch: each record is judged (`notify = "every"`: every record is a message;
`"change"`: new problems, changes, recoveries and due repeats only, see `notify.py`). With
grouping on (`group_wait` above 0, see `slack_groups.py`) what speaks joins its group of
check and status and is delivered at once; the groups' messages are posted as they fall due
(`flush_due`, at the start of each batch and about once a second from the shipper). When
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

import sqlite3
import time
from urllib.parse import urlsplit

from accre_monitor import log
from accre_monitor.codec import encode
from accre_monitor.outcome import DELIVERED, REJECTED, RETRY, Outcome, StoreUnavailable
from accre_monitor.outputs.base import describe_error
from accre_monitor.outputs.notify import EVERY, SENT, SPEAKS, STALE, NotifyState, judge
from accre_monitor.outputs.remote import RemoteOutput
from accre_monitor.outputs.slack_format import Notice, digest, message
from accre_monitor.outputs.slack_groups import Groups
from accre_monitor.redaction import redact_url, remember, remember_url, scrub, split_credentials
from accre_monitor.status import OK, SEVERITY, normalize_status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import urllib3

    from accre_monitor.outputs.notify import Seen
    from accre_monitor.pipeline.state import StateStore

STATE_FILE = "slack-state.db"
NOTIFY_MODES = ("every", "change")
# a 400 about the message itself: only that message is refused
PAYLOAD_ERRORS = frozenset(
    {"invalid_payload", "no_text", "invalid_attachments", "invalid_blocks", "too_many_attachments"}
)
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}
STATE_BUSY_TIMEOUT = 5.0


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
    # a newer result must not overtake an older one: change detection reads them in order
    ordered = True
    # the last status per node and check is this process's state
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
        self._state: NotifyState | None = None
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
            open_store=self._open_cluster_state,
            channel=self.channel,
            late_after=self.late_after,
            digest_threshold=self.digest_threshold,
            claim_seconds=self.timeout + 60.0,
        )

    def _open_cluster_state(self) -> StateStore:
        from accre_monitor.pipeline.state_store import open_state

        return open_state(self.state_settings, self.state_dir)

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
        """One outcome per record: judged, sent one by one or as one digest, remembered."""
        deadline = time.monotonic() + timeout
        self.flush_due(deadline=deadline)
        outcomes, notices = self.prepare_each(records)
        if notices:
            try:
                plan = self._plan(notices)
            except sqlite3.Error as exc:
                raise StoreUnavailable(
                    f"{self.name}: cannot read its notification state: {describe_error(exc)}"
                ) from None
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

    def _plan(self, notices: list[tuple[int, Notice]]) -> list[tuple[int, Notice, Seen | None]]:
        """Each notice with its verdict, and what is known of its check after it (None when
        nothing changes); later results of a check are judged against the earlier ones."""
        state = self.state()
        ids = [n.record["id"] for _, n in notices if isinstance(n.record.get("id"), str)]
        sent = state.sent(self.name, ids)
        known = (
            state.load(self.name, (n.key for _, n in notices)) if self.notify == "change" else {}
        )
        plan: list[tuple[int, Notice, Seen | None]] = []
        for index, notice in notices:
            after = None
            if notice.record.get("id") in sent:
                notice.verdict = SENT
            elif self.notify == "every":
                notice.verdict = EVERY
            else:
                seen = known.get(notice.key)
                notice.verdict, after = judge(
                    seen, notice.status, notice.taken, self.level, self.renotify
                )
                if seen is not None:
                    notice.before, notice.since = seen.status, seen.since
                if notice.verdict == STALE:
                    after = None
                else:
                    known[notice.key] = after
            plan.append((index, notice, after))
        return plan

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
        """Fill in the outcomes; remember what was sent and the statuses now known.

        A quiet result of a check whose earlier message in this batch failed waits too:
        it was judged as if that message had gone out."""
        failed: dict[tuple[str, str], Outcome] = {}
        known: dict[tuple[str, str], Seen] = {}
        sent_ids: list[str] = []
        for index, notice, after in plan:
            if notice.verdict in SPEAKS:
                outcome = sent[index]
                if outcome.state == DELIVERED:
                    sent_ids.append(notice.record["id"])
                else:  # not said: what follows was judged as if it had been
                    if outcome.state == RETRY:  # it comes back: the rest of its check waits
                        failed.setdefault(notice.key, outcome)
                    after = None
            elif notice.key in failed:
                first = failed[notice.key]
                outcome = Outcome(
                    RETRY, "waits for an earlier result of its check to be sent", first.retry_after
                )
                after = None
            else:  # quiet, stale, or sent before (a redelivery: never posted twice)
                outcome = Outcome(DELIVERED, duplicate=notice.verdict == SENT)
            if after is not None:
                known[notice.key] = after
            outcomes[index] = outcome
        if not known and not sent_ids:
            return
        try:
            self.state().save(self.name, known, sent_ids)
        except sqlite3.Error as exc:  # the messages went out: never send them again
            log.warning(
                "could not remember what was sent to Slack",
                output=self.name,
                error=describe_error(exc),
            )

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

    def state(self) -> NotifyState:
        """The notification state: `slack-state.db` beside the spool, or in memory."""
        if self._state is None:
            import os

            # "" is the current directory (a spool path without one), as for the spool
            path = os.path.join(self.state_dir, STATE_FILE) if self.state_dir is not None else None
            self._state = NotifyState(path, busy_timeout=STATE_BUSY_TIMEOUT)
        return self._state

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
        state, self._state = self._state, None
        if state is not None:
            state.close()
        if self._groups is not None:
            self._groups.close()


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
