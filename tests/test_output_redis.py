"""The `redis` output against a real redis-server: layout, idempotency, ordering, outages."""

from __future__ import annotations

import itertools
import json
import time

import pytest
from servers import RedisServer, missing_reason

from accre_monitor.dates import epoch_micros
from accre_monitor.errors import ConfigError
from accre_monitor.outcome import DELIVERED, REJECTED, Outcome, StoreUnavailable
from accre_monitor.outputs import create_output
from accre_monitor.record import build_record
from accre_monitor.redaction import redact_url

redis = pytest.importorskip("redis")
from accre_monitor.outputs import redis as redis_output  # noqa: E402 - needs redis-py

pytestmark = pytest.mark.integration

TIMEOUT = 1.0
_prefixes = itertools.count()


def need_redis() -> None:
    reason = missing_reason("redis")
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def server():
    need_redis()
    with RedisServer() as srv:
        yield srv


@pytest.fixture
def outage_server():
    """A server of its own, for the tests that stop, pause or restart it."""
    need_redis()
    with RedisServer() as srv:
        yield srv


@pytest.fixture
def client(server):
    with redis.Redis.from_url(server.url, decode_responses=True) as c:
        yield c


@pytest.fixture
def prefix():
    return f"test{next(_prefixes)}"


@pytest.fixture
def make_output(server, prefix):
    made = []

    def make(srv=None, **settings):
        settings = {"url": (srv or server).url, "prefix": prefix, **settings}
        output = create_output("redis", settings)
        made.append(output)
        return output

    yield make
    for output in made:
        output.close()


def record(name="disk", node="web01", date="2026-03-01T10:00:00.000+00:00", **extra):
    rec = build_record(name, "OK", {"/": 42}, runtime=0.01, node=node, date=date)
    rec.update(extra)
    return rec


def history(client, key):
    return [json.loads(fields["record"]) for _id, fields in client.xrange(key)]


def latest(client, prefix, node, name):
    return json.loads(client.hget(f"{prefix}:latest:{node}:{name}", "record"))


def test_the_output_is_registered_under_the_name_redis(server):
    output = create_output("redis", {"url": server.url})
    assert isinstance(output, redis_output.RedisOutput)
    assert output.synchronous is False


def test_a_batch_is_stored_as_latest_per_check_and_once_in_the_history(make_output, client, prefix):
    old = record(date="2026-03-01T10:00:00.000+00:00", status="WARNING")
    new = record(date="2026-03-01T10:01:00.000+00:00", status="CRITICAL")
    other = record(name="load", node="web02")
    outcomes = make_output().deliver([old, new, other], TIMEOUT)
    assert outcomes == [Outcome(DELIVERED)] * 3
    assert latest(client, prefix, "web01", "disk") == new
    assert latest(client, prefix, "web02", "load") == other
    assert client.hget(f"{prefix}:latest:web01:disk", "status") == "CRITICAL"
    assert history(client, f"{prefix}:history") == [old, new, other]


def test_delivering_the_same_batch_again_stores_nothing_twice(make_output, client, prefix):
    batch = [record(date=f"2026-03-01T10:0{i}:00+00:00") for i in range(5)]
    output = make_output()
    assert output.deliver(batch, TIMEOUT) == [Outcome(DELIVERED)] * 5
    assert output.deliver(batch, TIMEOUT) == [Outcome(DELIVERED)] * 5
    assert [r["id"] for r in history(client, f"{prefix}:history")] == [r["id"] for r in batch]
    assert 0 < client.ttl(f"{prefix}:seen:{batch[0]['id']}") <= 7 * 86400


def test_an_older_record_replayed_after_a_newer_one_does_not_replace_latest(
    make_output, client, prefix
):
    output = make_output()
    newer = record(date="2026-03-01T12:00:00+00:00")
    older = record(date="2026-03-01T11:00:00+00:00")
    output.deliver([newer], TIMEOUT)
    assert output.deliver([older], TIMEOUT) == [Outcome(DELIVERED)]
    assert latest(client, prefix, "web01", "disk") == newer
    assert history(client, f"{prefix}:history") == [newer, older]


