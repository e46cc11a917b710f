"""`accre-pipeline serve` over HTTP: its API against `overview` and `silence`, the page's
compact data, writes behind the token, `/metrics` as Prometheus parses it, and a state that
cannot be reached said in one line. The page itself is tested in a browser in
test_serve_page.py."""

from __future__ import annotations

import gzip
import importlib.util
import itertools
import json
import socket
import subprocess
import sys
import time

import pytest
from served import TOKEN, Served, record
from servers import RedisServer, missing_reason
from test_rabbitmq import wait_until

from accre_monitor.pipeline.silence_cli import build_silence
from accre_monitor.pipeline.state import stale_record
from accre_monitor.pipeline.watchdog import Watchdog
from accre_monitor.sections import listen_address, serve_section, state_section

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("starlette") is None or importlib.util.find_spec("uvicorn") is None,
    reason="the web stack is not installed: pip install 'accre-monitor[web]'",
)
_prefixes = itertools.count()


@pytest.fixture
def served(cli):
    """A server over a SQLite state, writes allowed with TOKEN."""
    server = Served(cli, {"url": f"sqlite:///{cli.tmp / 'state.db'}"}, {"token": TOKEN})
    yield server
    server.stop()


@pytest.fixture
def read_only(cli):
    server = Served(cli, {"url": f"sqlite:///{cli.tmp / 'state.db'}"})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_server():
    if missing_reason("redis") or importlib.util.find_spec("redis") is None:
        pytest.skip(missing_reason("redis") or "pip install 'accre-monitor[redis]'")
    with RedisServer() as server:
        yield server


def fire_stale(store, node: str, check: str) -> None:
    """What the watchdog does for an overdue entry: take its stale record."""
    entry = store.get(node, check)
    now = time.time()
    assert store.fire_stale(stale_record(entry, "UNKNOWN", now), entry.record_id, now)


def a_cluster(served: Served) -> None:
    """Two groups of nodes; a CRITICAL, a WARNING, a stale check and a silenced one."""
    served.take(
        record("gpu001", "ib_link", "CRITICAL", ago=300),
        record("gpu001", "load", "OK"),
        record("gpu002", "ib_link", "OK"),
        record("gpu002", "load", "WARNING", ago=60),
        record("gpu010", "ib_link", "OK"),
        record("cn1", "load", "OK", ago=30, ttl=5),
        record("cn2", "load", "CRITICAL", ago=120),
    )
    fire_stale(served.store, "cn1", "load")
    silence(served, node="cn2", check="load", expire="1h", comment="disk swap, ask Ana")


def silence(served: Served, **fields) -> None:
    """A silence added as `silence add` adds it."""
    fields = {"node": None, "check": None, "begin": None, "expire": None, "until": None,
              "on_resolve": False, "comment": None, **fields}  # fmt: skip
    served.store.add_silence(build_silence(**fields, now=time.time()))


# -- reading -----------------------------------------------------------------------------


def test_the_api_state_is_what_overview_json_prints(served, cli):
    a_cluster(served)
    served.start()
    overview = cli.run("overview", "--json", script="accre-pipeline")
    assert overview.returncode == 0, overview.stderr
    answer = served.get("/api/state")
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == json.loads(overview.stdout)
    assert len(answer.json()) == 7


def test_node_and_check_globs_narrow_the_api_state_as_they_narrow_overview(served, cli):
    a_cluster(served)
    served.start()
    overview = cli.run("overview", "--json", "--node", "gpu00*", "--check", "ib_*",
                       script="accre-pipeline")  # fmt: skip
    answer = served.get("/api/state?node=gpu00*&check=ib_*")
    assert answer.json() == json.loads(overview.stdout)
    assert [(i["node"], i["check"]) for i in answer.json()] == [
        ("gpu001", "ib_link"),
        ("gpu002", "ib_link"),
    ]


