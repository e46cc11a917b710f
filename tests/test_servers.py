"""The test servers themselves: each real server and the fake Elasticsearch work as promised."""

from __future__ import annotations

import base64
import json
import socket
import time
import urllib.error
import urllib.request

import pytest
from es_server import FakeElasticsearch
from servers import (
    CouchServer,
    NagiosServer,
    NscaServer,
    RabbitServer,
    RedisServer,
    ServerError,
    connected_to,
    free_port,
    missing_reason,
    wait_until_connected,
)

pytestmark = pytest.mark.integration


def need(kind: str) -> None:
    reason = missing_reason(kind)
    if reason:
        pytest.skip(reason)


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


# --------------------------------------------------------------------------------------------
# helpers


def test_free_port_is_bindable():
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_connected_to_sees_a_process_connection_to_a_port_only_while_it_is_open():
    import os

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)  # never accepted: established all the same, as with a paused server
        port = server.getsockname()[1]
        assert not connected_to(os.getpid(), port)
        with socket.create_connection(("127.0.0.1", port)):
            assert wait_until_connected(os.getpid(), port, timeout=5)
            assert not connected_to(os.getpid(), free_port())
        assert not connected_to(os.getpid(), port)


def test_missing_reason_names_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("ACCRE_MONITOR_POUCHDB", str(tmp_path / "no-such-pouchdb-server"))
    reason = missing_reason("couch")
    assert reason and "pouchdb-server" in reason and "install-servers" in reason
    with pytest.raises(ServerError, match="pouchdb-server"):
        CouchServer()
    with pytest.raises(ValueError):
        missing_reason("oracle")


# --------------------------------------------------------------------------------------------
# Redis


@pytest.fixture
def redis_server():
    need("redis")
    with RedisServer() as srv:
        yield srv


