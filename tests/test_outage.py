"""Stores going down, hanging and coming back, seen from the command line.

Every store is a real server on loopback (Elasticsearch: the test server in es_server.py).
A check run while its store is down or hanging exits with its own code in bounded time;
its record waits in the spool; after the store is back, a replay (or the next healthy
run) delivers every record exactly once.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from es_server import FakeElasticsearch
from servers import CouchServer, NscaServer, RedisServer, missing_reason, wait_until_connected

pytestmark = pytest.mark.integration

# A healthy store answers at once and a stopped one refuses at once, so the limits of a run
# only come into play on a starved machine, where a run can spend seconds importing its
# client: generous limits keep such a run delivering. The tests of a hanging store use short
# ones, to show that the run stays bounded.
TIMEOUT, INLINE_BUDGET = 10.0, 15.0
HANG_TIMEOUT, HANG_BUDGET = 1.0, 2.0


class Store:
    """A store under test: its server, its config section, and what it holds."""

    name = ""

    def section(self, timeout: float = 1) -> str:
        """The output's config section (other test modules take the 1 s default)."""
        raise NotImplementedError

    def stored_ids(self) -> list[str]:
        raise NotImplementedError


class RedisStore(Store):
    name = "redis"

    def __init__(self):
        self.server = RedisServer().start()

    def section(self, timeout=1):
        return f'[outputs.redis]\nurl = "{self.server.url}"\ntimeout = {timeout}\n'

    def stored_ids(self):
        import redis

        with redis.Redis.from_url(self.server.url) as client:
            entries = client.xrange("accre-monitor:history")
        return [json.loads(fields[b"record"])["id"] for _id, fields in entries]

    def down(self):
        self.server.stop()

    def up(self):
        self.server.start()

    def hang(self):
        self.server.pause()

    def unhang(self):
        self.server.resume()

    def close(self):
        self.server.close()


class CouchStore(RedisStore):
    name = "couch"

    def __init__(self):
        self.server = CouchServer().start()

    def section(self, timeout=1):
        return f'[outputs.couch]\nurl = "{self.server.url}"\ntimeout = {timeout}\n'

    def stored_ids(self):
        status, body = self.server.request("GET", "/accre-monitor/_all_docs")
        return [row["id"] for row in body["rows"]] if status == 200 else []


class ElasticsearchStore(Store):
    name = "elasticsearch"

    def __init__(self, **settings):
        self.server = FakeElasticsearch().start()
        self.settings = settings

    def section(self, timeout=1):
        extra = "".join(f"{key} = {json.dumps(value)}\n" for key, value in self.settings.items())
        url = self.server.url
        return f'[outputs.elasticsearch]\nhosts = ["{url}"]\ntimeout = {timeout}\n{extra}'

    def stored_ids(self):
        return [doc["id"] for doc in self.server.docs("accre-monitor-*")]

    def down(self):
        self.server.stop()

    def up(self):
        self.server.restart()

    def hang(self):
        self.server.hang(True)

    def unhang(self):
        self.server.hang(False)

    def close(self):
        self.server.stop()


class NscaStore(RedisStore):
    """The NSCA daemon: what it took is in its command file, the record (and its id) in the
    JSON after the plugin output's `|`."""

    name = "nagios-nsca"

    def __init__(self):
        self.server = NscaServer().start()

    def section(self, timeout=1):
        return f"[outputs.nagios-nsca]\nport = {self.server.port}\ntimeout = {timeout}\n"

    def stored_ids(self):
        return nsca_ids(self.server)


def nsca_record(output: str) -> dict:
    """The record in a plugin output line as the daemon wrote it (`SHORT | {json}\\n...`)."""
    text = re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), output)
    return json.loads(text.split(" | ", 1)[1].split("\n", 1)[0])


def nsca_ids(daemon) -> list[str]:
    """The ids of the records the NSCA daemon took, in the order it took them."""
    daemon.flush()  # NSCA never answers: wait until the daemon has read everything
    return [nsca_record(output)["id"] for *_, output in daemon.results()]


