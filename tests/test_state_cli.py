"""`accre-pipeline silence`, `forget` and `overview`: the cluster state at the command line,
on the SQLite state and on a shared Redis state."""

from __future__ import annotations

import importlib.util
import itertools
import json
import time

import pytest
from served import record
from servers import RedisServer, free_port, missing_reason
from test_rabbitmq import wait_until

from accre_monitor.dates import epoch_seconds
from accre_monitor.pipeline.state import stale_record
from accre_monitor.pipeline.state_store import open_state
from accre_monitor.record import iso_now

_prefixes = itertools.count()
SILENCE_KEYS = {"id", "node", "check", "begin", "end", "on_resolve", "comment"}


def redis_missing() -> str | None:
    if importlib.util.find_spec("accre_monitor.pipeline.state_redis") is None:
        return "the Redis state store (accre_monitor.pipeline.state_redis) is not in this build"
    return missing_reason("redis")


@pytest.fixture(scope="module")
def redis_server():
    reason = redis_missing()
    if reason:
        pytest.skip(reason)
    with RedisServer() as server:
        yield server


class State:
    """A state for one test: the config that names it, and the store, opened here to fill it
    as the shipper would."""

    def __init__(self, cli, settings: dict[str, str]) -> None:
        self.cli = cli
        self.settings = settings
        lines = "\n".join(f'{key} = "{value}"' for key, value in settings.items())
        cli.write_config(f'[spool]\npath = "{cli.tmp / "spool.db"}"\n[state]\n{lines}\n')
        self.store = open_state(settings)

    def take(self, *records: dict) -> None:
        taken = self.store.take(list(records))
        assert all(t.problem is None for t in taken), taken

    def run(self, *args: str):
        return self.cli.run(*args, script="accre-pipeline")

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def json(self, *args: str):
        return json.loads(self.ok(*args, "--json"))


@pytest.fixture(params=["sqlite", "redis"])
def state(request, cli):
    if request.param == "sqlite":
        settings = {"url": f"sqlite:///{cli.tmp / 'state.db'}"}
    else:
        server = request.getfixturevalue("redis_server")
        settings = {"url": server.url, "key_prefix": f"cli{next(_prefixes)}"}
    made = State(cli, settings)
    yield made
    made.store.close()


@pytest.fixture
def sqlite_state(cli):
    made = State(cli, {"url": f"sqlite:///{cli.tmp / 'state.db'}"})
    yield made
    made.store.close()


def fire_stale(store) -> None:
    """Do what the watchdog does for the one overdue entry: take its stale record, owe it."""
    (entry,) = store.overdue(time.time(), 10)
    now = time.time()
    assert store.fire_stale(stale_record(entry, "UNKNOWN", now), entry.record_id, now)


def one_line_error(result) -> str:
    assert result.returncode != 0, result
    assert result.stdout == "", result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# -- silences --------------------------------------------------------------------------------


def test_a_silence_is_added_listed_as_a_table_and_as_json_then_removed(state):
    state.take(record("cn001", "ib_link", "CRITICAL"))
    added = state.run(
        "silence", "add", "--node", "cn0*", "--check", "ib_*", "--expire", "3600",
        "--comment", "switch 4 replaced, ask Ana",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert added.stderr == ""
    lines = added.stdout.splitlines()
    assert len(lines) == 1
    silence_id = lines[0]

    table = state.ok("silence", "list")
    assert silence_id in table
    assert "cn0*" in table and "ib_*" in table and "switch 4 replaced, ask Ana" in table

    (listed,) = state.json("silence", "list")
    assert set(listed) == SILENCE_KEYS
    assert listed["id"] == silence_id
    assert (listed["node"], listed["check"]) == ("cn0*", "ib_*")
    assert listed["on_resolve"] is False
    assert listed["comment"] == "switch 4 replaced, ask Ana"
    begin, end = epoch_seconds(listed["begin"]), epoch_seconds(listed["end"])
    assert begin == pytest.approx(time.time(), abs=30)
    assert end - begin == pytest.approx(3600, abs=0.01)

    removed = state.run("silence", "remove", silence_id)
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.strip() == f"silence {silence_id} removed"
    assert state.json("silence", "list") == []
    assert state.ok("silence", "list").strip() == "no silences"

    again = one_line_error(state.run("silence", "remove", silence_id))
    assert f"no silence {silence_id}" in again


def test_a_silence_is_removed_by_a_prefix_of_its_id_that_names_only_it(sqlite_state):
    silence_id = sqlite_state.ok(
        "silence", "add", "--node", "*", "--on-resolve", "--comment", "maintenance"
    ).strip()
    assert sqlite_state.ok("silence", "remove", silence_id[:8]).strip() == (
        f"silence {silence_id} removed"
    )
    assert sqlite_state.json("silence", "list") == []


def test_a_silence_expires_by_itself(state):
    state.take(record("cn001", "disk", "CRITICAL"))
    silence_id = state.ok(
        "silence", "add", "--node", "cn001", "--expire", "3", "--comment", "a short one"
    ).strip()
    (item,) = state.json("overview")
    assert item["silenced"] == [silence_id]

    wait_until(lambda: state.json("silence", "list") == [], what="the silence's expiry")
    (item,) = state.json("overview")
    assert item["silenced"] == []


def test_a_silence_until_a_local_time_without_offset_ends_then(state):
    state.cli.env["TZ"] = "EST+5"  # five hours behind UTC, whatever this machine's zone
    end = int(time.time()) + 3600
    local = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(end - 5 * 3600))
    state.ok("silence", "add", "--check", "disk", "--until", local, "--comment", "until then")
    (listed,) = state.json("silence", "list")
    assert epoch_seconds(listed["end"]) == end
    assert listed["end"].endswith("-05:00")