def test_dates_with_different_utc_offsets_are_compared_as_instants(make_output, client, prefix):
    # 09:00 UTC is newer than 10:30+02:00 (08:30 UTC) although it sorts first as text
    newer = record(date="2026-03-01T09:00:00+00:00")
    older = record(date="2026-03-01T10:30:00+02:00")
    make_output().deliver([newer, older], TIMEOUT)
    assert latest(client, prefix, "web01", "disk") == newer


def test_the_history_is_trimmed_to_about_history_length(make_output, client, prefix):
    batch = [record(date=f"2026-03-01T10:00:{i % 60:02d}+00:00") for i in range(400)]
    assert set(o.state for o in make_output(history_length=50).deliver(batch, 5)) == {DELIVERED}
    # MAXLEN ~ trims whole stream nodes (100 entries each by default)
    assert 50 <= client.xlen(f"{prefix}:history") <= 150


def test_a_check_history_holds_only_that_check_when_enabled(make_output, client, prefix):
    disk = [record(date=f"2026-03-01T10:0{i}:00+00:00") for i in range(3)]
    load = [record(name="load")]
    make_output(check_history_length=100).deliver(disk + load, TIMEOUT)
    assert history(client, f"{prefix}:history:web01:disk") == disk
    assert history(client, f"{prefix}:history:web01:load") == load


def test_there_is_no_check_history_by_default(make_output, client, prefix):
    make_output().deliver([record()], TIMEOUT)
    assert not client.exists(f"{prefix}:history:web01:disk")
    assert client.xlen(f"{prefix}:history") == 1


def test_a_history_length_of_zero_turns_the_global_stream_off(make_output, client, prefix):
    make_output(history_length=0).deliver([record()], TIMEOUT)
    assert not client.exists(f"{prefix}:history")
    assert client.exists(f"{prefix}:latest:web01:disk")


def next_messages(pubsub, wait=0.5):
    messages = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
        if message:
            messages.append(json.loads(message["data"]))
    return messages


def test_a_subscriber_receives_each_new_record_once(make_output, client, prefix):
    with client.pubsub() as pubsub:
        pubsub.subscribe(f"{prefix}:results")
        assert pubsub.get_message(timeout=1)["type"] == "subscribe"
        batch = [record(), record(name="load")]
        output = make_output()
        output.deliver(batch, TIMEOUT)
        output.deliver(batch, TIMEOUT)  # a redelivery publishes nothing
        assert next_messages(pubsub) == batch


def test_an_empty_channel_turns_publishing_off(make_output, client):
    with client.pubsub() as pubsub:
        pubsub.psubscribe("*")  # every channel but the empty one
        pubsub.subscribe("")
        assert pubsub.get_message(timeout=1)["type"] == "psubscribe"
        assert pubsub.get_message(timeout=1)["type"] == "subscribe"
        make_output(channel="").deliver([record()], TIMEOUT)
        assert next_messages(pubsub) == []


def test_the_channel_can_be_chosen(make_output, client):
    with client.pubsub() as pubsub:
        pubsub.subscribe("site-results")
        assert pubsub.get_message(timeout=1)["type"] == "subscribe"
        rec = record()
        make_output(channel="site-results").deliver([rec], TIMEOUT)
        assert next_messages(pubsub) == [rec]


def test_an_unusable_record_is_rejected_and_the_rest_delivered(make_output, client, prefix):
    good = record()
    outcomes = make_output().deliver([record(date="yesterday"), good, {"id": "x"}], TIMEOUT)
    assert [o.state for o in outcomes] == [REJECTED, DELIVERED, REJECTED]
    assert "ISO 8601" in outcomes[0].error
    assert history(client, f"{prefix}:history") == [good]