STORES = {
    "redis": RedisStore,
    "couch": CouchStore,
    "elasticsearch": ElasticsearchStore,
    "nagios-nsca": NscaStore,
}
NEEDS = {"redis": "redis", "couch": "couch", "elasticsearch": None, "nagios-nsca": "nsca"}


@pytest.fixture(params=sorted(STORES))
def store(request):
    need = NEEDS[request.param]
    if need and missing_reason(need):
        pytest.skip(missing_reason(need))
    made = STORES[request.param]()
    yield made
    made.close()


@pytest.fixture
def node(cli, store):
    """The command line configured to ship to `store`, with a private spool."""
    cli.write_config(config_text(cli, store))
    return cli


def config_text(cli, store, spool_extra="", timeout=TIMEOUT, budget=INLINE_BUDGET):
    return (
        f'[monitoring]\ncheck_modules = ["shapes"]\n'
        f'[spool]\npath = "{cli.tmp / "spool.db"}"\ninline_budget = {budget}\n'
        f"{spool_extra}{store.section(timeout)}"
    )


def run_check(cli, store, *args, expect=0, budget=INLINE_BUDGET):
    """One Nagios run: returns the record printed on stdout; checks exit code and time."""
    started = time.monotonic()
    result = cli.run("--outputs", f"stdout,{store.name}", *(args or ("loadavg",)))
    elapsed = time.monotonic() - started
    assert result.returncode == expect, result.stderr
    assert elapsed < budget + 6, f"run took {elapsed:.1f} s"
    return json.loads(result.stdout), result.stderr


def pipeline(cli, *args):
    return cli.run(*args, script="accre-pipeline")