def test_an_on_resolve_silence_ends_with_the_next_ok_after_a_problem(state):
    state.take(record("cn001", "disk", "OK", ago=30))
    silence_id = state.ok(
        "silence", "add", "--node", "cn001", "--check", "disk", "--on-resolve",
        "--comment", "disk being replaced",
    ).strip()  # fmt: skip
    (listed,) = state.json("silence", "list")
    assert listed["on_resolve"] is True
    assert listed["end"] is None

    state.take(record("cn001", "disk", "OK", ago=20))  # no problem yet: nothing resolves
    state.take(record("cn001", "disk", "CRITICAL", ago=10))
    assert [s["id"] for s in state.json("silence", "list")] == [silence_id]
    assert "on resolve" in state.ok("silence", "list")
    (item,) = state.json("overview")
    assert item["status"] == "CRITICAL" and item["silenced"] == [silence_id]

    state.take(record("cn001", "disk", "OK"))
    assert state.json("silence", "list") == []
    (item,) = state.json("overview")
    assert item["status"] == "OK" and item["silenced"] == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--node", "cn1", "--comment", "why"], "exactly one of --expire"),
        (["--node", "cn1", "--expire", "60", "--on-resolve", "--comment", "why"], "exactly one"),
        (["--node", "cn1", "--expire", "60", "--until", "2099-01-01", "--comment", "x"], "one"),
        (["--node", "cn1", "--expire", "60"], "--comment"),
        (["--node", "cn1", "--expire", "60", "--comment", "  "], "--comment"),
        (["--expire", "60", "--comment", "everything?"], "--node '*'"),
        (["--node", "cn1", "--expire", "soon", "--comment", "why"], "--expire 'soon'"),
        (["--node", "cn1", "--expire", "0", "--comment", "why"], "more than 0"),
        (["--node", "cn1", "--until", "tomorrow", "--comment", "why"], "not an ISO 8601 time"),
        (["--node", "cn1", "--until", "2001-01-01T00:00", "--comment", "why"], "not after"),
        (
            ["--node", "cn1", "--begin", "2001-01-01", "--until", "2001-01-02", "--comment", "x"],
            "over already",
        ),
    ],
)
def test_a_silence_add_that_is_wrong_is_refused_in_one_line_and_stores_nothing(
    sqlite_state, args, says
):
    line = one_line_error(sqlite_state.run("silence", "add", *args))
    assert says in line
    assert sqlite_state.json("silence", "list") == []


def test_a_silence_of_everything_is_asked_for_with_node_star(sqlite_state):
    sqlite_state.take(record("cn001", "disk", "WARNING"), record("gpu07", "ib_link", "CRITICAL"))
    silence_id = sqlite_state.ok(
        "silence", "add", "--node", "*", "--expire", "600", "--comment", "cluster maintenance"
    ).strip()
    assert [item["silenced"] for item in sqlite_state.json("overview")] == [[silence_id]] * 2


def test_a_silence_that_covers_nothing_known_says_so_on_stderr(sqlite_state):
    sqlite_state.take(record("cn001", "disk", "WARNING"))
    result = sqlite_state.run(
        "silence", "add", "--node", "cm001", "--expire", "60", "--comment", "typo"
    )
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 1
    assert "covers nothing in the state yet" in result.stderr


def test_the_silence_command_alone_is_a_usage_error(sqlite_state):
    result = sqlite_state.run("silence")
    assert result.returncode == 2
    assert "add,list,remove" in result.stderr


# -- forget ----------------------------------------------------------------------------------


