"""The `elasticsearch` output, against FakeElasticsearch and, when
`ACCRE_MONITOR_TEST_ES_URL` is set (e.g. `http://elastic:PASSWORD@127.0.0.1:9200`), against that
real cluster too (`ACCRE_MONITOR_TEST_ES_CA` names its CA file for https). On a real cluster every
test writes to its own `accre-monitor-test-<run>-<n>-*` indices and template, deleted afterwards.
Failure injection (429s, hangs, a stopped server, auth) needs the fake.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

import pytest
from elasticsearch import Elasticsearch
from es_server import FakeElasticsearch

from accre_monitor.errors import ConfigError
from accre_monitor.outcome import DELIVERED, REJECTED, RETRY, StoreUnavailable
from accre_monitor.outputs import create_output, output_class
from accre_monitor.outputs.elasticsearch import ElasticsearchOutput, template_pattern
from accre_monitor.record import build_record

ES_URL = os.environ.get("ACCRE_MONITOR_TEST_ES_URL")
ES_CA = os.environ.get("ACCRE_MONITOR_TEST_ES_CA")
BACKENDS = ["fake", "real"] if ES_URL else ["fake"]
RUN = uuid.uuid4().hex[:8]
_numbers = itertools.count(1)
DATE = "2026-11-24T08:55:32.123+01:00"  # 07:55:32 UTC, in index ...-2026.11.24


@dataclass
class Target:
    """A server to deliver to: its URL, a client to look at it, the fake (None when real)."""

    url: str
    client: Elasticsearch
    fake: FakeElasticsearch | None
    prefix: str

    def settings(self, **extra):
        base = {"hosts": [self.url], "index": f"{self.prefix}-%Y.%m.%d"}
        base["template_name"] = self.prefix
        if ES_CA and self.fake is None:
            base["ca_certs"] = ES_CA
        return {**base, **extra}

    def stored(self) -> dict[str, tuple[str, dict]]:
        """`{_id: (_index, _source)}` of every document in this test's indices."""
        self.client.indices.refresh(index=f"{self.prefix}-*")
        answer = self.client.search(index=f"{self.prefix}-*", size=1000, query={"match_all": {}})
        return {hit["_id"]: (hit["_index"], hit["_source"]) for hit in answer["hits"]["hits"]}

    def count(self) -> int:
        self.client.indices.refresh(index=f"{self.prefix}-*")
        return self.client.count(index=f"{self.prefix}-*")["count"]

    def cleanup(self) -> None:
        names = list(self.client.indices.get(index=f"{self.prefix}-*").body)
        if names:
            self.client.indices.delete(index=",".join(names))
        if self.client.indices.exists_index_template(name=self.prefix):
            self.client.indices.delete_index_template(name=self.prefix)


def _fake_target(fake: FakeElasticsearch) -> Target:
    return Target(fake.url, Elasticsearch(fake.url), fake, f"accre-monitor-test-{RUN}")


@pytest.fixture(autouse=True)
def no_secrets_from_the_environment(monkeypatch):
    for key in list(os.environ):
        if key.startswith("ACCRE_MONITOR_ELASTICSEARCH_"):
            monkeypatch.delenv(key)


@pytest.fixture(params=BACKENDS)
def es(request):
    """Each test against the fake, and against the real cluster when one is given."""
    if request.param == "fake":
        with FakeElasticsearch() as fake:
            target = _fake_target(fake)
            yield target
            target.client.close()
        return
    options = {"ca_certs": ES_CA} if ES_CA else {}
    client = Elasticsearch(ES_URL, request_timeout=30, **options)
    target = Target(ES_URL, client, None, f"accre-monitor-test-{RUN}-{next(_numbers)}")
    try:
        yield target
    finally:
        target.cleanup()
        client.close()


@pytest.fixture
def fake_es():
    with FakeElasticsearch() as fake:
        target = _fake_target(fake)
        yield target
        target.client.close()


@pytest.fixture
def make_output():
    made = []

    def make(settings) -> ElasticsearchOutput:
        output = create_output("elasticsearch", settings)
        made.append(output)
        return output

    yield make
    for output in made:
        output.close()


def record(name="load", data=None, date=DATE, **extra):
    return build_record(name, "OK", data, runtime=0.012, node="node01", date=date, **extra)


def states(outcomes):
    return [outcome.state for outcome in outcomes]


