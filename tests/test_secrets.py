"""No password, API key or webhook leaves the process: not on stderr (plain or JSON), not on
stdout, not in `accre-pipeline` output, not in any file written (the spool, dead letters,
Slack's state) but the config and its private cache.

Each password holds what operators leave unescaped in URLs and urllib misreads (`#` starts
a fragment, `/` a path, `@` the host, `%` an escape), or is all digits (a TOML number when
given as `password = 20250417`). Every piece of it is looked for, since a client error
quoting "the port 's3cr'" leaks as much as the whole.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from servers import CouchServer, RedisServer, free_port, missing_reason

from accre_monitor.config import load_config
from accre_monitor.outcome import REJECTED
from accre_monitor.pipeline.spool import Spool

pytestmark = pytest.mark.integration

PASSWORDS = ["s3cr#t-w0rd", "s3cr/t-w0rd", "p@ss@w0rd-x", "50%0ff-w0rd", "20250417"]
SLACK_TOKEN = "xoxToKeN0123456789"
# one password holding every troublesome character, for the real servers
EVERYTHING = "p#s/s@w%rd-20250417"


def pieces(secret: str) -> list[str]:
    """The secret, its escaped form, and each run of it between `#`, `/`, `@` and `%` long
    enough to be told from ordinary text."""
    found = {secret, quote(secret, safe="")}
    text = secret
    for char in "#/@%":
        text = text.replace(char, " ")
    found.update(part for part in text.split() if len(part) >= 4)
    return sorted(found)


def leaks(secret: str, texts: dict[str, str | bytes]) -> list[str]:
    """`where: piece` for every piece of `secret` found in `texts`."""
    found = []
    for where, text in texts.items():
        data = text.encode() if isinstance(text, str) else text
        for piece in pieces(secret):
            if piece.encode() in data:
                found.append(f"{where}: {piece!r}")
    return found


def written_files(cli) -> dict[str, bytes]:
    """Every file the runs wrote under the private HOME, but the config cache."""
    cache = cli.home / ".cache" / "accre-monitor" / "config"
    return {
        str(path): path.read_bytes()
        for path in cli.home.rglob("*")
        if path.is_file() and cache not in path.parents
    }


def collect(cli, name: str, done, texts: dict[str, str | bytes]) -> None:
    texts[f"{name} stdout"] = done.stdout
    texts[f"{name} stderr"] = done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def run_with_one_store(cli, output: str, url: str, texts: dict, name: str = "run"):
    """One run of loadavg delivering to `output` at `url`, what it showed kept in `texts`."""
    cli.write_config(
        f'[monitoring]\noutputs = ["nagios-stdout", "{output}"]\n'
        f'[outputs.{output}]\nurl = "{url}"\n'
    )
    done = cli.run("loadavg")
    collect(cli, name, done, texts)
    return done


def broker_config(cli, url: str, more: str = "") -> None:
    """The RabbitMQ bus at `url` (a TOML value), `more` TOML after it; its records are for a
    Redis nobody listens on."""
    cli.write_config(
        '[monitoring]\noutputs = ["nagios-stdout", "redis"]\n'
        f'[outputs.redis]\nurl = "redis://127.0.0.1:{free_port()}/0"\n'
        f'[bus]\nkind = "rabbitmq"\nurl = {url}\n{more}'
    )


def run_everything(cli, texts: dict[str, str | bytes], *, broker: bool) -> None:
    """Every surface: a run (plain and JSON logs), spool_health, and every accre-pipeline
    command that reads or shows what the config and the spool hold."""
    for fmt in ("console", "json"):
        cli.env["ACCRE_MONITOR_LOG_FORMAT"] = fmt
        done = cli.run("loadavg")
        assert done.returncode == 0, done.stderr
        collect(cli, f"run ({fmt} logs)", done, texts)
    cli.env.pop("ACCRE_MONITOR_LOG_FORMAT")
    done = cli.run("spool_health")
    collect(cli, "spool_health", done, texts)
    assert done.stdout.startswith("SPOOL "), done.stdout
    for command in (
        ["status"],
        ["status", "--json"],
        ["replay"],
        ["replay", "--due"],
        ["dead-letters", "list"],
        ["topology"],
    ):
        done = cli.run(*command, script="accre-pipeline")
        collect(cli, " ".join(command), done, texts)
    status = json.loads(texts["status --json stdout"])
    assert status["outputs"], "nothing was spooled: the stores were reached after all"
    if broker:
        assert status["broker"]["error"], status["broker"]


def dead_letter_quoting(cli, url: str, password: str) -> None:
    """Records refused for good with a reason that quotes the URL and the password, as a
    client's error might: the spool writes it in this process, which loaded the config."""
    config = load_config(str(cli.config_path))
    spool = Spool.from_config(config)
    try:
        reason = f"refused by {url}: bad request (password {password})"
        for output in spool.outputs():
            entries = spool.claim(output, 100, due_only=False)
            spool.settle([(entry, REJECTED, reason) for entry in entries])
    finally:
        spool.close()