def test_an_integer_too_large_for_orjson_is_stored_through_the_stdlib(make_output, client, prefix):
    huge = record(data={"bytes": 2**70})
    assert make_output().deliver([huge], TIMEOUT) == [Outcome(DELIVERED)]
    assert latest(client, prefix, "web01", "disk")["data"]["bytes"] == 2**70


def test_a_key_of_the_wrong_type_rejects_only_its_record_and_writes_nothing_for_it(
    make_output, client, prefix
):
    client.set(f"{prefix}:latest:web01:disk", "not a hash")
    blocked, free = record(), record(name="load")
    output = make_output()
    outcomes = output.deliver([blocked, free], TIMEOUT)
    assert outcomes[0].state == REJECTED and "WRONGTYPE" in outcomes[0].error
    assert outcomes[1] == Outcome(DELIVERED)
    assert history(client, f"{prefix}:history") == [free]
    # nothing half-written: once the key is fixed the same record is stored, not skipped
    client.delete(f"{prefix}:latest:web01:disk")
    assert output.deliver([blocked], TIMEOUT) == [Outcome(DELIVERED)]
    assert latest(client, prefix, "web01", "disk") == blocked


def test_the_script_is_loaded_again_after_the_server_forgot_it(make_output, client, prefix):
    output = make_output()
    output.deliver([record()], TIMEOUT)
    client.script_flush()
    assert output.deliver([record(), record()], TIMEOUT) == [Outcome(DELIVERED)] * 2
    assert client.xlen(f"{prefix}:history") == 3


# -- the Lua script alone ------------------------------------------------------------------


def run_script(client, output, rec):
    keys, args = output.script_call(rec)
    return client.eval(redis_output.STORE_SCRIPT, len(keys), *keys, *args)


def test_the_script_says_new_redelivered_or_older_than_latest(make_output, client):
    output = make_output()
    newer = record(date="2026-03-01T12:00:00+00:00")
    older = record(date="2026-03-01T11:00:00+00:00")
    assert run_script(client, output, newer) == 1  # stored, now the latest
    assert run_script(client, output, newer) == 0  # the same id again: nothing done
    assert run_script(client, output, older) == 2  # stored in history, latest kept
    assert run_script(client, output, older) == 0


def test_the_script_replaces_latest_with_a_record_of_the_same_date(make_output, client, prefix):
    output = make_output()
    first, second = record(), record(status="WARNING")
    assert first["date"] == second["date"]
    run_script(client, output, first)
    assert run_script(client, output, second) == 1
    assert latest(client, prefix, "web01", "disk")["id"] == second["id"]


def test_the_script_marks_an_id_seen_only_after_storing_it(make_output, client, prefix):
    output = make_output()
    rec = record()
    client.set(f"{prefix}:history", "not a stream")
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        run_script(client, output, rec)
    assert not client.exists(f"{prefix}:seen:{rec['id']}")
    assert not client.exists(f"{prefix}:latest:web01:disk")


def test_dates_become_epoch_microseconds():
    assert epoch_micros("1970-01-01T00:00:01.5+00:00") == 1_500_000
    assert epoch_micros("1970-01-01T01:00:00+01:00") == 0
    assert epoch_micros("1970-01-01T00:00:00Z") == 0
    assert epoch_micros("1970-01-01T00:00:02") == 2_000_000  # no offset: UTC


# -- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"url": "http://127.0.0.1:6379"}, "redis://, rediss:// or unix://"),
        ({"history_length": -1}, "history_length must be an integer from 0 to 100000000, not -1"),
        ({"seen_ttl": 0}, "seen_ttl must be an integer from 1 to 31536000, not 0"),
        ({"timeout": "2"}, "timeout must be a number of seconds above 0"),
        ({"tls_verify": "no"}, "tls_verify must be true or false"),
        ({"tls_ca_file": "/etc/hostname"}, "tls_ca_file needs a rediss:// url"),
        ({"url": "rediss://h", "tls_ca_file": "/nonexistent.pem"}, "must name a readable file"),
        ({"prefix": ""}, "prefix must be a non-empty string"),
    ],
)
def test_bad_settings_raise_one_clear_config_error(settings, message):
    with pytest.raises(ConfigError, match=message):
        create_output("redis", settings)