def without_copy(source: dict) -> dict:
    return {key: value for key, value in source.items() if key != "data_flat"}


# -- storing ------------------------------------------------------------------------------------


def test_a_batch_is_stored_with_the_record_id_as_the_document_id(es, make_output):
    records = [record(data={"load1": 0.5 + i}, short=f"LOAD OK {i}") for i in range(3)]
    outcomes = make_output(es.settings()).deliver(records, timeout=10)
    assert states(outcomes) == [DELIVERED] * 3
    stored = es.stored()
    assert sorted(stored) == sorted(r["id"] for r in records)
    for rec in records:
        assert without_copy(stored[rec["id"]][1]) == rec


def test_delivering_the_same_records_again_is_delivered_and_stores_no_duplicate(es, make_output):
    records = [record(data=[i, i + 1]) for i in range(3)]
    output = make_output(es.settings())
    assert states(output.deliver(records, timeout=10)) == [DELIVERED] * 3
    assert states(output.deliver(records, timeout=10)) == [DELIVERED] * 3
    # a replay from another process (a new output instance) too
    again = make_output(es.settings()).deliver(records, timeout=10)
    assert [(o.state, o.error) for o in again] == [(DELIVERED, None)] * 3
    assert es.count() == 3


def test_the_index_name_is_the_pattern_applied_to_the_record_date_in_utc(es, make_output):
    late_in_paris = record(date="2026-11-25T00:30:00.000+01:00")  # 2026-11-24 23:30 UTC
    evening_in_nashville = record(date="2026-11-24T20:00:00.000-05:00")  # 2026-11-25 01:00 UTC
    no_offset = record(date="2026-11-23T12:00:00")  # taken as UTC, as Elasticsearch does
    records = [late_in_paris, evening_in_nashville, no_offset]
    assert states(make_output(es.settings()).deliver(records, timeout=10)) == [DELIVERED] * 3
    stored = es.stored()
    assert stored[late_in_paris["id"]][0] == f"{es.prefix}-2026.11.24"
    assert stored[evening_in_nashville["id"]][0] == f"{es.prefix}-2026.11.25"
    assert stored[no_offset["id"]][0] == f"{es.prefix}-2026.11.23"


def test_the_template_pattern_replaces_the_date_fields_with_one_star():
    assert template_pattern("accre-monitor-%Y.%m.%d") == "accre-monitor-*"
    assert template_pattern("checks-%Y-%m") == "checks-*"
    assert template_pattern("%Y.%m-accre") == "*-accre"
    assert template_pattern("accre-monitor") == "accre-monitor"


# -- the template and the mapping ---------------------------------------------------------------


def test_the_template_is_installed_on_first_use_with_the_mapping(es, make_output):
    assert not es.client.indices.exists_index_template(name=es.prefix)
    output = make_output(es.settings())
    assert states(output.deliver([record(data={"a": 1})], timeout=10)) == [DELIVERED]
    (template,) = es.client.indices.get_index_template(name=es.prefix)["index_templates"]
    assert template["index_template"]["index_patterns"] == [f"{es.prefix}-*"]
    (index,) = es.client.indices.get_mapping(index=f"{es.prefix}-*").body.values()
    fields = index["mappings"]["properties"]
    assert fields["date"]["type"] == "date"
    assert fields["name"]["type"] == "keyword"
    assert fields["data"]["enabled"] is False
    assert fields["data_flat"]["type"] == "flattened"


def test_the_template_is_checked_once_per_output_and_not_put_again(fake_es, make_output):
    fake = fake_es.fake
    output = make_output(fake_es.settings())
    for _ in range(3):
        assert states(output.deliver([record()], timeout=5)) == [DELIVERED]
    assert fake.request_count(path="^/_index_template/", method="HEAD") == 1
    assert fake.request_count(path="^/_index_template/", method="PUT") == 1
    # a new instance (the next CLI run) looks once, finds it, and leaves it alone
    assert states(make_output(fake_es.settings()).deliver([record()], timeout=5)) == [DELIVERED]
    assert fake.request_count(path="^/_index_template/", method="HEAD") == 2
    assert fake.request_count(path="^/_index_template/", method="PUT") == 1


