"""The `couch` output against a real CouchDB API (pouchdb-server): documents, conflicts, outages."""

from __future__ import annotations

import itertools
import time

import orjson
import pytest
from servers import CouchServer, missing_reason

from accre_monitor.errors import ConfigError
from accre_monitor.outcome import DELIVERED, REJECTED, Outcome, StoreUnavailable
from accre_monitor.outputs import create_output
from accre_monitor.record import build_record

pytest.importorskip("urllib3")
from accre_monitor.outputs import couch  # noqa: E402 - needs urllib3

pytestmark = pytest.mark.integration

TIMEOUT = 1.0
_databases = itertools.count()

# a validate_doc_update function refusing some documents, one at a time
VALIDATE = """function (doc) {
  if (doc.status === 'CRITICAL') { throw({forbidden: 'no CRITICAL here'}); }
}"""


def need_couch() -> None:
    reason = missing_reason("couch")
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def server():
    need_couch()
    with CouchServer() as srv:
        yield srv


@pytest.fixture
def outage_server():
    """A server of its own, for the tests that stop, pause or restart it."""
    need_couch()
    with CouchServer() as srv:
        yield srv


@pytest.fixture
def database():
    return f"test-{next(_databases)}"


@pytest.fixture
def make_output(server, database):
    made = []

    def make(srv=None, **settings):
        settings = {"url": (srv or server).url, "database": database, **settings}
        output = create_output("couch", settings)
        made.append(output)
        return output

    yield make
    for output in made:
        output.close()


def record(name="disk", status="OK", **extra):
    rec = build_record(name, status, {"/": 42}, runtime=0.01, node="web01")
    rec.update(extra)
    return rec


def stored(srv, database, doc_id):
    status, doc = srv.request("GET", f"/{database}/{doc_id}")
    if status == 404:
        return None
    assert status == 200, doc
    doc.pop("_rev")
    return doc


def doc_count(srv, database):
    status, info = srv.request("GET", f"/{database}")
    assert status == 200, info
    return info["doc_count"]


def test_the_output_is_registered_under_the_name_couch(server):
    output = create_output("couch", {"url": server.url})
    assert isinstance(output, couch.CouchOutput)
    assert output.synchronous is False


def test_the_database_is_created_on_the_first_delivery(make_output, server, database):
    assert server.request("GET", f"/{database}")[0] == 404
    batch = [record(), record(name="load")]
    assert make_output().deliver(batch, TIMEOUT) == [Outcome(DELIVERED)] * 2
    assert doc_count(server, database) == 2


def test_each_record_is_a_document_whose_id_is_the_record_id(make_output, server, database):
    rec = record(short="DISK OK", long="all fine", data={"big": 2**70, "nested": [1, {"a": None}]})
    make_output().deliver([rec], TIMEOUT)
    assert stored(server, database, rec["id"]) == {"_id": rec["id"], **rec}


def test_redelivering_a_batch_counts_the_conflicts_as_delivered(make_output, server, database):
    batch = [record() for _ in range(4)]
    output = make_output()
    output.deliver(batch, TIMEOUT)
    fresh = record()
    assert output.deliver([*batch, fresh], TIMEOUT) == [Outcome(DELIVERED)] * 5
    assert doc_count(server, database) == 5


def test_a_batch_larger_than_batch_size_is_sent_in_parts(make_output, server, database):
    batch = [record() for _ in range(7)]
    assert make_output(batch_size=3).deliver(batch, TIMEOUT) == [Outcome(DELIVERED)] * 7
    assert doc_count(server, database) == 7


def test_the_database_is_created_again_after_it_was_deleted(make_output, server, database):
    output = make_output()
    output.deliver([record()], TIMEOUT)
    assert server.request("DELETE", f"/{database}")[0] == 200
    assert output.deliver([record()], TIMEOUT) == [Outcome(DELIVERED)]
    assert doc_count(server, database) == 1


def test_a_record_with_a_reserved_field_is_rejected_and_the_rest_delivered(
    make_output, server, database
):
    bad, good = record(_bad=1), record()
    outcomes = make_output().deliver([bad, good], TIMEOUT)
    assert outcomes[0].state == REJECTED and "'_bad'" in outcomes[0].error
    assert outcomes[1] == Outcome(DELIVERED)
    assert stored(server, database, bad["id"]) is None
    assert stored(server, database, good["id"]) is not None


def test_a_record_id_starting_with_an_underscore_is_rejected(make_output, server, database):
    outcomes = make_output().deliver([record(id="_design/evil"), record()], TIMEOUT)
    assert [o.state for o in outcomes] == [REJECTED, DELIVERED]
    assert server.request("GET", f"/{database}/_design/evil")[0] == 404