def stores_config(cli, password: str) -> str:
    """Every store of the in-process bus, unreachable, each with `password` in its URL."""
    down = free_port()
    cli.write_config(
        f"""
        [monitoring]
        outputs = ["nagios-stdout", "redis", "couch", "elasticsearch", "slack-all"]
        [spool]
        path = "{cli.home / "spool" / "spool.db"}"
        inline_budget = 2
        max_attempts = 1
        [outputs.redis]
        url = "redis://:{password}@127.0.0.1:{down}/0"
        timeout = 0.5
        [outputs.couch]
        url = "http://admin:{password}@127.0.0.1:{down}"
        timeout = 0.5
        [outputs.elasticsearch]
        hosts = ["http://elastic:{password}@127.0.0.1:{down}"]
        timeout = 0.5
        [outputs.slack]
        webhook_url = "http://127.0.0.1:{down}/services/T0SECRET0/B0SECRET0/{SLACK_TOKEN}"
        timeout = 0.5
        """
    )
    return f"redis://:{password}@127.0.0.1:{down}/0"


@pytest.mark.parametrize("password", PASSWORDS)
def test_no_store_password_is_shown_or_written_anywhere(cli, password):
    url = stores_config(cli, password)
    texts: dict[str, str | bytes] = {}
    run_everything(cli, texts, broker=False)
    dead_letter_quoting(cli, url, password)
    done = cli.run("dead-letters", "list", script="accre-pipeline")
    collect(cli, "dead-letters list (after)", done, texts)
    assert "refused by redis://:***@127.0.0.1:" in done.stdout, done.stdout
    texts.update(written_files(cli))
    assert any(name.endswith("spool.db") for name in texts)
    assert not leaks(password, texts)
    assert not leaks(SLACK_TOKEN, texts) and not leaks("T0SECRET0/B0SECRET0", texts)
    # what is shown still says which store it is about
    assert "127.0.0.1" in texts["run (console logs) stderr"]


@pytest.mark.parametrize("password", PASSWORDS)
def test_no_broker_password_is_shown_or_written_anywhere(cli, password):
    url = f"amqp://monitor:{password}@127.0.0.1:{free_port()}/%2F"
    broker_config(cli, f'["{url}"]', "connect_timeout = 0.5\n[spool]\ninline_budget = 2\n")
    texts: dict[str, str | bytes] = {}
    run_everything(cli, texts, broker=True)
    texts.update(written_files(cli))
    assert not leaks(password, texts)
    assert "amqp://monitor:***@127.0.0.1:" in texts["status stdout"]