def test_a_template_the_operator_put_is_not_overwritten(fake_es, make_output):
    fake_es.client.indices.put_index_template(
        name=fake_es.prefix, index_patterns=[f"{fake_es.prefix}-*"], priority=300
    )
    assert states(make_output(fake_es.settings()).deliver([record()], timeout=5)) == [DELIVERED]
    assert fake_es.fake.templates[fake_es.prefix]["priority"] == 300
    assert fake_es.fake.request_count(path="^/_index_template/", method="PUT") == 1  # ours above


def test_data_of_every_shape_is_delivered_and_searchable_thanks_to_the_template(es, make_output):
    records = [
        record("load", data=[0.52, 0.4, 0.3]),
        record("disk", data={"/": {"used": 85, "mount": "/"}, "/home": {"used": 12}}),
        record("ping", data=0.004),
        record("users", data="nobody logged in"),
        record("gpus", data=[{"id": 0, "temp": 61}, {"id": 1, "temp": 64}]),
        record("empty", data=None),
        record("load", data={"load1": 0.52, "load5": "n/a"}),
    ]
    outcomes = make_output(es.settings()).deliver(records, timeout=10)
    assert [(o.state, o.error) for o in outcomes] == [(DELIVERED, None)] * len(records)
    stored = es.stored()
    assert [stored[r["id"]][1]["data"] for r in records] == [r["data"] for r in records]
    found = es.client.search(
        index=f"{es.prefix}-*", query={"term": {"data_flat.value.load1": "0.52"}}
    )
    assert [hit["_id"] for hit in found["hits"]["hits"]] == [records[-1]["id"]]


def test_a_flattened_data_field_alone_would_refuse_scalar_data(es, request):
    """Why `data` is `enabled: false` with a flattened copy, and not flattened itself."""
    index = f"{es.prefix}-flattened"
    es.client.indices.create(index=index, mappings={"properties": {"data": {"type": "flattened"}}})
    answer = es.client.bulk(
        operations=[
            {"create": {"_index": index, "_id": "object"}},
            {"data": {"a": 1}},
            {"create": {"_index": index, "_id": "scalar"}},
            {"data": 42},
        ]
    )
    statuses = [item["create"]["status"] for item in answer["items"]]
    assert statuses == [201, 400]


@pytest.mark.parametrize(
    "version, error_type",
    [("8.7.0", "mapper_parsing_exception"), ("8.15.0", "document_parsing_exception")],
)
def test_without_the_template_a_conflicting_data_shape_is_rejected_and_the_rest_delivered(
    make_output, version, error_type
):
    with FakeElasticsearch(version=version) as fake:
        target = _fake_target(fake)
        records = [
            record("load", data=[0.52, 0.4]),  # dynamic mapping makes `data` a float
            record("ping", data=0.004),
            record("disk", data={"/": {"used": 85}}),  # an object where a float was mapped
            record("load", data=[0.1, 0.2]),
        ]
        output = make_output(target.settings(install_template=False))
        outcomes = output.deliver(records, timeout=5)
        assert states(outcomes) == [DELIVERED, DELIVERED, REJECTED, DELIVERED]
        assert outcomes[2].error.startswith(f"{error_type}: ")
        assert "[data]" in outcomes[2].error
        assert sorted(target.stored()) == sorted(records[i]["id"] for i in (0, 1, 3))
        assert fake.request_count(path="_index_template") == 0
        target.client.close()


# -- per-item and whole-request failures ---------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_items_answered_429_or_5xx_are_retried_and_the_others_delivered(
    fake_es, make_output, status
):
    records = [record(data=i) for i in range(4)]
    output = make_output(fake_es.settings())
    fake_es.fake.fail_items(2, status=status)
    outcomes = output.deliver(records, timeout=5)
    assert states(outcomes) == [RETRY, RETRY, DELIVERED, DELIVERED]
    expected = "es_rejected_execution_exception" if status == 429 else "cluster_block_exception"
    assert outcomes[0].error.startswith(f"{expected}: ")
    assert fake_es.count() == 2
    assert states(output.deliver(records[:2], timeout=5)) == [DELIVERED, DELIVERED]
    assert fake_es.count() == 4


@pytest.mark.parametrize("status", [429, 503])
def test_a_whole_bulk_request_answered_429_or_503_raises(fake_es, make_output, status):
    output = make_output(fake_es.settings())
    fake_es.fake.fail_next(1, status=status, path="_bulk")
    with pytest.raises(StoreUnavailable, match=f"elasticsearch bulk: {status} "):
        output.deliver([record(), record()], timeout=5)
    assert fake_es.count() == 0