def spooled(cli, store) -> int:
    result = pipeline(cli, "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["outputs"].get(store.name, {}).get("spooled", 0)


def test_records_made_during_an_outage_arrive_exactly_once_after_replay(node, store):
    store.down()
    record, stderr = run_check(node, store)
    assert "record spooled" in stderr
    warned, _ = run_check(node, store, "loadavg", "--warning", "-1,-1,-1", expect=1)
    assert warned["status"] == "WARNING"  # the check's own code, whatever the store does
    assert spooled(node, store) == 2
    failed = pipeline(node, "replay")
    assert failed.returncode != 0
    assert "still spooled 2" in failed.stdout
    store.up()
    result = pipeline(node, "replay", "--all")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "delivered 2" in result.stdout
    assert sorted(store.stored_ids()) == sorted([record["id"], warned["id"]])
    assert spooled(node, store) == 0
    assert pipeline(node, "replay", "--all").returncode == 0
    assert sorted(store.stored_ids()) == sorted([record["id"], warned["id"]])


def test_a_hanging_store_keeps_the_run_bounded_and_loses_nothing(node, store):
    node.write_config(config_text(node, store, timeout=HANG_TIMEOUT, budget=HANG_BUDGET))
    store.hang()
    try:
        record, stderr = run_check(node, store, budget=HANG_BUDGET)
        assert "record spooled" in stderr
    finally:
        store.unhang()
    node.write_config(config_text(node, store))  # replay with the usual, generous limits
    assert pipeline(node, "replay", "--all").returncode == 0
    ids = store.stored_ids()
    assert ids.count(record["id"]) == 1


def test_the_next_healthy_run_delivers_what_the_outage_left_behind(node, store):
    store.down()
    missed = [run_check(node, store)[0]["id"] for _ in range(2)]
    store.up()
    healthy, stderr = run_check(node, store)
    assert "spooled" not in stderr
    assert sorted(store.stored_ids()) == sorted([*missed, healthy["id"]])
    assert spooled(node, store) == 0


SHAPES = """
from accre_monitor import monitor_command

@monitor_command
def shaped(opts):
    \"\"\"Returns the options as data, to give records of any shape.\"\"\"
    return "OK", opts
"""


def test_a_record_refused_for_good_becomes_a_dead_letter_and_spares_the_rest(cli):
    store = ElasticsearchStore(install_template=False)
    try:
        cli.write_module("shapes", SHAPES)
        cli.write_config(config_text(cli, store, "max_attempts = 2\n"))
        first, _ = run_check(cli, store, "--options", '{"v": {"deep": 1}}', "shaped")
        refused, stderr = run_check(cli, store, "--options", '{"v": "flat"}', "shaped")
        assert "rejected=True" in stderr
        later, _ = run_check(cli, store, "--options", '{"v": {"deep": 2}}', "shaped")
        # the healthy run drained the spool: the refused record failed again and died
        assert sorted(store.stored_ids()) == sorted([first["id"], later["id"]])
        assert spooled(cli, store) == 0
        letters = pipeline(cli, "dead-letters")
        assert refused["id"] in letters.stdout
        assert "parsing_exception" in letters.stdout
        assert "1 dead letters queued again" in pipeline(cli, "dead-letters", "retry").stdout
        assert spooled(cli, store) == 1
        assert "still spooled 1" in pipeline(cli, "replay", "--all").stdout  # attempt 1 of 2
        replayed = pipeline(cli, "replay", "--all")
        assert replayed.returncode != 0
        assert "dead-lettered 1" in replayed.stdout
        assert "1 dead letters purged" in pipeline(cli, "dead-letters", "purge").stdout
        assert "no dead letters" in pipeline(cli, "dead-letters").stdout
    finally:
        store.close()


def test_fifty_runs_at_once_during_an_outage_lose_nothing(cli):
    if missing_reason("redis"):
        pytest.skip(missing_reason("redis"))
    store = RedisStore()
    try:
        cli.write_config(config_text(cli, store))
        store.down()
        runs = [cli.popen("--outputs", "stdout,redis", "loadavg") for _ in range(50)]
        outputs = [run.communicate(timeout=120) for run in runs]
        assert [run.returncode for run in runs] == [0] * 50, outputs[0][1]
        assert not any("locked" in err for _out, err in outputs)
        ids = sorted(json.loads(out)["id"] for out, _err in outputs)
        assert spooled(cli, store) == 50
        store.up()
        assert pipeline(cli, "replay", "--all").returncode == 0
        assert sorted(store.stored_ids()) == ids
    finally:
        store.close()


def test_the_spool_health_check_alerts_on_a_stalled_output(node, store):
    store.down()
    run_check(node, store)
    result = node.run("--outputs", "nagios-stdout", "spool_health", "--backlog_warning", "1")
    assert result.returncode == 1
    assert result.stdout.startswith(f"SPOOL WARNING - {store.name} 1 spooled")


def test_a_store_answering_too_slowly_is_treated_like_a_hanging_one(cli):
    store = ElasticsearchStore()
    try:
        cli.write_config(config_text(cli, store, timeout=HANG_TIMEOUT, budget=HANG_BUDGET))
        store.server.delay(3)
        record, stderr = run_check(cli, store, budget=HANG_BUDGET)
        assert "record spooled" in stderr
        store.server.delay(0)
        cli.write_config(config_text(cli, store))  # replay with the usual, generous limits
        assert pipeline(cli, "replay", "--all").returncode == 0
        assert store.stored_ids().count(record["id"]) == 1
    finally:
        store.close()


def test_a_filter_stage_keeps_unwanted_records_from_a_store(node, store):
    node.write_config(
        config_text(node, store).replace(
            f"[outputs.{store.name}]\n", f'[outputs.{store.name}]\nmin_severity = "WARNING"\n'
        )
    )
    ok, _ = run_check(node, store)
    warning, _ = run_check(node, store, "loadavg", "--warning", "-1,-1,-1", expect=1)
    assert store.stored_ids() == [warning["id"]]
    assert ok["id"] not in store.stored_ids()


def test_a_run_terminated_while_delivering_spools_its_record_first(cli):
    if missing_reason("redis"):
        pytest.skip(missing_reason("redis"))
    import signal

    store = RedisStore()
    try:
        cli.write_config(config_text(cli, store, timeout=30, budget=30))
        store.hang()
        run = cli.popen("--outputs", "stdout,redis", "loadavg")
        # delivering: connected to the store, which will not answer for 30 s
        assert wait_until_connected(run.pid, store.server.port), run.communicate(timeout=30)
        assert run.poll() is None
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=20)
        record = json.loads(out)
        assert "record spooled" in err
        store.unhang()
        assert pipeline(cli, "replay", "--all").returncode == 0
        assert store.stored_ids() == [record["id"]]
    finally:
        store.close()