@pytest.mark.parametrize("key", ["password", "api_key"])
def test_a_secret_of_the_wrong_type_is_never_quoted_in_its_own_error(cli, key):
    section = "bus" if key == "password" else "outputs.elasticsearch"
    cli.write_config(
        f"""
        [monitoring]
        outputs = ["nagios-stdout"]
        [{section}]
        {key} = 20250417
        """
    )
    texts: dict[str, str | bytes] = {}
    done = cli.run("loadavg")
    collect(cli, "run", done, texts)
    assert done.returncode == 0
    done = cli.run("spool_health")
    collect(cli, "spool_health", done, texts)
    assert f"{section}.{key}" in done.stdout
    done = cli.run("status", script="accre-pipeline")
    collect(cli, "status", done, texts)
    texts.update(written_files(cli))
    assert not leaks("20250417", texts)


# -- against real servers: the unescaped password works, and is still never shown --------


def test_a_redis_password_with_every_troublesome_character_works_and_is_never_shown(cli):
    if missing_reason("redis"):
        pytest.skip(missing_reason("redis"))
    with RedisServer(password=EVERYTHING) as server:
        texts: dict[str, str | bytes] = {}
        url = f"redis://:{EVERYTHING}@127.0.0.1:{server.port}/0"
        assert run_with_one_store(cli, "redis", url, texts).returncode == 0
        import redis

        with redis.Redis(port=server.port, password=EVERYTHING) as client:
            assert client.xlen("accre-monitor:history") == 1
        # a wrong password: Redis says so, without the password we sent
        wrong = EVERYTHING.replace("p#", "q#")
        url = f"redis://:{wrong}@127.0.0.1:{server.port}/0"
        done = run_with_one_store(cli, "redis", url, texts, "wrong password run")
        assert f"redis at redis://:***@127.0.0.1:{server.port}/0" in done.stderr, done.stderr
        done = cli.run("status", "--json", script="accre-pipeline")
        collect(cli, "status", done, texts)
        texts.update(written_files(cli))
        assert not leaks(EVERYTHING, texts) and not leaks(wrong, texts)


def test_a_couchdb_password_with_every_troublesome_character_works_and_is_never_shown(cli):
    if missing_reason("couch"):
        pytest.skip(missing_reason("couch"))
    with CouchServer(in_memory=True, admins={"admin": EVERYTHING}) as server:
        texts: dict[str, str | bytes] = {}
        url = f"http://admin:{EVERYTHING}@127.0.0.1:{server.port}"
        done = run_with_one_store(cli, "couch", url, texts)
        assert done.returncode == 0
        status, body = server.request("GET", "/accre-monitor")
        assert status == 200 and body["doc_count"] == 1, (body, done.stderr)
        texts.update(written_files(cli))
        assert not leaks(EVERYTHING, texts)


@pytest.fixture(scope="module")
def broker(broker):
    """The module's RabbitMQ node, with a user whose password holds every troublesome character."""
    for args in (
        ("add_user", "monitor", EVERYTHING),
        ("set_permissions", "-p", "/", "monitor", ".*", ".*", ".*"),
    ):
        done = broker.ctl(*args)
        assert done.returncode == 0, done.stderr
    return broker


def test_a_broker_password_with_every_troublesome_character_works_and_is_never_shown(cli, broker):
    broker_config(cli, f'"amqp://monitor:{EVERYTHING}@127.0.0.1:{broker.port}/%2F"')
    texts: dict[str, str | bytes] = {}
    done = cli.run("loadavg")
    collect(cli, "run", done, texts)
    assert done.returncode == 0
    for command in (["topology"], ["status"], ["status", "--json"]):
        done = cli.run(*command, script="accre-pipeline")
        collect(cli, " ".join(command), done, texts)
        assert done.returncode == 0, done.stderr
    status = json.loads(texts["status --json stdout"])
    assert status["broker"]["url"].startswith("amqp://monitor:***@127.0.0.1:")
    assert sum(row["messages"] for row in status["broker"]["queues"].values()) == 1
    texts.update(written_files(cli))
    assert not leaks(EVERYTHING, texts)