def test_a_password_in_the_url_is_redacted():
    assert redact_url("redis://u:hunter2@h:1/0") == "redis://u:***@h:1/0"
    assert redact_url("redis://:hunter2@h:1/0") == "redis://:***@h:1/0"
    assert redact_url("redis://h:1/0") == "redis://h:1/0"


def test_a_unix_socket_url_is_used_as_a_path():
    output = create_output("redis", {"url": "unix:///nonexistent/redis.sock"})
    with pytest.raises(StoreUnavailable, match="/nonexistent/redis.sock"):
        output.deliver([record()], TIMEOUT)


def test_the_default_channel_follows_the_prefix():
    assert create_output("redis", {"prefix": "site"}).channel == "site:results"


# -- outages -------------------------------------------------------------------------------


def timed_failure(output, records, timeout=TIMEOUT):
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        output.deliver(records, timeout)
    return time.monotonic() - started, str(caught.value)


def test_a_stopped_server_makes_deliver_raise_at_once(make_output, outage_server):
    output = make_output(outage_server)
    output.deliver([record()], TIMEOUT)
    outage_server.stop()
    elapsed, message = timed_failure(output, [record()])
    assert elapsed < TIMEOUT
    assert "ConnectionError" in message


def test_a_paused_server_makes_deliver_raise_within_the_timeout(make_output, outage_server):
    pooled = make_output(outage_server)
    pooled.deliver([record()], TIMEOUT)  # keep a connection open across the pause
    fresh = make_output(outage_server)
    with outage_server.paused_for():
        for output in (pooled, fresh):
            elapsed, message = timed_failure(output, [record()])
            assert elapsed < TIMEOUT + 1
            assert "Timeout" in message


def test_delivery_works_again_after_a_restart(make_output, outage_server, prefix):
    output = make_output(outage_server)
    before = [record(date="2026-03-01T10:00:00+00:00")]
    output.deliver(before, TIMEOUT)
    outage_server.restart()
    after = [record(date="2026-03-01T10:01:00+00:00")]
    assert output.deliver(before + after, TIMEOUT) == [Outcome(DELIVERED)] * 2
    with redis.Redis.from_url(outage_server.url, decode_responses=True) as c:
        assert history(c, f"{prefix}:history") == before + after  # the data survived
        assert latest(c, prefix, "web01", "disk") == after[0]


@pytest.fixture
def password_server():
    need_redis()
    with RedisServer(password="right-horse-battery") as srv:
        yield srv


def test_a_wrong_password_raises_without_showing_it(make_output, password_server):
    url = f"redis://:wrong-horse-battery@127.0.0.1:{password_server.port}/0"
    elapsed, message = timed_failure(make_output(url=url), [record()])
    assert "wrong-horse-battery" not in message
    assert "***" in message


def test_the_password_can_come_from_the_environment(make_output, password_server, monkeypatch):
    monkeypatch.setenv("ACCRE_MONITOR_REDIS_PASSWORD", "right-horse-battery")
    url = f"redis://127.0.0.1:{password_server.port}/0"
    assert make_output(url=url).deliver([record()], TIMEOUT) == [Outcome(DELIVERED)]


def test_many_different_timeouts_do_not_pile_up_connections(make_output, client):
    output = make_output()
    before = client.info("clients")["connected_clients"]
    for tenths in range(10, 30):
        assert output.deliver([record()], tenths / 10) == [Outcome(DELIVERED)]
    assert client.info("clients")["connected_clients"] - before <= redis_output.MAX_POOLS