def redis_client(srv: RedisServer, timeout: float = 2.0):
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis(
        host=srv.host,
        port=srv.port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


def test_redis_answers_and_keeps_data_over_restart(redis_server):
    client = redis_client(redis_server)
    assert client.ping()
    assert redis_server.start_seconds < 5
    client.rpush("queue", "a", "b")
    port = redis_server.port
    redis_server.restart()
    assert redis_server.port == port
    assert redis_client(redis_server).lrange("queue", 0, -1) == [b"a", b"b"]


def test_redis_stopped_refuses(redis_server):
    import redis

    redis_server.stop()
    assert redis_server.stop_seconds < 5
    assert refused(redis_server.port)
    with pytest.raises(redis.exceptions.ConnectionError):
        redis_client(redis_server).ping()


def test_redis_paused_times_out(redis_server):
    import redis

    client = redis_client(redis_server, timeout=0.5)
    with redis_server.paused_for():
        t0 = time.monotonic()
        with pytest.raises(redis.exceptions.TimeoutError):
            client.ping()
        assert time.monotonic() - t0 < 3
    assert redis_client(redis_server).ping()


def test_redis_password():
    need("redis")
    import redis

    with RedisServer(password="s3cret") as srv:
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis_client(srv).ping()
        assert redis.Redis.from_url(srv.url, socket_timeout=2).ping()


# --------------------------------------------------------------------------------------------
# CouchDB (pouchdb-server)


@pytest.fixture
def couch_server():
    need("couch")
    with CouchServer() as srv:
        yield srv


def test_couch_answers_and_keeps_data_over_restart(couch_server):
    status, body = couch_server.request("GET", "/")
    assert status == 200 and "version" in body
    assert couch_server.request("PUT", "/results")[0] == 201
    assert couch_server.request("PUT", "/results")[0] == 412
    status, body = couch_server.request("PUT", "/results/doc1", {"value": 42})
    assert status == 201 and body["ok"]
    assert couch_server.request("PUT", "/results/doc1", {"value": 43})[0] == 409
    couch_server.restart()
    status, body = couch_server.request("GET", "/results/doc1")
    assert status == 200 and body["value"] == 42


def test_couch_stopped_refuses(couch_server):
    couch_server.stop()
    assert refused(couch_server.port)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(couch_server.url + "/", timeout=2)


def test_couch_paused_times_out(couch_server):
    with couch_server.paused_for():
        t0 = time.monotonic()
        with pytest.raises((TimeoutError, urllib.error.URLError)):
            urllib.request.urlopen(couch_server.url + "/", timeout=0.5)
        assert time.monotonic() - t0 < 3
    assert couch_server.request("GET", "/")[0] == 200


def test_couch_admin_credentials():
    need("couch")
    with CouchServer(admins={"adm": "pw"}) as srv:
        assert srv.request("PUT", "/db")[0] == 201  # with srv.auth
        assert srv.request("GET", "/db", auth=("adm", "wrong"))[0] == 401


# --------------------------------------------------------------------------------------------
# RabbitMQ


@pytest.fixture(scope="module")
def rabbit_server():
    need("rabbit")
    with RabbitServer() as srv:
        yield srv


def pika_connect(srv: RabbitServer, timeout: float = 5):
    import pika

    params = pika.URLParameters(srv.url)
    params.socket_timeout = timeout
    params.stack_timeout = timeout
    params.blocked_connection_timeout = timeout
    params.connection_attempts = 1
    return pika.BlockingConnection(params)


def test_rabbit_answers(rabbit_server):
    assert rabbit_server.start_seconds < 30
    assert not refused(rabbit_server.port)
    conn = pika_connect(rabbit_server)
    try:
        ch = conn.channel()
        ch.queue_declare("check-results", durable=True)
        ch.confirm_delivery()
        ch.basic_publish("", "check-results", b"hello")
        method, _, body = ch.basic_get("check-results", auto_ack=True)
        assert body == b"hello"
    finally:
        conn.close()


def test_rabbit_durable_message_survives_restart_and_outage_refuses(rabbit_server):
    import pika
    import pika.exceptions

    conn = pika_connect(rabbit_server)
    ch = conn.channel()
    ch.queue_declare("durable-q", durable=True)
    ch.confirm_delivery()
    ch.basic_publish("", "durable-q", b"kept", properties=pika.BasicProperties(delivery_mode=2))
    conn.close()

    rabbit_server.stop()
    assert rabbit_server.stop_seconds < 20
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika_connect(rabbit_server, timeout=2)
    rabbit_server.start()

    conn = pika_connect(rabbit_server)
    try:
        method, _, body = conn.channel().basic_get("durable-q", auto_ack=True)
        assert body == b"kept"
    finally:
        conn.close()


def test_rabbit_paused_times_out(rabbit_server):
    # Beware: a broker that accepts but never answers makes pika raise
    # AMQPConnectorStackTimeout, which is NOT an AMQPConnectionError.
    from pika.adapters.utils.connection_workflow import AMQPConnectorStackTimeout

    with rabbit_server.paused_for():
        t0 = time.monotonic()
        with pytest.raises(AMQPConnectorStackTimeout):
            pika_connect(rabbit_server, timeout=1)
        assert time.monotonic() - t0 < 5
    pika_connect(rabbit_server).close()


# --------------------------------------------------------------------------------------------
# NSCA


def test_nsca_receives_from_send_nsca():
    need("nsca")
    need("send_nsca")
    with NscaServer() as srv:
        result = srv.send_nsca("web01\tdisk\t1\tWARNING - disk 85% | used=85%\n")
        assert result.returncode == 0, result.stderr + result.stdout
        got = srv.wait_for_results(1)
        assert len(got) == 1
        ts, host, svc, code, output = got[0]
        assert (host, svc, code, output) == ("web01", "disk", 1, "WARNING - disk 85% | used=85%")
        assert abs(ts - time.time()) < 60

        srv.restart()  # the command file stays
        assert len(srv.results()) == 1
        srv.stop()
        assert refused(srv.port)


def test_nsca_xor_password_and_silent_drop_on_wrong_password():
    need("nsca")
    need("send_nsca")
    with NscaServer(password="topsecret") as srv:
        assert srv.send_nsca("h1\tload\t0\tOK\n").returncode == 0
        assert [r[1:] for r in srv.wait_for_results(1)] == [("h1", "load", 0, "OK")]

        wrong = srv.dir / "wrong.cfg"
        wrong.write_text("encryption_method=1\npassword=nottheone\n")
        # The daemon takes the packet and drops it silently: send_nsca reports success.
        assert srv.send_nsca("h2\tload\t2\tCRITICAL\n", config=wrong).returncode == 0
        srv.flush()  # every connection handled: a result it kept would be in by now
        assert [r[1] for r in srv.results()] == ["h1"]


def test_nsca_paused_accepts_but_never_answers():
    need("nsca")
    with (
        NscaServer() as srv,
        srv.paused_for(),
        socket.create_connection((srv.host, srv.port), timeout=1) as s,
    ):
        s.settimeout(0.5)
        with pytest.raises(TimeoutError):
            s.recv(132)  # the IV never comes


def test_nsca_flush_waits_until_every_connection_was_read():
    from accre_monitor.outputs.nsca_packet import INIT_SIZE, data_packet

    need("nsca")
    with NscaServer() as srv:
        with socket.create_connection((srv.host, srv.port), timeout=5) as s:
            init = b""
            while len(init) < INIT_SIZE:
                init += s.recv(INIT_SIZE)
            stamp = int(time.time())
            s.sendall(b"".join(data_packet(stamp, 0, b"h", b"svc", b"r", 4096) for _ in range(200)))
        srv.flush()
        assert len(srv.results()) == 200
        with (
            srv.paused_for(),
            socket.create_connection((srv.host, srv.port)),
            pytest.raises(ServerError, match="still holds connections"),
        ):
            srv.flush(timeout=0.3)


# --------------------------------------------------------------------------------------------
# Nagios 4


def test_nagios_takes_a_passive_result_from_nsca_into_its_status_file():
    need("nagios")
    need("nsca")
    need("send_nsca")
    with NagiosServer(services={"web01": ["disk", "load"]}) as nagios:
        assert nagios.verify().returncode == 0
        assert nagios.service("web01", "disk")["current_state"] == "0"
        with NscaServer(command_file=nagios.command_file) as srv:
            sent = srv.send_nsca("web01\tdisk\t2\tDISK CRITICAL - full | used=99%\n")
            assert sent.returncode == 0, sent.stdout + sent.stderr
            fields = nagios.wait_for_service("web01", "disk", lambda f: f["current_state"] != "0")
        assert fields["current_state"] == "2"
        assert fields["plugin_output"] == "DISK CRITICAL - full"
        assert fields["performance_data"] == "used=99%"
        assert nagios.service("web01", "load")["current_state"] == "0"
        nagios.stop()
        assert not nagios.status_file.exists()
        nagios.start()
        assert nagios.service("web01", "disk") is not None


# --------------------------------------------------------------------------------------------
# the fake Elasticsearch, driven by the real elasticsearch-py 8 client


@pytest.fixture
def fake_es():
    with FakeElasticsearch() as fake:
        yield fake


def es_client(fake: FakeElasticsearch, **kw):
    from elasticsearch import Elasticsearch

    kw.setdefault("request_timeout", 5)
    kw.setdefault("max_retries", 0)
    return Elasticsearch(hosts=[fake.url], **kw)


def raw(fake, method, path, body=None, headers=None):
    req = urllib.request.Request(
        fake.url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        with e:
            return e.code, dict(e.headers), json.loads(e.read() or b"null")


def item(resp, n=0):
    return next(iter(resp["items"][n].values()))


def test_es_info_headers_and_compat(fake_es):
    es = es_client(fake_es)
    info = es.info()
    assert info["version"]["number"].startswith("8.")
    assert es.ping()
    status, headers, _ = raw(fake_es, "GET", "/")
    assert status == 200 and headers["X-Elastic-Product"] == "Elasticsearch"
    assert headers["content-type"] == "application/json"
    compat8 = "application/vnd.elasticsearch+json; compatible-with=8"
    _, headers, _ = raw(fake_es, "GET", "/", headers={"Accept": compat8})
    assert headers["content-type"] == "application/vnd.elasticsearch+json;compatible-with=8"
    compat9 = "application/vnd.elasticsearch+json; compatible-with=9"
    status, headers, body = raw(
        fake_es, "GET", "/", headers={"Accept": compat9, "Content-Type": compat9}
    )
    assert status == 400 and body["error"]["type"] == "media_type_header_exception"
    assert headers["X-Elastic-Product"] == "Elasticsearch"


def test_es_bulk_create_twice_conflicts(fake_es):
    es = es_client(fake_es)
    ops = [
        {"create": {"_index": "checks-2024", "_id": "a"}},
        {"check": "load", "value": 0.5},
        {"create": {"_index": "checks-2024", "_id": "b"}},
        {"check": "disk", "value": 80},
    ]
    first = es.bulk(operations=ops)
    assert first["errors"] is False
    assert [item(first, i)["status"] for i in range(2)] == [201, 201]
    assert item(first)["result"] == "created" and item(first)["_index"] == "checks-2024"
    second = es.bulk(operations=ops)
    assert second["errors"] is True
    assert [item(second, i)["status"] for i in range(2)] == [409, 409]
    assert item(second)["error"]["type"] == "version_conflict_engine_exception"
    assert fake_es.doc_count("checks-*") == 2
    assert es.get(index="checks-2024", id="a")["_source"] == {"check": "load", "value": 0.5}
    # index (not create) overwrites
    resp = es.bulk(operations=[{"index": {"_index": "checks-2024", "_id": "a"}}, {"value": 1}])
    assert item(resp)["status"] == 200 and item(resp)["result"] == "updated"
    assert item(resp)["_version"] == 2


def test_es_conflicting_mapping_gives_400_item(fake_es):
    es = es_client(fake_es)
    resp = es.bulk(
        operations=[
            {"index": {"_index": "m1"}},
            {"details": "plain text", "n": 1},
            {"index": {"_index": "m1"}},
            {"details": {"mount": "/", "used": 85}},
            {"index": {"_index": "m1"}},
            {"n": "not a number"},
            {"index": {"_index": "m1"}},
            {"n": 2.5, "details": "more text"},
        ]
    )
    assert resp["errors"] is True
    assert [item(resp, i)["status"] for i in range(4)] == [201, 400, 400, 201]
    assert item(resp, 1)["error"]["type"] == "document_parsing_exception"  # ES >= 8.8
    assert "[details]" in item(resp, 1)["error"]["reason"]
    assert fake_es.mapping("m1")["properties"]["n"] == {"type": "long"}
    assert fake_es.doc_count("m1") == 2


def test_es_older_version_says_mapper_parsing_exception():
    with FakeElasticsearch(version="8.7.1") as fake:
        es = es_client(fake)
        resp = es.bulk(
            operations=[
                {"index": {"_index": "m"}},
                {"a": {"b": 1}},
                {"index": {"_index": "m"}},
                {"a": "x"},
            ]  # fmt: skip
        )
        assert item(resp, 1)["status"] == 400
        assert item(resp, 1)["error"]["type"] == "mapper_parsing_exception"
        assert "object mapping for [a]" in item(resp, 1)["error"]["reason"]


def test_es_template_prevents_conflicts(fake_es):
    es = es_client(fake_es)
    assert not es.indices.exists_index_template(name="accre")
    es.indices.put_index_template(
        name="accre",
        index_patterns=["accre-*"],
        priority=200,
        template={
            "mappings": {
                "properties": {
                    "@timestamp": {"type": "date"},
                    "details": {"type": "flattened"},
                    "raw": {"type": "object", "enabled": False},
                    "extra": {"enabled": False},
                }
            }
        },
    )
    assert es.indices.exists_index_template(name="accre")
    got = es.indices.get_index_template(name="accre")["index_templates"][0]
    assert got["index_template"]["index_patterns"] == ["accre-*"]
    docs = [
        {"@timestamp": "2024-05-01T10:00:00Z", "details": {"t": "x"}, "raw": 1, "extra": [1, 2]},
        {"@timestamp": "2024-05-01T10:00:01.5+02:00", "details": {"a": {"b": 1}}, "raw": {"x": 1}},
        {"@timestamp": 1714557600000, "details": {"l": [1, "x"]}, "raw": "s", "extra": {"k": "v"}},
        {"@timestamp": "not a date"},
        {"@timestamp": 1714557600000, "details": "a scalar in a flattened field"},
    ]
    ops = []
    for doc in docs:
        ops += [{"index": {"_index": "accre-2024"}}, doc]
    resp = es.bulk(operations=ops)
    assert [item(resp, i)["status"] for i in range(5)] == [201, 201, 201, 400, 400]
    assert "date" in item(resp, 3)["error"]["caused_by"]["reason"]
    # Same priority and overlapping patterns are refused, as in ES.
    from elasticsearch import BadRequestError

    with pytest.raises(BadRequestError):
        es.indices.put_index_template(name="other", index_patterns=["accre-2*"], priority=200)


def test_es_template_applies_only_to_indices_created_after_it(fake_es):
    es = es_client(fake_es)
    es.bulk(operations=[{"index": {"_index": "late-1"}}, {"details": "text"}])
    es.indices.put_index_template(
        name="late", index_patterns=["late-*"],
        template={"mappings": {"properties": {"details": {"type": "flattened"}}}},
    )  # fmt: skip
    resp = es.bulk(
        operations=[
            {"index": {"_index": "late-1"}},
            {"details": {"a": 1}},
            {"index": {"_index": "late-2"}},
            {"details": {"a": 1}},
        ]
    )
    assert [item(resp, i)["status"] for i in range(2)] == [400, 201]


def test_es_builtin_data_stream_templates(fake_es):
    es = es_client(fake_es)
    resp = es.bulk(
        operations=[
            {"index": {"_index": "metrics-accre-default"}},
            {"@timestamp": "2024-01-01T00:00:00Z", "v": 1},
            {"create": {"_index": "metrics-accre-default"}},
            {"@timestamp": "2024-01-01T00:00:00Z", "v": 1},
        ]
    )
    assert [item(resp, i)["status"] for i in range(2)] == [400, 201]
    assert item(resp, 1)["_index"].startswith(".ds-metrics-accre-default-")


def test_es_bad_index_name_and_bulk_framing(fake_es):
    from elasticsearch import BadRequestError

    es = es_client(fake_es)
    resp = es.bulk(operations=[{"index": {"_index": "Node01"}}, {"a": 1}])
    assert item(resp)["status"] == 400
    assert item(resp)["error"]["type"] == "invalid_index_name_exception"
    # The client always ends NDJSON with a newline; ES refuses a body without one.
    req = urllib.request.Request(
        fake_es.url + "/_bulk",
        data=b'{"index": {"_index": "x"}}\n{"a": 1}',
        method="POST",
        headers={"Content-Type": "application/x-ndjson"},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    with err.value:
        assert err.value.code == 400
        assert b"terminated by a newline" in err.value.read()
    with pytest.raises(BadRequestError):
        es.bulk(operations=[{"explode": {"_index": "x"}}, {"a": 1}])


def test_es_fail_next_whole_request(fake_es):
    from elasticsearch import ApiError

    es = es_client(fake_es)
    ops = [{"index": {"_index": "f"}}, {"a": 1}]
    fake_es.fail_next(1, status=429)
    with pytest.raises(ApiError) as err:
        es.bulk(operations=ops)
    assert err.value.meta.status == 429
    assert err.value.meta.headers["X-Elastic-Product"] == "Elasticsearch"
    assert fake_es.doc_count("f") == 0
    assert es.bulk(operations=ops)["errors"] is False

    # The client retries 429/502/503/504 by itself (max_retries=3, no backoff) ...
    fake_es.fail_next(2, status=503, path="_bulk")
    before = fake_es.request_count("_bulk")
    assert es_client(fake_es, max_retries=3).bulk(operations=ops)["errors"] is False
    assert fake_es.request_count("_bulk") - before == 3
    # ... but not 500.
    fake_es.fail_next(1, status=500)
    with pytest.raises(ApiError) as err:
        es_client(fake_es, max_retries=3).bulk(operations=ops)
    assert err.value.meta.status == 500


def test_es_fail_items(fake_es):
    es = es_client(fake_es)
    fake_es.fail_items(1, status=429)
    resp = es.bulk(operations=[{"index": {"_index": "p"}}, {"a": 1}, {"index": {"_index": "p"}},
                               {"a": 2}])  # fmt: skip
    assert resp["errors"] is True
    assert item(resp, 0)["status"] == 429
    assert item(resp, 0)["error"]["type"] == "es_rejected_execution_exception"
    assert item(resp, 1)["status"] == 201
    assert fake_es.docs("p") == [{"a": 2}]


def test_es_hang_and_delay(fake_es):
    from elasticsearch import ConnectionTimeout

    es = es_client(fake_es, request_timeout=0.5)
    fake_es.hang(True)
    t0 = time.monotonic()
    with pytest.raises(ConnectionTimeout):
        es.info()
    assert time.monotonic() - t0 < 3
    fake_es.hang(False)
    assert es.info()["tagline"]
    fake_es.delay(0.3)
    t0 = time.monotonic()
    es.info()
    assert time.monotonic() - t0 >= 0.3
    fake_es.delay(0)


def test_es_auth():
    from elasticsearch import AuthenticationException

    with FakeElasticsearch(basic_auth=("elastic", "pw"), api_key=("id1", "key1")) as fake:
        assert es_client(fake, basic_auth=("elastic", "pw")).info()
        assert es_client(fake, api_key=("id1", "key1")).info()
        with pytest.raises(AuthenticationException):
            es_client(fake, basic_auth=("elastic", "nope")).info()
        with pytest.raises(AuthenticationException):
            es_client(fake).info()
        status, headers, body = raw(fake, "GET", "/")
        assert status == 401 and body["error"]["type"] == "security_exception"
        token = base64.b64encode(b"id1:key1").decode()
        assert raw(fake, "GET", "/", headers={"Authorization": f"ApiKey {token}"})[0] == 200


def test_es_stop_refuses_and_restart_keeps_data(fake_es):
    from elasticsearch import ConnectionError as EsConnectionError

    es = es_client(fake_es)
    es.bulk(operations=[{"index": {"_index": "keep", "_id": "1"}}, {"a": 1}])
    port = fake_es.port
    fake_es.stop()
    assert refused(port)
    with pytest.raises(EsConnectionError):
        es.info()
    fake_es.start()
    assert fake_es.port == port
    assert es_client(fake_es).get(index="keep", id="1")["_source"] == {"a": 1}


def test_es_search_and_count(fake_es):
    from elasticsearch import NotFoundError

    es = es_client(fake_es)
    ops = []
    for i in range(12):
        ops += [{"index": {"_index": f"s-{i % 2}"}}, {"host": f"node{i}", "i": i}]
    es.bulk(operations=ops)
    es.indices.refresh(index="s-*")
    resp = es.search(index="s-*")
    assert resp["hits"]["total"]["value"] == 12 and len(resp["hits"]["hits"]) == 10
    assert len(es.search(index="s-*", size=100)["hits"]["hits"]) == 12
    assert es.count(index="s-0")["count"] == 6
    hit = es.search(index="s-*", query={"term": {"host.keyword": "node3"}})["hits"]["hits"]
    assert [h["_source"]["i"] for h in hit] == [3]
    top = es.search(index="s-*", sort=[{"i": "desc"}], size=2)["hits"]["hits"]
    assert [h["_source"]["i"] for h in top] == [11, 10]
    ranged = es.count(index="s-*", query={"range": {"i": {"gte": 10}}})
    assert ranged["count"] == 2
    with pytest.raises(NotFoundError):
        es.search(index="missing")
    assert es.search(index="missing-*")["hits"]["total"]["value"] == 0
    es.indices.delete(index="s-0")
    assert fake_es.doc_count("s-*") == 6


def test_es_helpers_bulk(fake_es):
    from elasticsearch import helpers

    es = es_client(fake_es)
    actions = [{"_op_type": "create", "_index": "h", "_id": str(i), "v": i} for i in range(5)]
    ok, errors = helpers.bulk(es, actions, raise_on_error=False)
    assert (ok, errors) == (5, [])
    ok, errors = helpers.bulk(es, actions, raise_on_error=False)
    assert ok == 0 and {e["create"]["status"] for e in errors} == {409}