@pytest.mark.parametrize("first_use", [True, False], ids=["template-check", "bulk"])
def test_a_hanging_server_makes_deliver_raise_within_the_timeout(fake_es, make_output, first_use):
    output = make_output(fake_es.settings())
    if not first_use:
        assert states(output.deliver([record()], timeout=5)) == [DELIVERED]
    fake_es.fake.hang()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="ConnectionTimeout"):
        output.deliver([record()], timeout=1.0)
    assert time.monotonic() - started < 1.0 + 1


def test_the_timeout_covers_the_template_requests_and_the_bulk_together(fake_es, make_output):
    fake_es.fake.delay(0.4)  # HEAD, PUT and _bulk would take 1.2 s in all
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        make_output(fake_es.settings()).deliver([record()], timeout=1.0)
    assert time.monotonic() - started < 1.0 + 0.5


def test_a_stopped_server_makes_deliver_raise_and_a_restarted_one_is_used_again(
    fake_es, make_output
):
    output = make_output(fake_es.settings())
    assert states(output.deliver([record()], timeout=5)) == [DELIVERED]
    fake_es.fake.stop()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="ConnectionError"):
        output.deliver([record()], timeout=2)
    assert time.monotonic() - started < 2 + 1
    fake_es.fake.start()
    assert states(output.deliver([record()], timeout=5)) == [DELIVERED]
    assert fake_es.count() == 2


def test_a_template_put_cut_off_raises_so_the_batch_is_retried(fake_es, make_output):
    output = make_output(fake_es.settings())
    fake_es.fake.fail_next(1, status=None, path="^/_index_template/", method="PUT")
    with pytest.raises(StoreUnavailable, match="index template"):
        output.deliver([record()], timeout=5)
    assert fake_es.count() == 0
    assert states(output.deliver([record()], timeout=5)) == [DELIVERED]
    assert fake_es.prefix in fake_es.fake.templates


def test_a_template_refused_with_403_is_a_warning_and_the_records_still_go(
    fake_es, make_output, capsys
):
    fake_es.fake.fail_next(1, status=403, path="^/_index_template/", method="PUT")
    outcomes = make_output(fake_es.settings()).deliver([record()], timeout=5)
    assert states(outcomes) == [DELIVERED]
    err = capsys.readouterr().err
    assert "index template not installed" in err
    assert "install_template = false" in err


def test_a_record_with_a_bad_date_or_no_id_is_rejected_and_the_others_delivered(
    fake_es, make_output
):
    no_id = record()
    del no_id["id"]
    records = [record(), record(date="yesterday"), no_id, record()]
    outcomes = make_output(fake_es.settings()).deliver(records, timeout=5)
    assert states(outcomes) == [DELIVERED, REJECTED, REJECTED, DELIVERED]
    assert outcomes[1].error == "bad record: record date 'yesterday' is not ISO 8601"
    assert outcomes[2].error == "bad record: no 'id' field"
    assert fake_es.count() == 2


def test_a_batch_above_batch_size_goes_in_several_bulk_requests(fake_es, make_output):
    records = [record(data=i) for i in range(5)]
    outcomes = make_output(fake_es.settings(batch_size=2)).deliver(records, timeout=5)
    assert states(outcomes) == [DELIVERED] * 5
    assert fake_es.fake.request_count(path="_bulk") == 3
    assert fake_es.count() == 5


# -- authentication and secrets ------------------------------------------------------------------


@pytest.fixture
def secured_es():
    with FakeElasticsearch(basic_auth=("monitor", "right-pw-42"), api_key=("kid", "ksecret")) as f:
        target = _fake_target(f)
        target.client = Elasticsearch(f.url, basic_auth=("monitor", "right-pw-42"))
        yield target
        target.client.close()


def test_basic_auth_with_the_right_password_delivers(secured_es, make_output):
    output = make_output(secured_es.settings(username="monitor", password="right-pw-42"))
    assert states(output.deliver([record()], timeout=5)) == [DELIVERED]
    assert secured_es.count() == 1