def test_a_document_the_server_refuses_is_found_by_splitting_the_batch(
    make_output, server, database, monkeypatch
):
    # let a reserved field reach the server: pouchdb-server refuses the whole request then
    monkeypatch.setattr(couch, "document", lambda rec: orjson.dumps({"_id": rec["id"], **rec}))
    batch = [record() for _ in range(5)]
    batch[3]["_bad"] = 1
    outcomes = make_output().deliver(batch, TIMEOUT)
    assert [o.state for o in outcomes] == [DELIVERED] * 3 + [REJECTED, DELIVERED]
    assert "doc_validation" in outcomes[3].error
    assert doc_count(server, database) == 4


def test_a_document_refused_by_validate_doc_update_is_rejected_alone(make_output, server, database):
    output = make_output()
    output.deliver([record()], TIMEOUT)  # creates the database
    design = {"validate_doc_update": VALIDATE}
    assert server.request("PUT", f"/{database}/_design/check", design)[0] == 201
    batch = [record(), record(status="CRITICAL"), record(status="WARNING")]
    outcomes = output.deliver(batch, TIMEOUT)
    assert outcomes == [
        Outcome(DELIVERED),
        Outcome(REJECTED, "forbidden: no CRITICAL here"),
        Outcome(DELIVERED),
    ]
    assert stored(server, database, batch[1]["id"]) is None


# -- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"url": "ftp://127.0.0.1"}, "must be an http:// or https:// URL"),
        ({"url": "http://127.0.0.1:notaport"}, "is not valid"),
        ({"database": "Results"}, "must be a CouchDB database name"),
        ({"password": "x"}, "username is not"),
        ({"tls_verify": 1}, "tls_verify must be true or false"),
        ({"tls_ca_file": "/nonexistent.pem"}, "must name a readable file"),
        ({"batch_size": 0}, "batch_size must be an integer from 1 to 100000, not 0"),
    ],
)
def test_bad_settings_raise_one_clear_config_error(settings, message):
    with pytest.raises(ConfigError, match=message):
        create_output("couch", settings)


def test_a_password_in_a_bad_url_is_not_shown():
    with pytest.raises(ConfigError) as caught:
        create_output("couch", {"url": "ftp://admin:hunter2@127.0.0.1"})
    assert "hunter2" not in str(caught.value)
    assert "admin:***@" in str(caught.value)


# -- outages and credentials ---------------------------------------------------------------


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
    assert "Connection" in message


def test_a_paused_server_makes_deliver_raise_within_the_timeout(make_output, outage_server):
    pooled = make_output(outage_server)
    pooled.deliver([record()], TIMEOUT)  # keep a connection open across the pause
    fresh = make_output(outage_server)
    with outage_server.paused_for():
        for output in (pooled, fresh):
            elapsed, message = timed_failure(output, [record()])
            assert elapsed < TIMEOUT + 1
            assert "timed out" in message


def test_delivery_works_again_after_a_restart(make_output, outage_server, database):
    output = make_output(outage_server)
    before = [record()]
    output.deliver(before, TIMEOUT)
    outage_server.restart()
    after = [record()]
    assert output.deliver(before + after, 5) == [Outcome(DELIVERED)] * 2
    assert doc_count(outage_server, database) == 2  # the data survived, nothing twice


@pytest.fixture(scope="module")
def admin_server():
    need_couch()
    with CouchServer(in_memory=True, admins={"admin": "right-horse-battery"}) as srv:
        yield srv


def test_a_wrong_password_raises_without_showing_it(make_output, admin_server):
    output = make_output(admin_server, username="admin", password="wrong-horse-battery")
    elapsed, message = timed_failure(output, [record()])
    assert "401" in message
    assert "wrong-horse-battery" not in message


def test_a_password_in_the_url_is_used_and_never_shown(make_output, admin_server, database):
    url = f"http://admin:wrong-horse-battery@127.0.0.1:{admin_server.port}"
    elapsed, message = timed_failure(make_output(admin_server, url=url), [record()])
    assert "wrong-horse-battery" not in message
    url = f"http://admin:right-horse-battery@127.0.0.1:{admin_server.port}"
    assert make_output(admin_server, url=url).deliver([record()], TIMEOUT) == [Outcome(DELIVERED)]
    assert doc_count(admin_server, database) == 1


def test_the_password_can_come_from_the_environment(
    make_output, admin_server, database, monkeypatch
):
    monkeypatch.setenv("ACCRE_MONITOR_COUCH_PASSWORD", "right-horse-battery")
    output = make_output(admin_server, username="admin", password="wrong-horse-battery")
    assert output.deliver([record()], TIMEOUT) == [Outcome(DELIVERED)]
    assert doc_count(admin_server, database) == 1