def test_forget_drops_a_node_with_every_check_and_its_liveness(state):
    state.take(
        record("cn001", "disk", "CRITICAL", ttl=60),
        record("cn001", "load", "OK"),
        record("cn002", "disk", "OK"),
    )
    result = state.run("forget", "--node", "cn001")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("forgot node cn001: 2 entries")
    assert [(i["node"], i["check"]) for i in state.json("overview")] == [("cn002", "disk")]
    assert [n.name for n in state.store.nodes()] == ["cn002"]
    assert state.store.overdue(time.time() + 3600, 10) == []  # nothing owed any more

    line = one_line_error(state.run("forget", "--node", "cn001"))
    assert "no node 'cn001' in the state" in line


def test_forget_drops_one_retired_check_of_a_node(state):
    state.take(record("cn001", "old_check", "CRITICAL"), record("cn001", "load", "OK"))
    assert state.ok("forget", "--node", "cn001", "--check", "old_check").strip() == (
        "forgot check old_check of node cn001: 1 entry"
    )
    assert [i["check"] for i in state.json("overview")] == ["load"]
    line = one_line_error(state.run("forget", "--node", "cn001", "--check", "old_check"))
    assert "no check 'old_check' of node 'cn001'" in line


def test_forget_of_a_check_drops_the_stale_record_it_still_owes(state):
    state.take(record("cn001", "old_check", "OK", ago=120, ttl=60), record("cn001", "load", "OK"))
    fire_stale(state.store)
    assert len(state.store.outbox(10)) == 1
    state.ok("forget", "--node", "cn001", "--check", "old_check")
    assert state.store.outbox(10) == []


def test_forget_needs_a_node(sqlite_state):
    assert "--node" in one_line_error(sqlite_state.run("forget"))


# -- overview --------------------------------------------------------------------------------


def fill_a_cluster(state) -> str:
    """Problems of every kind, an OK check, and a silence; the silence's id."""
    state.take(
        record("cn001", "disk", "CRITICAL", ago=7200),
        record("cn001", "disk", "CRITICAL", ago=60),
        record("cn001", "load", "OK", ago=5),
        record("cn002", "load", "WARNING", ago=300),
        record("cn003", "ib_link", "UNKNOWN", ago=30),
        record("cn002", "mem", "OK", ago=600, ttl=120),  # its ttl ran out: stale
        record("gpu01", "gpu_temp", "OK", ago=5),
    )
    return state.ok(
        "silence", "add", "--node", "gpu*", "--expire", "3600", "--comment", "burn-in, ask Bo"
    ).strip()


def test_overview_counts_then_lists_what_needs_a_look_worst_first(state):
    silence_id = fill_a_cluster(state)
    lines = state.ok("overview").splitlines()
    assert lines[0].endswith(": 6 checks on 4 nodes")
    assert lines[1] == "OK 3   WARNING 1   CRITICAL 1   UNKNOWN 1   stale 1   silenced 1"
    rows = [line.split() for line in lines[3:]]
    assert rows[0][:3] == ["node", "check", "status"]
    assert [row[:3] for row in rows[1:]] == [
        ["cn001", "disk", "CRITICAL"],
        ["cn003", "ib_link", "UNKNOWN"],
        ["cn002", "load", "WARNING"],
        ["cn002", "mem", "OK"],
        ["gpu01", "gpu_temp", "OK"],
    ]
    critical, *_, stale, silenced = rows[1:]
    assert critical[3:6] == ["2.0h", "2", "1m"]  # since, occurrences, last result's age
    assert stale[3] == "stale"
    assert " ".join(silenced[-4:]) == f"{silence_id[:8]} burn-in, ask Bo"


def test_overview_json_gives_every_node_and_check_matching_the_globs(state):
    silence_id = fill_a_cluster(state)
    everything = state.json("overview")
    assert len(everything) == 6
    for item in everything:
        assert set(item) >= {
            "node", "check", "status", "since", "date", "occurrences", "stale", "silenced",
        }  # fmt: skip
        epoch_seconds(item["since"]), epoch_seconds(item["date"])  # ISO 8601 both

    picked = state.json("overview", "--node", "cn00[12]", "--check", "*")
    assert [(i["node"], i["check"]) for i in picked] == [
        ("cn001", "disk"),
        ("cn001", "load"),
        ("cn002", "load"),
        ("cn002", "mem"),
    ]
    disk, _, _, mem = picked
    assert (disk["status"], disk["occurrences"], disk["stale"]) == ("CRITICAL", 2, False)
    assert epoch_seconds(disk["since"]) == pytest.approx(time.time() - 7200, abs=30)
    assert epoch_seconds(disk["date"]) == pytest.approx(time.time() - 60, abs=30)
    assert mem["stale"] is True

    (gpu,) = state.json("overview", "--check", "gpu_*")
    assert gpu["silenced"] == [silence_id]
    text = state.ok("overview", "--check", "gpu_*")
    assert text.splitlines()[0].endswith(": 1 check on 1 node")