def test_a_wrong_password_raises_without_showing_it(secured_es, make_output, capsys):
    output = make_output(secured_es.settings(username="monitor", password="wrong-pw-77"))
    with pytest.raises(StoreUnavailable) as caught:
        output.deliver([record()], timeout=5)
    assert "401 Unauthorized" in str(caught.value)  # from the template check, a HEAD
    assert "wrong-pw-77" not in str(caught.value) + repr(caught.value)
    assert "wrong-pw-77" not in "".join(capsys.readouterr())
    assert secured_es.count() == 0


def test_a_wrong_password_on_the_bulk_says_why_without_showing_it(secured_es, make_output):
    settings = secured_es.settings(username="monitor", password="wrong-pw-77")
    output = make_output({**settings, "install_template": False})
    with pytest.raises(StoreUnavailable) as caught:
        output.deliver([record()], timeout=5)
    assert "elasticsearch bulk: 401 security_exception: unable to authenticate user [monitor]" in (
        str(caught.value)
    )
    assert "wrong-pw-77" not in str(caught.value)


def test_a_password_written_unescaped_in_a_host_url_authenticates(make_output, capsys):
    password = "p#s/s@w%rd-20250417"
    with FakeElasticsearch(basic_auth=("monitor", password)) as fake:
        url = fake.url.replace("://", f"://monitor:{password}@")
        output = make_output({"hosts": [url]})
        assert states(output.deliver([record()], timeout=5)) == [DELIVERED]
        wrong = make_output({"hosts": [url.replace("p#s", "q#s")], "install_template": False})
        with pytest.raises(StoreUnavailable) as caught:
            wrong.deliver([record()], timeout=5)
    shown = str(caught.value) + "".join(capsys.readouterr())
    assert "401" in shown and "q#s" not in shown and "w%rd" not in shown


def test_the_password_comes_from_the_environment_before_the_config(
    secured_es, make_output, monkeypatch
):
    monkeypatch.setenv("ACCRE_MONITOR_ELASTICSEARCH_PASSWORD", "right-pw-42")
    output = make_output(secured_es.settings(username="monitor", password="stale-pw"))
    assert states(output.deliver([record()], timeout=5)) == [DELIVERED]
    assert secured_es.count() == 1


@pytest.mark.parametrize("api_key", ["kid:ksecret", "a2lkOmtzZWNyZXQ="], ids=["id:key", "encoded"])
def test_an_api_key_authenticates(secured_es, make_output, api_key):
    output = make_output(secured_es.settings(api_key=api_key))
    assert states(output.deliver([record()], timeout=5)) == [DELIVERED]
    authorization = secured_es.fake.requests[-1].headers["authorization"]
    assert authorization == "ApiKey a2lkOmtzZWNyZXQ="


# -- settings and wiring -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"hosts": []}, "outputs.elasticsearch.hosts must be"),
        ({"hosts": ["ftp://u:hunter2@es:21"]}, "outputs.elasticsearch.hosts must hold http"),
        ({"index": "Accre-%b"}, "must be lowercase"),
        ({"index": "accre monitor"}, "must not contain"),
        ({"index": "%Y.%m.%d"}, "needs a fixed prefix or suffix"),
        (
            {"batch_size": 0},
            "outputs.elasticsearch.batch_size must be an integer from 1 to 100000, not 0",
        ),
        (
            {"timeout": "soon"},
            "outputs.elasticsearch.timeout must be a number of seconds above 0 and at most 600",
        ),
        ({"verify_certs": "no"}, "outputs.elasticsearch.verify_certs must be true or false"),
        ({"ca_certs": "/nonexistent/ca.pem"}, "ca_certs must name a readable"),
        ({"username": "monitor"}, "outputs.elasticsearch.password is needed"),
        ({"password": "x"}, "outputs.elasticsearch.username is needed"),
        ({"api_key": "k:v", "username": "u", "password": "p"}, "exclude each other"),
    ],
)
def test_bad_settings_are_one_line_config_errors(settings, message):
    with pytest.raises(ConfigError) as caught:
        create_output("elasticsearch", settings)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_the_output_is_registered_under_its_name():
    assert output_class("elasticsearch") is ElasticsearchOutput
    assert ElasticsearchOutput.synchronous is False
    assert ElasticsearchOutput.settings_keys["batch_size"] == 500


def test_configuring_the_output_does_not_import_the_client_until_it_delivers():
    code = (
        "import sys; from accre_monitor.outputs import create_output; "
        "create_output('elasticsearch', {}); print('elasticsearch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