def test_the_grid_holds_every_cell_and_the_problems_worst_first_as_overview_orders_them(
    served, cli
):
    a_cluster(served)
    served.start()
    grid = served.get("/api/grid").json()
    assert grid["nodes"] == ["cn1", "cn2", "gpu001", "gpu002", "gpu010"]
    assert grid["groups"] == [["cn", 0, 2], ["gpu", 2, 3]]
    assert grid["checks"] == ["ib_link", "load"]
    width = len(grid["checks"])

    def cell(node: str, check: str) -> int:
        return grid["nodes"].index(node) * width + grid["checks"].index(check)

    def code(status: str, stale: bool = False, silenced: bool = False) -> str:
        order = ["OK", "WARNING", "CRITICAL", "UNKNOWN"].index(status)
        return chr(97 + 4 * order + 2 * stale + silenced)

    cells = grid["cells"]
    assert cells[cell("gpu001", "ib_link")] == code("CRITICAL")
    assert cells[cell("gpu002", "load")] == code("WARNING")
    assert cells[cell("cn1", "load")] == code("UNKNOWN", stale=True)
    assert cells[cell("cn2", "load")] == code("CRITICAL", silenced=True)
    assert cells[cell("cn1", "ib_link")] == "."  # cn1 has no such check
    assert grid["short"][cell("gpu002", "load")] == "load warning on gpu002"
    assert 290 <= grid["age"][cell("gpu001", "ib_link")] <= 330
    assert grid["counts"] == {
        "OK": 3, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 1, "stale": 1, "silenced": 1,
    }  # fmt: skip

    shown = cli.run("overview", script="accre-pipeline").stdout.splitlines()
    table = [line.split()[:2] for line in shown[shown.index("") + 2 :]]
    by_index = [
        [grid["nodes"][i // width], grid["checks"][i % width]] for i, *_ in grid["problems"]
    ]
    assert by_index == table
    assert by_index[:2] == [["gpu001", "ib_link"], ["cn2", "load"]]  # CRITICAL, oldest first
    silenced = next(p for p in grid["problems"] if p[0] == cell("cn2", "load"))
    assert silenced[3] == [grid["silences"][0]["id"]]
    assert grid["silences"][0]["comment"] == "disk swap, ask Ana"
    assert grid["writable"] is True and grid["refresh"] == 5.0


def test_the_page_data_comes_gzipped_to_a_client_that_takes_it(served):
    a_cluster(served)
    served.start()
    for path in ("/api/grid", "/api/state"):
        plain = served.get(path)
        zipped = served.get(path, **{"accept-encoding": "gzip"})
        assert zipped.headers["content-encoding"] == "gzip"
        assert json.loads(gzip.decompress(zipped.body)) == plain.json()


def test_a_node_gives_every_check_with_its_long_text_and_data(served):
    served.take(
        record("gpu001", "ib_link", "CRITICAL", long="port 1: down\nport 2: up",
               data={"ports": [1, 2], "speed": "200G"}),
        record("gpu001", "load", "OK", data={"load1": 0.5}),
        record("gpu002", "load", "OK"),
    )  # fmt: skip
    served.start()
    node = served.get("/api/node/gpu001").json()
    assert node["node"] == "gpu001"
    assert [c["check"] for c in node["checks"]] == ["ib_link", "load"]
    link = node["checks"][0]
    assert link["status"] == "CRITICAL" and link["long"] == "port 1: down\nport 2: up"
    assert link["data"] == {"ports": [1, 2], "speed": "200G"}
    assert link["occurrences"] == 1 and link["short"] == "ib_link critical on gpu001"
    missing = served.get("/api/node/gpu999")
    assert missing.status == 404 and missing.json() == {"error": "no node gpu999 in the state"}


def test_a_state_not_created_yet_is_shown_empty_and_not_created(read_only, cli):
    read_only.store.close()  # opened lazily: nothing was created
    assert not (cli.tmp / "state.db").exists()
    read_only.start()
    grid = read_only.get("/api/grid").json()
    assert grid["empty"] is True and grid["nodes"] == []
    assert read_only.get("/api/state").json() == []
    assert read_only.get("/api/silences").json() == []
    assert not (cli.tmp / "state.db").exists()


def test_the_pages_are_served_with_a_policy_that_runs_no_inline_script(served):
    served.start()
    for path in ("/", "/node/gpu001"):
        page = served.get(path)
        assert page.status == 200 and page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "default-src 'none'" in policy
        assert page.headers["x-content-type-options"] == "nosniff"
    assert served.get("/static/status.js").status == 200
    assert served.get("/healthz").text == "ok\n"


# -- silences ------------------------------------------------------------------------------


def test_a_silence_added_with_the_token_is_listed_as_silence_list_lists_it(served, cli):
    served.take(record("gpu001", "ib_link", "CRITICAL"))
    served.start()
    added = served.post(
        "/api/silences",
        {"node": "gpu0*", "check": "ib_*", "expire": "2h", "comment": "switch 4, ask Ana"},
        token=TOKEN,
    )
    assert added.status == 201, added.text
    assert added.json()["covers"] == 1
    listed = cli.run("silence", "list", "--json", script="accre-pipeline")
    assert served.get("/api/silences").json() == json.loads(listed.stdout)
    assert [s["id"] for s in json.loads(listed.stdout)] == [added.json()["id"]]
    assert "silence added from the page" in served.stderr()
    grid = wait_until(
        lambda: (g := served.get("/api/grid").json())["counts"]["silenced"] == 1 and g,
        what="the page's data to show the silence",
    )
    assert grid["silences"][0]["node"] == "gpu0*"


def test_writes_without_the_right_token_get_401_and_change_nothing(served):
    served.start()
    body = {"node": "gpu*", "expire": "1h", "comment": "maintenance"}
    for token in (None, "not-the-token-at-all", TOKEN + "x"):
        refused = served.post("/api/silences", body, token=token)
        assert refused.status == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in refused.json()["error"]
    basic = served.request("POST", "/api/silences", body, {"authorization": f"Basic {TOKEN}"})
    assert basic.status == 401
    assert served.get("/api/silences").json() == []


def test_without_a_token_configured_writes_are_refused_with_403(read_only):
    read_only.start()
    refused = read_only.post(
        "/api/silences", {"node": "gpu*", "expire": "1h", "comment": "maintenance"}, token=TOKEN
    )
    assert refused.status == 403
    assert "[serve] token" in refused.json()["error"]
    assert read_only.delete("/api/silences/abc", token=TOKEN).status == 403
    assert read_only.get("/api/grid").json()["writable"] is False


def test_a_silence_needs_the_same_comment_and_end_as_on_the_command_line(served):
    served.start()
    cases = [
        ({"node": "gpu*", "expire": "1h"}, "a silence needs --comment TEXT"),
        ({"node": "gpu*", "expire": "1h", "comment": "  "}, "a silence needs --comment TEXT"),
        ({"node": "gpu*", "comment": "x"}, "say when the silence ends with exactly one of"),
        ({"comment": "x", "expire": "1h"}, "name what to silence"),
        ({"node": "gpu*", "comment": "x", "expire": "soon"}, "is not a number of seconds"),
        ({"node": "gpu*", "comment": "x", "until": "tomorrow"}, "is not an ISO 8601 time"),
        ({"node": "gpu*", "comment": "x", "expire": "1h", "colour": "red"}, "unknown field"),
        ({"node": 5, "comment": "x", "expire": "1h"}, "node has the wrong type"),
    ]
    for body, said in cases:
        answer = served.post("/api/silences", body, token=TOKEN)
        assert answer.status == 400, (body, answer.text)
        assert said in answer.json()["error"]
        assert "\n" not in answer.json()["error"]
    not_json = served.request("POST", "/api/silences", None, {"authorization": f"Bearer {TOKEN}"})
    assert not_json.status == 400
    assert served.get("/api/silences").json() == []


def test_a_silence_until_a_time_with_an_offset_or_on_resolve_is_taken(served):
    served.start()
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    first = served.post(
        "/api/silences", {"check": "ib_*", "until": until, "comment": "x"}, token=TOKEN
    )
    second = served.post(
        "/api/silences", {"node": "cn1", "on_resolve": True, "comment": "y"}, token=TOKEN
    )
    assert first.status == 201 and second.status == 201
    listed = {s["comment"]: s for s in served.get("/api/silences").json()}
    assert listed["x"]["node"] == "*" and listed["x"]["end"] is not None
    assert listed["y"]["on_resolve"] is True and listed["y"]["end"] is None


def test_a_silence_is_removed_with_the_token_only(served):
    served.start()
    added = served.post(
        "/api/silences", {"node": "gpu*", "expire": "1h", "comment": "x"}, token=TOKEN
    ).json()
    assert served.delete(f"/api/silences/{added['id']}").status == 401
    assert len(served.get("/api/silences").json()) == 1
    assert served.delete(f"/api/silences/{added['id']}", token=TOKEN).status == 204
    assert served.get("/api/silences").json() == []
    gone = served.delete(f"/api/silences/{added['id']}", token=TOKEN)
    assert gone.status == 404 and gone.json()["error"] == f"no silence {added['id']}"


def test_the_token_is_never_logged(cli):
    served = Served(cli, {"url": f"sqlite:///{cli.tmp / 'state.db'}"}, {"token": TOKEN})
    try:
        served.start()
        served.post("/api/silences", {"node": "a", "expire": "1h", "comment": "x"}, token=TOKEN)
        served.post("/api/silences", {"node": "a", "expire": "1h", "comment": "x"}, token="nope")
    finally:
        served.stop()
    assert "silence added from the page" in served.stderr()
    assert TOKEN not in served.stderr()


# -- metrics -------------------------------------------------------------------------------


class Outlet:
    def publish(self, records):
        return len(records)

    def close(self):
        pass


def metrics(served: Served) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    answer = served.get("/metrics")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def test_metrics_count_each_check_per_status_the_stale_the_silences_and_the_watchdog(served):
    a_cluster(served)
    silence(served, node="x", begin="2999-01-01T00:00", expire="1h", comment="later")
    served.start()
    before = metrics(served)
    assert before[("accre_monitor_state_up", ())] == 1
    assert before[("accre_monitor_watchdog_last_round_timestamp_seconds", ())] == 0
    checks = {
        (dict(labels)["check"], dict(labels)["status"]): value
        for (name, labels), value in before.items()
        if name == "accre_monitor_state_checks"
    }
    assert checks == {
        ("ib_link", "OK"): 2, ("ib_link", "WARNING"): 0, ("ib_link", "CRITICAL"): 1,
        ("ib_link", "UNKNOWN"): 0, ("load", "OK"): 1, ("load", "WARNING"): 1,
        ("load", "CRITICAL"): 1, ("load", "UNKNOWN"): 1,
    }  # fmt: skip
    assert before[("accre_monitor_state_stale_checks", (("check", "load"),))] == 1
    assert before[("accre_monitor_state_stale_checks", (("check", "ib_link"),))] == 0
    assert before[("accre_monitor_state_silenced_checks", (("check", "load"),))] == 1
    assert before[("accre_monitor_silences_active", ())] == 1
    assert before[("accre_monitor_silences_pending", ())] == 1
    assert before[("accre_monitor_state_nodes", ())] == 5
    assert any(name.startswith("process_") for name, _ in before)

    settings, _, _ = state_section({}, spool_path="/nonexistent/spool.db")
    dog = Watchdog(served.store, Outlet(), settings)
    dog.round()
    dog.close()
    after = wait_until(
        lambda: (
            (m := metrics(served))[("accre_monitor_watchdog_last_round_timestamp_seconds", ())]
            and m
        ),
        what="the watchdog's round to show",
    )
    last = after[("accre_monitor_watchdog_last_round_timestamp_seconds", ())]
    assert abs(last - time.time()) < 60
    assert ("accre_monitor_watchdog_last_round_records", (("kind", "stale"),)) in after


# -- a state that cannot be reached --------------------------------------------------------


@pytest.mark.integration
def test_a_state_that_cannot_be_reached_is_one_line_and_503_then_comes_back(cli, redis_server):
    settings = {"url": redis_server.url, "key_prefix": f"serve{next(_prefixes)}"}
    served = Served(cli, settings)
    try:
        served.take(record("gpu001", "load", "CRITICAL"))
        served.start()
        assert served.get("/api/grid").status == 200
        redis_server.stop()
        for path in ("/api/grid", "/api/state", "/api/silences", "/api/node/gpu001"):
            answer = wait_until(lambda p=path: (a := served.get(p)).status == 503 and a)
            error = answer.json()["error"]
            assert error.startswith(f"cannot use the state: cluster state at {redis_server.url}")
            assert "\n" not in error
        down = metrics(served)
        assert down[("accre_monitor_state_up", ())] == 0
        redis_server.start()
        wait_until(lambda: served.get("/api/grid").status == 200, what="the state to come back")
    finally:
        if not redis_server.running:
            redis_server.start()
        served.stop()
    assert "Traceback" not in served.stderr()


# -- the command -----------------------------------------------------------------------------


def test_serve_stops_cleanly_on_sigterm(served):
    served.start()
    assert served.stop() == 0
    assert "status page stopped" in served.stderr()


def test_an_address_in_use_or_not_an_address_is_one_line(cli, tmp_path):
    cli.write_config(f'[spool]\npath = "{tmp_path / "spool.db"}"\n')
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = cli.run("serve", "--listen", f"127.0.0.1:{port}", script="accre-pipeline")
    assert busy.returncode == 2
    assert busy.stderr.strip().splitlines() == [
        f"accre-pipeline: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]
    wrong = cli.run("serve", "--listen", "localhost", script="accre-pipeline")
    assert wrong.returncode == 2
    assert len(wrong.stderr.strip().splitlines()) == 1
    assert "is not HOST:PORT" in wrong.stderr


def test_without_the_web_stack_serve_says_which_extra_to_install(cli):
    code = (
        "import sys; sys.modules['uvicorn'] = None\n"
        "from accre_monitor.pipeline.cli import main\n"
        "main(['serve'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli.env, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "accre-monitor: error: serve needs uvicorn, which is not installed: "
        "pip install 'accre-monitor[web]'"
    ]


# -- the [serve] section ------------------------------------------------------------------------


def test_the_serve_section_has_bounded_settings_and_keeps_the_token_secret(monkeypatch):
    monkeypatch.delenv("ACCRE_MONITOR_SERVE_TOKEN", raising=False)
    settings, unknown, problems = serve_section(None)
    assert settings == {"token": None, "listen": "127.0.0.1:8080", "refresh": 5.0}
    assert not unknown and not problems
    settings, _, problems = serve_section(
        {"token": "short-secret", "listen": "nowhere", "refresh": 0.5, "colour": 1}
    )
    assert settings == {"token": None, "listen": "127.0.0.1:8080", "refresh": 5.0}
    assert len(problems) == 3
    assert "short-secret" not in " ".join(problems)
    assert "serve.refresh must be a number of seconds from 1 to 3600" in problems[2]
    monkeypatch.setenv("ACCRE_MONITOR_SERVE_TOKEN", "from-the-environment-0123")
    settings, _, problems = serve_section({"token": "from-the-file-0123456789"})
    assert settings["token"] == "from-the-environment-0123" and not problems


def test_listen_addresses_are_host_and_port():
    assert listen_address("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert listen_address("[::1]:9000") == ("::1", 9000)
    assert listen_address("0.0.0.0:0") == ("0.0.0.0", 0)
    for wrong in ("8080", "host:", ":8080", "host:65536", "host:http", "[::1]8080"):
        assert listen_address(wrong) is None, wrong