def test_overview_shows_a_stale_record_as_stale(state):
    state.take(record("cn001", "disk", "OK", ago=600, ttl=60))
    fire_stale(state.store)
    (item,) = state.json("overview")
    assert (item["status"], item["stale"]) == ("UNKNOWN", True)
    assert "cn001  disk   UNKNOWN stale" in state.ok("overview")


def test_overview_marks_a_silence_that_began_after_the_record_was_taken(state):
    state.take(record("cn001", "disk", "CRITICAL"))
    begin = iso_now(time.time() + 3)
    silence_id = state.ok(
        "silence", "add", "--node", "cn001", "--begin", begin, "--expire", "600",
        "--comment", "starts soon",
    ).strip()  # fmt: skip
    (item,) = state.json("overview")
    assert item["silenced"] == []  # not begun yet
    wait_until(
        lambda: state.json("overview")[0]["silenced"] == [silence_id],
        what="the silence's beginning",
    )
    assert "starts soon" in state.ok("overview")


def test_overview_of_an_empty_state_says_so_and_where_it_lives(state):
    result = state.run("overview")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("the state is empty")
    assert state.settings["url"].rpartition("@")[2] in result.stdout
    assert state.json("overview") == []


def test_overview_of_a_state_file_not_made_yet_does_not_make_it(cli):
    path = cli.tmp / "never" / "state.db"
    State(cli, {"url": f"sqlite:///{path}"}).store.close()  # never used: nothing made here
    result = cli.run("overview", script="accre-pipeline")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"the state is empty: no result has been taken into it yet (sqlite:///{path})"
    )
    assert not path.exists()


def test_overview_with_globs_that_match_nothing_says_so(sqlite_state):
    sqlite_state.take(record("cn001", "disk", "OK"))
    out = sqlite_state.ok("overview", "--node", "gpu*")
    assert out.startswith("nothing in the state matches --node gpu* (1 check in")


def test_overview_reads_results_the_checks_took_into_the_state(cli):
    cli.write_module(
        "mysite.checks",
        """
        from accre_monitor import monitor_command

        @monitor_command
        def echo_status(opts):
            \"\"\"Return the status asked for.\"\"\"
            return opts.get("status", "OK"), None
        """,
    )
    cli.write_config(
        f"""
        [monitoring]
        check_modules = ["mysite.checks"]
        node = "cn042"
        [spool]
        path = "{cli.tmp / "spool.db"}"
        [state]
        """
    )
    for status in ("critical", "critical", "critical"):
        assert cli.run("echo_status", "--status", status).returncode == 2
    (item,) = json.loads(cli.run("overview", "--json", script="accre-pipeline").stdout)
    assert (item["node"], item["check"], item["status"]) == ("cn042", "echo_status", "CRITICAL")
    assert item["occurrences"] == 3


# -- a store that cannot be reached ------------------------------------------------------------

COMMANDS = [
    ["overview"],
    ["overview", "--json"],
    ["silence", "list"],
    ["silence", "add", "--node", "cn1", "--expire", "60", "--comment", "why"],
    ["silence", "remove", "abc"],
    ["forget", "--node", "cn1"],
]


@pytest.mark.parametrize("args", COMMANDS)
def test_a_state_file_that_cannot_be_opened_is_one_line(cli, args):
    where = cli.tmp / "a-directory"
    where.mkdir()
    cli.write_config(
        f'[spool]\npath = "{cli.tmp / "spool.db"}"\n[state]\nurl = "sqlite:///{where}"\n'
    )
    result = cli.run(*args, script="accre-pipeline")
    line = one_line_error(result)
    assert result.returncode == 1
    assert f"cannot use the state at sqlite:///{where}: " in line


@pytest.mark.parametrize("args", COMMANDS)
def test_a_redis_state_that_is_down_is_one_line(cli, args):
    reason = redis_missing()
    if reason:
        pytest.skip(reason)
    port = free_port()
    url = f"redis://:hunter2-secret@127.0.0.1:{port}/0"
    cli.write_config(f'[spool]\npath = "{cli.tmp / "spool.db"}"\n[state]\nurl = "{url}"\n')
    cli.config_path.chmod(0o600)  # it holds a password
    result = cli.run(*args, script="accre-pipeline", timeout=60)
    line = one_line_error(result)
    assert result.returncode == 1
    assert "cannot use the state" in line and f"127.0.0.1:{port}" in line
    assert "hunter2-secret" not in line


@pytest.mark.parametrize(
    "args", [["overview", "-h"], ["forget", "-h"], ["silence", "add", "-h"], ["silence", "-h"]]
)
def test_the_state_commands_have_help(cli, args):
    result = cli.run(*args, script="accre-pipeline")
    assert result.returncode == 0, result.stderr
    assert "(default: -)" not in result.stdout
